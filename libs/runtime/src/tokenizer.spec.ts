/**
 * The Hugging Face tokenizer path (manifest tokenizer.kind "hf") on a synthetic byte-level BPE tokenizer.json with the
 * real model's special ids: loading from a model directory, the prompt template rules of spec §1.2 (BOS as the
 * post-processor says, no EOS, `</user>` last so the image block goes before it) and the start-up check against the
 * manifest.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { imageToImage, understanding } from '@dimoo/diffusion';
import { ModelLoadError } from '@dimoo/model';
import { tokenLayout } from './pipeline';
import { checkTokenizer, HfTokenizer, loadTokenizer, promptIds } from '@dimoo/model';
import { REAL_SPECIALS, syntheticTokenizerJson } from './testing/synthetic-tokenizer';

/** The tiny model's manifest with the real model's ids (spec §1.1) and an hf tokenizer. */
async function realIdsManifest(): Promise<ModelManifest> {
  const tiny = JSON.parse(await readFile(resolve(__dirname, '../../../models/tiny/manifest.json'), 'utf8')) as ModelManifest;
  return {
    ...tiny,
    architecture: { ...tiny.architecture, vocabSize: 134548 },
    tokens: {
      textVocabSize: 126356,
      codeOffset: 126356,
      codebookSize: 8192,
      mask: 126336,
      newline: 126084,
      boi: 126349,
      eoi: 126350,
      uncondition: 126351,
      boa: 126354,
      eoa: 126355,
      answerPad: 126339,
      bos: 126080,
      eos: 126081,
    },
    tokenizer: { kind: 'hf', file: 'tokenizer.json', specialTokens: { '<|mdm_mask|>': 126336, '<|startoftext|>': 126080, '<|endoftext|>': 126081 } },
  };
}

let manifest: ModelManifest;
beforeAll(async () => {
  manifest = await realIdsManifest();
});

describe('HfTokenizer on a synthetic byte-level BPE tokenizer.json', () => {
  const tok = HfTokenizer.fromJson(syntheticTokenizerJson());

  it('maps the special strings to their ids, in context and alone, and round-trips text', () => {
    for (const [s, id] of Object.entries(REAL_SPECIALS)) expect(tok.tokenId(s)).toBe(id);
    const ids = tok.encode('<system>the cat</system><user>in the hat</user>');
    expect(ids[0]).toBe(126080); // BOS from the post-processor
    expect(ids[1]).toBe(126352);
    expect(ids).toContain(126353);
    expect(ids[ids.length - 1]).toBe(126343);
    // byte-level BPE with merges: ' the' is one token (merges Ġt + he), plain bytes otherwise
    expect(ids).toContain(tok.tokenId('Ġthe'));
    expect(tok.decode(ids)).toBe('the catin the hat');
    expect(tok.decode(tok.encode('héllo wörld, 2 red circles!'))).toBe('héllo wörld, 2 red circles!');
  });

  it('builds prompts with BOS, no EOS, the template strings as single tokens and </user> last', () => {
    const ids = promptIds(tok, manifest, manifest.templates.sys.t2i, 'a red circle');
    expect(ids[0]).toBe(126080);
    expect(ids[1]).toBe(126352);
    expect(ids[ids.length - 1]).toBe(126343);
    expect(ids.filter((i) => i >= 126080).length).toBe(5); // BOS and the four template tokens, nothing else special
    const unc = promptIds(tok, manifest, manifest.templates.sys.t2i, manifest.templates.uncondition);
    expect(Array.from(unc.slice(-2))).toEqual([126351, 126343]);
  });

  it('drops an EOS the post-processor appends (spec §1.1: the last prompt token must be </user>)', () => {
    const withEos = HfTokenizer.fromJson(syntheticTokenizerJson({ eos: '<|endoftext|>' }));
    expect(withEos.encode('<user>x</user>').at(-1)).toBe(126081);
    const ids = promptIds(withEos, manifest, 'sys', 'user');
    expect(ids[ids.length - 1]).toBe(126343);
    expect(() => checkTokenizer(withEos, manifest)).not.toThrow();
  });

  it('puts the image block before the last prompt token in i2i and understanding sequences', () => {
    const layout = tokenLayout(manifest);
    const prompt = promptIds(tok, manifest, manifest.templates.sys.edit, 'make it blue');
    const grid = { rows: 2, cols: 3, codes: Int32Array.from([0, 1, 2, 8189, 8190, 8191]) };
    const block = [126349, ...[0, 1, 2].map((c) => 126356 + c), 126084, ...[8189, 8190, 8191].map((c) => 126356 + c), 126084, 126350];
    const spec = imageToImage(
      layout,
      { prompt, uncondPrompt: promptIds(tok, manifest, manifest.templates.sys.edit, '<uncondition>'), rows: 2, cols: 3, inputs: [grid] },
      { kind: 'dual', text: 2.5, image: 4 },
    );
    const cond = Array.from(spec.branches[0]!.prefix);
    expect(cond).toEqual([...Array.from(prompt.slice(0, -1)), ...block, 126343, 126354, 126349]);
    const mmu = understanding(layout, { prompt, image: grid, genLength: 4 }, { kind: 'none' });
    expect(Array.from(mmu.branches[0]!.prefix)).toEqual([...Array.from(prompt.slice(0, -1)), ...block, 126343, 126354]);
  });
});

describe('the start-up check of a tokenizer against the manifest', () => {
  it('accepts the matching tokenizer', () => {
    expect(() => checkTokenizer(HfTokenizer.fromJson(syntheticTokenizerJson()), manifest)).not.toThrow();
  });

  it('refuses a tokenizer whose special ids differ, naming each mismatch', () => {
    const moved = HfTokenizer.fromJson(syntheticTokenizerJson({ specials: { ...REAL_SPECIALS, '<IMAGE>': 126345, '<|mdm_mask|>': 126337 } }));
    expect(() => checkTokenizer(moved, manifest)).toThrow(ModelLoadError);
    expect(() => checkTokenizer(moved, manifest)).toThrow(/<IMAGE> is id 126345, manifest says 126349.*<\|mdm_mask\|> is id 126337, manifest says 126336/);
  });

  it('refuses when BOS is not what the manifest says (spec §10: whether the tokenizer prepends BOS)', () => {
    const noBos = HfTokenizer.fromJson(syntheticTokenizerJson({ bos: null }));
    expect(() => checkTokenizer(noBos, manifest)).toThrow(/not BOS 126080/);
    expect(() => checkTokenizer(HfTokenizer.fromJson(syntheticTokenizerJson()), { ...manifest, tokens: { ...manifest.tokens, bos: null } })).toThrow(
      /manifest names no BOS/,
    );
  });

  it('refuses a tokenizer without the template tokens', () => {
    const { '<user>': _u, ...rest } = REAL_SPECIALS;
    expect(() => checkTokenizer(HfTokenizer.fromJson(syntheticTokenizerJson({ specials: rest })), manifest)).toThrow(/template token <user> is not one token/);
  });

  it('passes the tiny model word tokenizer too', async () => {
    const dir = resolve(__dirname, '../../../models/tiny');
    const tinyTok = await loadTokenizer(dir, JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ModelManifest);
    const tiny = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ModelManifest;
    expect(() => checkTokenizer(tinyTok, tiny)).not.toThrow();
  });
});

describe('loadTokenizer for kind "hf"', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dimoo-hf-tok-'));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(syntheticTokenizerJson()));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', clean_up_tokenization_spaces: false }));
    await writeFile(join(dir, 'broken.json'), JSON.stringify({ model: { type: 'NoSuchModel' } }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads tokenizer.json and tokenizer_config.json from the model directory (no network)', async () => {
    const tok = await loadTokenizer(dir, { ...manifest, tokenizer: { ...manifest.tokenizer, config: 'tokenizer_config.json' } });
    expect(tok.tokenId('<answer>')).toBe(126354);
    expect(Array.from(promptIds(tok, manifest, 'x', 'y')).at(-1)).toBe(126343);
  });

  it('refuses a missing or unsupported file with the path in the message', async () => {
    await expect(loadTokenizer(dir, { ...manifest, tokenizer: { kind: 'hf', file: 'absent.json' } })).rejects.toThrow(/cannot read .*absent\.json/);
    await expect(loadTokenizer(dir, { ...manifest, tokenizer: { kind: 'hf', file: 'broken.json' } })).rejects.toThrow(ModelLoadError);
  });
});

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { Tokenizer as HfTokenizerCore } from '@huggingface/tokenizers';
import { z } from 'zod';
import { ModelLoadError } from './errors';

export interface TextTokenizer {
  /** the model's tokenization of `text`, with the special tokens its post-processor adds (BOS for the real model) */
  encode(text: string): number[];
  /** answer text: special tokens dropped */
  decode(ids: readonly number[]): string;
  /** the id of one token string (special or vocabulary), undefined when the tokenizer has none */
  tokenId(token: string): number | undefined;
}

const WordTokenizerFile = z.object({
  kind: z.literal('word'),
  pattern: z.string(),
  lowercase: z.boolean(),
  unk: z.number().int(),
  vocab: z.record(z.string(), z.number().int()),
  special: z.record(z.string(), z.number().int()),
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The tiny model's word-level tokenizer (tools/model/tokenizer.py): special strings matched whole and case-sensitively,
 * every other piece lowercased and split by the file's pattern; unknown words map to `unk`; no BOS/EOS.
 */
export class WordTokenizer implements TextTokenizer {
  private readonly specialSplit: RegExp;
  private readonly word: RegExp;
  private readonly inverse = new Map<number, string>();

  constructor(private readonly file: z.infer<typeof WordTokenizerFile>) {
    const specials = Object.keys(file.special).sort((a, b) => b.length - a.length);
    this.specialSplit = new RegExp(`(${specials.map(escape).join('|')})`);
    this.word = new RegExp(file.pattern, 'g');
    for (const [w, id] of Object.entries(file.vocab)) this.inverse.set(id, w);
    for (const [w, id] of Object.entries(file.special)) this.inverse.set(id, w);
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const part of text.split(this.specialSplit)) {
      if (part === '') continue;
      const special = this.file.special[part];
      if (special !== undefined) {
        out.push(special);
        continue;
      }
      for (const w of (this.file.lowercase ? part.toLowerCase() : part).match(this.word) ?? []) out.push(this.file.vocab[w] ?? this.file.unk);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return ids
      .map((i) => this.inverse.get(i) ?? '')
      .filter((w) => w !== '' && !w.startsWith('<'))
      .join(' ');
  }

  tokenId(token: string): number | undefined {
    return this.file.special[token] ?? this.file.vocab[token];
  }
}

/** The parts of a Hugging Face `tokenizer.json` this loader relies on (the library validates the rest). */
const HfTokenizerFile = z.looseObject({
  model: z.looseObject({ type: z.string() }),
  added_tokens: z.array(z.looseObject({ id: z.number().int().nonnegative(), content: z.string(), special: z.boolean().optional() })).optional(),
});

/**
 * A Hugging Face `tokenizer.json` (the real model's: LLaDA's byte-level BPE with the DiMOO special tokens added),
 * run by `@huggingface/tokenizers` (pure JS; the pieces it implements are listed in its README). `tokenizer_config.json`
 * is optional: the library reads only a few display options from it; whether BOS/EOS are added is decided by
 * `tokenizer.json`'s post-processor, exactly as the checkpoint's fast tokenizer does with `add_special_tokens=True`
 * (the reference scripts' default, spec §1.1). Nothing is fetched: both files come from the model directory.
 */
export class HfTokenizer implements TextTokenizer {
  private constructor(private readonly core: HfTokenizerCore) {}

  static fromJson(tokenizerJson: unknown, tokenizerConfig: unknown = {}): HfTokenizer {
    const parsed = HfTokenizerFile.safeParse(tokenizerJson);
    if (!parsed.success) throw new ModelLoadError(`invalid tokenizer.json: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    try {
      return new HfTokenizer(new HfTokenizerCore(tokenizerJson as object, tokenizerConfig ?? {}));
    } catch (cause) {
      throw new ModelLoadError(`tokenizer.json (model ${parsed.data.model.type}) is not supported by @huggingface/tokenizers: ${String(cause)}`, { cause });
    }
  }

  encode(text: string): number[] {
    return this.core.encode(text, { add_special_tokens: true }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.core.decode([...ids], { skip_special_tokens: true });
  }

  tokenId(token: string): number | undefined {
    return this.core.token_to_id(token);
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new ModelLoadError(`cannot read ${path}`, { cause });
  }
}

export async function loadTokenizer(dir: string, m: ModelManifest): Promise<TextTokenizer> {
  const path = join(dir, m.tokenizer.file);
  switch (m.tokenizer.kind) {
    case 'word': {
      const parsed = WordTokenizerFile.safeParse(await readJson(path));
      if (!parsed.success) throw new ModelLoadError(`invalid word tokenizer ${path}: ${parsed.error.message}`);
      return new WordTokenizer(parsed.data);
    }
    case 'hf': {
      const config = m.tokenizer.config ? await readJson(join(dir, m.tokenizer.config)) : {};
      try {
        return HfTokenizer.fromJson(await readJson(path), config);
      } catch (e) {
        throw e instanceof ModelLoadError ? new ModelLoadError(`${path}: ${e.message}`, { cause: e }) : e;
      }
    }
  }
}

/**
 * `tok(SYS, USER)` (spec §1.2): the manifest's prompt template through the model's tokenizer, with the special tokens its
 * post-processor adds (BOS) and **no EOS**: an EOS the post-processor appends is dropped, so the prompt ends with the
 * template's last token (`</user>`), before which i2i and understanding insert the image block (spec §1.1, §1.4).
 */
export function promptIds(tokenizer: TextTokenizer, m: ModelManifest, sys: string, user: string): Int32Array {
  const ids = tokenizer.encode(m.templates.prompt.replace('{sys}', sys).replace('{user}', user));
  if (m.tokens.eos !== null && ids.length > 1 && ids[ids.length - 1] === m.tokens.eos) ids.pop();
  return Int32Array.from(ids);
}

/** The special strings every DiMOO-style tokenizer must map to the manifest's ids (spec §1.1). */
export function expectedSpecialTokens(m: ModelManifest): Record<string, number> {
  const t = m.tokens;
  return {
    '<IMAGE>': t.boi,
    '</IMAGE>': t.eoi,
    '<answer>': t.boa,
    '</answer>': t.eoa,
    [m.templates.uncondition]: t.uncondition,
    ...(m.tokenizer.specialTokens ?? {}),
  };
}

/**
 * Start-up check of a model directory's tokenizer against its manifest (what a twin cannot prove about a real checkpoint,
 * spec §10): every special string has the manifest's id and is one token in context; the prompt template's special
 * strings are single tokens; a prompt starts with BOS exactly when the manifest names one and ends with the template's
 * last token (no EOS). Throws ModelLoadError listing every mismatch.
 */
export function checkTokenizer(tokenizer: TextTokenizer, m: ModelManifest): void {
  const problems: string[] = [];
  for (const [s, want] of Object.entries(expectedSpecialTokens(m))) {
    const got = tokenizer.tokenId(s);
    if (got !== want) problems.push(`${s} is id ${got ?? 'absent'}, manifest says ${want}`);
  }
  const templateSpecials = m.templates.prompt.split(/\{sys\}|\{user\}/).flatMap((part) => part.match(/<[^<>]+>/g) ?? []);
  for (const s of templateSpecials) {
    if (tokenizer.tokenId(s) === undefined) problems.push(`template token ${s} is not one token of the tokenizer`);
  }
  const firstSpecial = templateSpecials[0];
  const lastSpecial = templateSpecials[templateSpecials.length - 1];
  for (const [task, sys] of Object.entries(m.templates.sys)) {
    const ids = promptIds(tokenizer, m, sys, 'a question about 2 red circles?');
    const unc = promptIds(tokenizer, m, sys, m.templates.uncondition);
    if (!unc.includes(m.tokens.uncondition)) problems.push(`${task}: the unconditional prompt has no <uncondition> id ${m.tokens.uncondition}`);
    if (m.tokens.bos !== null && ids[0] !== m.tokens.bos) problems.push(`${task}: prompt starts with ${ids[0]}, not BOS ${m.tokens.bos}`);
    if (m.tokens.bos === null && firstSpecial !== undefined && m.templates.prompt.startsWith(firstSpecial) && ids[0] !== tokenizer.tokenId(firstSpecial)) {
      problems.push(`${task}: prompt starts with ${ids[0]}, manifest names no BOS`);
    }
    if (lastSpecial !== undefined && ids[ids.length - 1] !== tokenizer.tokenId(lastSpecial)) {
      problems.push(`${task}: prompt ends with ${ids[ids.length - 1]}, not ${lastSpecial} (the image block goes before it)`);
    }
    const limit = m.tokens.textVocabSize;
    const outside = ids.filter((i) => i < 0 || i >= limit);
    if (outside.length > 0) problems.push(`${task}: prompt ids ${outside.slice(0, 3).join(', ')} lie outside the text vocabulary [0, ${limit})`);
  }
  if (problems.length > 0) throw new ModelLoadError(`tokenizer ${m.tokenizer.file} does not match manifest ${m.name}: ${problems.join('; ')}`);
}

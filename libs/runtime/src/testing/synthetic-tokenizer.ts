/**
 * A small synthetic Hugging Face `tokenizer.json` for tests: a byte-level BPE (the kind of tokenizer LLaDA ships) with
 * a handful of merges, the DiMOO special tokens added at the real model's ids (spec §1.1) and a post-processor that
 * prepends BOS. It is data for the library under test, not a tokenizer: `@huggingface/tokenizers` runs it.
 * tools/model/export/twin.py writes the twin's tokenizer.json the same way.
 */

/** GPT-2's byte → printable character table (byte-level BPE alphabet). */
export function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return out;
}

export const REAL_SPECIALS: Record<string, number> = {
  '<|startoftext|>': 126080,
  '<|endoftext|>': 126081,
  '<|mdm_mask|>': 126336,
  '<IMAGE>': 126349,
  '</IMAGE>': 126350,
  '<uncondition>': 126351,
  '<answer>': 126354,
  '</answer>': 126355,
  // ids of these four are not known from the public sources (spec §10): the twin's choice, checked at first contact
  '<system>': 126352,
  '</system>': 126353,
  '<user>': 126342,
  '</user>': 126343,
};

export interface SyntheticTokenizerOptions {
  /** prepend this BOS string (TemplateProcessing), or none */
  bos?: string | null;
  /** append this EOS string too (to test that prompts drop it) */
  eos?: string | null;
  specials?: Record<string, number>;
}

export function syntheticTokenizerJson(options: SyntheticTokenizerOptions = {}): Record<string, unknown> {
  const bos = options.bos === undefined ? '<|startoftext|>' : options.bos;
  const eos = options.eos ?? null;
  const specials = options.specials ?? REAL_SPECIALS;
  const vocab: Record<string, number> = {};
  byteAlphabet().forEach((c, i) => (vocab[c] = i));
  const merges: [string, string][] = [
    ['Ġ', 't'],
    ['h', 'e'],
    ['Ġt', 'he'],
    ['Ġ', 'a'],
    ['i', 'n'],
    ['Ġ', 'i'],
    ['e', 'r'],
    ['o', 'n'],
    ['r', 'e'],
    ['a', 't'],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const added = Object.entries(specials).map(([content, id]) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const seq = (id: string) => ({ SpecialToken: { id, type_id: 0 } });
  const single = [...(bos ? [seq(bos)] : []), { Sequence: { id: 'A', type_id: 0 } }, ...(eos ? [seq(eos)] : [])];
  const specialTokens: Record<string, unknown> = {};
  for (const s of [bos, eos]) if (s) specialTokens[s] = { id: s, ids: [specials[s]], tokens: [s] };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specialTokens },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

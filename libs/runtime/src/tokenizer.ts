import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { z } from 'zod';
import { ModelLoadError } from './errors';

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
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
    return ids.map((i) => this.inverse.get(i) ?? '').filter((w) => w !== '' && !w.startsWith('<')).join(' ');
  }
}

export async function loadTokenizer(dir: string, m: ModelManifest): Promise<TextTokenizer> {
  const path = join(dir, m.tokenizer.file);
  switch (m.tokenizer.kind) {
    case 'word': {
      const parsed = WordTokenizerFile.safeParse(JSON.parse(await readFile(path, 'utf8')));
      if (!parsed.success) throw new ModelLoadError(`invalid word tokenizer ${path}: ${parsed.error.message}`);
      return new WordTokenizer(parsed.data);
    }
    case 'hf':
      throw new ModelLoadError(`tokenizer kind "hf" (${path}) is not supported yet: see issue 5`);
  }
}

/** `tok(SYS, USER)`: the manifest's prompt template, no EOS (spec §1.2). */
export function promptIds(tokenizer: TextTokenizer, m: ModelManifest, sys: string, user: string): Int32Array {
  return Int32Array.from(tokenizer.encode(m.templates.prompt.replace('{sys}', sys).replace('{user}', user)));
}

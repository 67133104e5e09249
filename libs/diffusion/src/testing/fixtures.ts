import type { CacheSettings } from '../cache-policy';
import type { TokenLayout } from '../layout';
import { understanding } from '../layout';
import { Sequence } from '../sequence';

/** A small token layout for the engine's unit tests: 20 text ids (specials 1–8), then `codebookSize` image codes. */
export function testLayout(codebookSize: number): TokenLayout {
  return {
    vocabSize: 20 + codebookSize,
    textVocabSize: 20,
    codeOffset: 20,
    codebookSize,
    mask: 1,
    newline: 2,
    boi: 3,
    eoi: 4,
    uncondition: 5,
    boa: 6,
    eoa: 7,
    answerPad: 8,
  };
}

/** An understanding sequence (LLaDA, 4 answer positions, no guidance) over a one-cell image. */
export function answerSequence(
  id: string,
  L: TokenLayout,
  { blockLength = 4, cache = null, seed = 1 }: { blockLength?: number; cache?: CacheSettings | null; seed?: number } = {},
): Sequence {
  const spec = understanding(L, { prompt: Int32Array.of(10, 11), image: { rows: 1, cols: 1, codes: Int32Array.of(0) }, genLength: 4 }, { kind: 'none' });
  return new Sequence(id, L, spec, {
    steps: 4,
    temperature: 0,
    seed,
    guidance: { kind: 'none' },
    cache,
    sampler: { kind: 'llada', blockLength, remasking: 'low_confidence' },
  });
}

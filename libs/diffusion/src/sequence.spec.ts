import type { TokenLayout } from './layout';
import { answerSequence, testLayout } from './testing/fixtures';
import { textToImage } from './layout';
import { Sequence } from './sequence';

const L: TokenLayout = testLayout(20);
const prompt = Int32Array.of(10, 11);

describe('Sequence (maskgit)', () => {
  const make = (steps: number) =>
    new Sequence('s', L, textToImage(L, { prompt, uncondPrompt: prompt, rows: 2, cols: 2 }, { kind: 'none' }), {
      steps,
      temperature: 0,
      seed: 3,
      guidance: { kind: 'none' },
      cache: null,
      sampler: { kind: 'maskgit' },
    });

  it('commits every sample, then re-masks the keep_n least confident', () => {
    const seq = make(4); // N0 = 4: keep_n = [3, 2, 1, 0]
    seq.commit([0, 1, 2, 3], [0.9, 0.1, 0.5, 0.2]);
    expect(seq.maskedTargets()).toEqual([1, 2, 3]);
    expect(seq.region[0]).toBe(L.codeOffset + 0);
    seq.commit([9, 9, 9, 9], [0, 0.3, 0.8, 0.4]); // target 0 is no longer masked: its sample is ignored
    expect(seq.region[0]).toBe(L.codeOffset + 0);
    expect(seq.maskedTargets()).toEqual([1, 3]);
    seq.commit([5, 5, 5, 5], [0, 0.3, 0, 0.4]);
    expect(seq.maskedTargets()).toEqual([1]);
    seq.commit([6, 6, 6, 6], [0, 0.01, 0, 0]);
    expect(seq.done).toBe(true);
    expect(Array.from(seq.region)).toEqual([20, 26, 2, 29, 25, 2]);
  });

  it('rejects guidance that does not match its branches, and bad steps', () => {
    const spec = textToImage(L, { prompt, uncondPrompt: prompt, rows: 1, cols: 1 }, { kind: 'none' });
    const p = { steps: 4, temperature: 0, seed: 0, cache: null, sampler: { kind: 'maskgit' } as const };
    expect(() => new Sequence('x', L, spec, { ...p, guidance: { kind: 'text', scale: 2 } })).toThrow('guidance');
    expect(() => new Sequence('x', L, spec, { ...p, steps: 0, guidance: { kind: 'none' } })).toThrow('steps');
  });
});

describe('Sequence (llada)', () => {
  it('fills block by block, the quota most confident first', () => {
    const seq = answerSequence('u', L, { blockLength: 2, seed: 0 });
    seq.commit([11, 12, 13, 14], [0.2, 0.7, 0.99, 0.99]); // block 0 only: target 1 (0.7) wins
    expect(Array.from(seq.region)).toEqual([1, 12, 1, 1]);
    seq.commit([15, 16, 17, 18], [0.1, 0, 0.99, 0.99]);
    expect(Array.from(seq.region)).toEqual([15, 12, 1, 1]);
    seq.commit([0, 0, 13, 14], [0, 0, 0.3, 0.6]);
    expect(Array.from(seq.region)).toEqual([15, 12, 1, 14]);
    expect(() => new Sequence('v', L, seq.spec, { ...seq.params, sampler: { kind: 'llada', blockLength: 3, remasking: 'low_confidence' } })).toThrow(
      'blockLength',
    );
  });
});

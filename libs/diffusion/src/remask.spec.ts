import { remaskLowest, remaskScores, sampleFromLogits, topConfidence } from './sampler';

describe('remasking rule', () => {
  it('re-masks exactly keep_n without ties', () => {
    const scores = Float64Array.of(-0.1, -3, -0.5, -2, -0.01);
    expect(remaskLowest(scores, 2)).toEqual([false, true, false, true, false]);
  });

  it('keeps ties at the cutoff committed (strict <)', () => {
    const scores = Float64Array.of(-1, -1, -1, -0.5);
    // sorted[2] = -1: nothing is strictly below it, so all tied positions stay committed
    expect(remaskLowest(scores, 2)).toEqual([false, false, false, false]);
  });

  it('always commits at least one token', () => {
    const scores = Float64Array.of(-3, -2, -1);
    expect(remaskLowest(scores, 10)).toEqual([true, true, false]);
    expect(remaskLowest(scores, 0)).toEqual([false, false, false]);
  });

  it('scores log p plus temperature-scaled Gumbel, flooring p at 1e-20', () => {
    const s = remaskScores([0.5, 0], 2, [0.25, 0]);
    expect(s[0]).toBeCloseTo(Math.log(0.5) + 0.5, 12);
    expect(s[1]).toBeCloseTo(Math.log(1e-20), 9);
  });

  it('picks the most confident in-block positions, first index on ties', () => {
    expect(topConfidence([0.2, 0.9, -Infinity, 0.9, 0.1], 2)).toEqual([1, 3]);
    expect(topConfidence([-Infinity, 0.5], 3)).toEqual([1]);
  });
});

describe('token sampling rule', () => {
  it('takes the first argmax at τ = 0 and reports softmax(z) there', () => {
    const z = Float32Array.of(1, 3, 3, 0);
    const s = sampleFromLogits(z, 0, 0.99);
    expect(s.index).toBe(1);
    const denom = Math.exp(-2) + 1 + 1 + Math.exp(-3);
    expect(s.prob).toBeCloseTo(1 / denom, 6);
  });

  it('inverts the CDF of softmax(z/τ)', () => {
    const z = Float32Array.of(0, 0, 0, 0);
    expect(sampleFromLogits(z, 1, 0.1).index).toBe(0);
    expect(sampleFromLogits(z, 1, 0.3).index).toBe(1);
    expect(sampleFromLogits(z, 1, 0.6).index).toBe(2);
    expect(sampleFromLogits(z, 1, 0.9).index).toBe(3);
  });

  it('draws with the softmax(z/τ) frequencies', () => {
    const z = Float32Array.of(Math.log(1), Math.log(2), Math.log(7));
    const counts = [0, 0, 0];
    for (let i = 0; i < 5000; i++) counts[sampleFromLogits(z, 1, (i + 0.5) / 5000).index]!++;
    expect(counts.map((c) => Math.round(c / 500))).toEqual([1, 2, 7]);
  });
});

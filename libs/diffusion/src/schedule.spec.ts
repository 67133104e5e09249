import { keepCount, keepSchedule, transferCounts } from './sampler';

describe('cosine keep schedule', () => {
  it('matches the spec for N0 = 256, T = 8', () => {
    expect(keepSchedule(256, 8)).toEqual([251, 236, 212, 181, 142, 97, 49, 0]);
  });

  it('keeps at least one masked until the last step, none on it', () => {
    for (const [n0, T] of [
      [1, 4],
      [3, 64],
      [64, 16],
      [4096, 64],
    ] as const) {
      const s = keepSchedule(n0, T);
      expect(s.at(-1)).toBe(0);
      for (const k of s.slice(0, -1)) expect(k).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < T - 1; i++) expect(s[i]!).toBeLessThanOrEqual(s[i - 1]!);
    }
  });

  it('reveals 2, 3, … tokens early for N0 = 4096, T = 64 (spec §2.2)', () => {
    expect(4096 - keepCount(4096, 0, 64)).toBe(2);
    expect(keepCount(4096, 0, 64) - keepCount(4096, 1, 64)).toBe(3);
  });
});

describe('LLaDA transfer counts', () => {
  it('splits evenly with the remainder first', () => {
    expect(transferCounts(10, 4)).toEqual([3, 3, 2, 2]);
    expect(transferCounts(8, 8)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(transferCounts(3, 4)).toEqual([1, 1, 1, 0]);
  });
});

/**
 * ML-Cache (spec §3): which steps recompute everything and which positions a partial step recomputes.
 * - warmup w = floor(T·warmupRatio); step s is full when s ≤ w or (s − w) % refreshInterval == 0;
 * - after each step, per branch, θ = quantile(max-logit over the row, 1 − cacheRatio) with linear interpolation and the
 *   next partial step recomputes S = { i : maxLogit_i ≤ θ }; the rest reuse their cached K/V and logits.
 */

export interface CacheSettings {
  cacheRatio: number;
  warmupRatio: number;
  refreshInterval: number;
}

export function isFullStep(step: number, totalSteps: number, cache: CacheSettings | null): boolean {
  if (!cache) return true;
  const warmup = Math.floor(totalSteps * cache.warmupRatio);
  return step <= warmup || (step - warmup) % cache.refreshInterval === 0;
}

/** Linear-interpolation quantile (torch.quantile's default) of the first `length` values. */
export function quantile(values: ArrayLike<number>, length: number, q: number): number {
  const sorted = Float64Array.from({ length }, (_, i) => values[i]!).sort();
  if (length === 0) return -Infinity;
  const pos = q * (length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Positions (0..length-1) to recompute on the next partial step. */
export function selectRecompute(rowMax: ArrayLike<number>, length: number, cacheRatio: number): number[] {
  const theta = quantile(rowMax, length, 1 - cacheRatio);
  const selected: number[] = [];
  for (let i = 0; i < length; i++) if (rowMax[i]! <= theta) selected.push(i);
  return selected;
}

/** Full-forward equivalents of a cached run, the figure the spec calls 2.03× for T = 64 at the defaults. */
export function idealCost(totalSteps: number, cache: CacheSettings): number {
  let cost = 0;
  for (let s = 0; s < totalSteps; s++) cost += isFullStep(s, totalSteps, cache) ? 1 : 1 - cache.cacheRatio;
  return cost;
}

/**
 * Deciding which freshly sampled tokens to keep.
 *
 * Image tasks (spec §2.1 mask_by_random_topk): score c = log(max(p, 1e-20)) + τ·g, re-mask every position whose score is
 * strictly below the (k+1)-th smallest score, k = min(keep_n, n − 1): with no ties exactly keep_n are re-masked; ties at
 * the cutoff stay committed; at least one token is committed per step.
 *
 * Text understanding (LLaDA low-confidence remasking): commit the `quota` most confident masked positions of the
 * current block (first index wins ties).
 */

export function remaskScores(probs: ArrayLike<number>, temperature: number, gumbels: ArrayLike<number>): Float64Array {
  const scores = new Float64Array(probs.length);
  for (let i = 0; i < probs.length; i++) {
    scores[i] = Math.log(Math.max(probs[i]!, 1e-20)) + temperature * gumbels[i]!;
  }
  return scores;
}

/** Returns, for each candidate, whether it goes back to [MASK]. */
export function remaskLowest(scores: Float64Array, keepN: number): boolean[] {
  const n = scores.length;
  if (n === 0) return [];
  const sorted = Float64Array.from(scores).sort();
  const cutoff = sorted[Math.min(Math.max(keepN, 0), n - 1)]!;
  return Array.from(scores, (c) => c < cutoff);
}

/** Indices (into `confidence`) of the `quota` highest confidences; -Infinity entries are never chosen. */
export function topConfidence(confidence: ArrayLike<number>, quota: number): number[] {
  const order: number[] = [];
  for (let i = 0; i < confidence.length; i++) if (confidence[i]! > -Infinity) order.push(i);
  order.sort((a, b) => confidence[b]! - confidence[a]! || a - b);
  return order.slice(0, quota);
}

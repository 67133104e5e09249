/**
 * Unmasking schedules.
 * Image tasks (MaskGIT cosine, spec §2.2): after step s, keep_n = floor(N0·cos(π/2·(s+1)/T)) positions stay masked
 * (at least 1 before the last step, 0 on the last step). The reference computes the cosine in float32 on the device.
 * Text understanding (LLaDA, spec §2.6): each block's masks are split evenly over its steps, the remainder to the first ones.
 */

export function keepCount(n0: number, step: number, totalSteps: number): number {
  if (step >= totalSteps - 1) return 0;
  const ratio = Math.fround(Math.cos(Math.fround((Math.PI / 2) * Math.fround((step + 1) / totalSteps))));
  return Math.max(1, Math.floor(Math.fround(n0 * ratio)));
}

export function keepSchedule(n0: number, totalSteps: number): number[] {
  return Array.from({ length: totalSteps }, (_, s) => keepCount(n0, s, totalSteps));
}

/** Tokens to commit at each of `steps` steps for a block holding `masked` masks. */
export function transferCounts(masked: number, steps: number): number[] {
  const base = Math.floor(masked / steps);
  const remainder = masked % steps;
  return Array.from({ length: steps }, (_, i) => base + (i < remainder ? 1 : 0));
}

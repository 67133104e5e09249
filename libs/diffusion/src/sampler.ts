/**
 * One sampling step, the algorithm in one file (spec §2; docs/model-interface.md §3). A step of a job:
 *   1. guidance: the model's branch logits combine as z = Σ_g w_g · logits_g (`guidanceWeights`);
 *   2. the draw: each masked target samples a token from softmax(z/τ) with its own uniform, and its confidence p
 *      (`sampleFromLogits`; the `denoise`/`sample_head` graphs embed this rule, tests hold them to it);
 *   3. the commit:
 *      - image tasks (MaskGIT, `maskgitRemask`): every masked target takes its draw, then the keep_n = `keepCount`
 *        least confident (log p + τ·Gumbel) go back to [MASK];
 *      - understanding (LLaDA, `lladaTransfer`): blocks left to right, the block's quota (`transferCounts`) of most
 *        confident masked targets commit.
 * The random numbers (rng.ts) depend only on (seed, step, stream, index), so batching never changes a job's tokens.
 * Sequence (sequence.ts) holds a job's state and applies these rules; which positions a step recomputes is ML-Cache's
 * (cache-policy.ts).
 */
import { gumbel, RngStream, uniforms } from './rng';

const f = Math.fround;

// ── 1. classifier-free guidance ─────────────────────────────────────────────────────────────────────────────────
/*
 * The graphs combine branch logits as Σ_g w_g · logits_g with these weights (docs/model-interface.md §3):
 * - text-to-image and understanding: (1 + w)·cond − w·uncond
 * - image-to-image (dual): c + a·(c − u_text) + b·(c − u_img) = (1 + a + b)·c − a·u_text − b·u_img
 * A scale of 0 is resolved to `none` before a job reaches the engine (@dimoo/contracts resolveJob): one row, not G.
 */
export type Guidance = { kind: 'none' } | { kind: 'text'; scale: number } | { kind: 'dual'; text: number; image: number };

export function guidanceWeights(g: Guidance): number[] {
  switch (g.kind) {
    case 'none':
      return [1];
    case 'text':
      return [1 + g.scale, -g.scale];
    case 'dual':
      return [1 + g.text + g.image, -g.text, -g.image];
  }
}

export function branchCount(g: Guidance): number {
  return guidanceWeights(g).length;
}

// ── 2. the draw ─────────────────────────────────────────────────────────────────────────────────────────────────

export interface Sample {
  /** index into the vocabulary slice */
  index: number;
  /** softmax(z) at the sampled index: the confidence used by remasking (temperature-free) */
  prob: number;
}

/** z = Σ_g w_g · logits_g over one position's slice (float32, branches in order). */
export function combineGuidance(branchLogits: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const first = branchLogits[0];
  if (!first) throw new Error('no branch logits');
  const z = new Float32Array(first.length);
  branchLogits.forEach((logits, g) => {
    const w = f(weights[g] ?? 0);
    for (let j = 0; j < z.length; j++) z[j] = f(z[j]! + f(w * logits[j]!));
  });
  return z;
}

/**
 * Draw from softmax(z/τ) by inverse CDF with one uniform (argmax, first on ties, at τ = 0). The guided logits are
 * float32; the CDF and the confidence are computed in float64 and the confidence rounded to float32, so that the
 * graphs and this definition agree whatever order a kernel sums in.
 */
export function sampleFromLogits(z: Float32Array, temperature: number, u: number): Sample {
  let max = -Infinity;
  let argmax = 0;
  for (let j = 0; j < z.length; j++) {
    if (z[j]! > max) {
      max = z[j]!;
      argmax = j;
    }
  }
  let index = argmax;
  if (temperature > 0) {
    const tau = f(temperature);
    let total = 0;
    const cumulative = new Float64Array(z.length);
    for (let j = 0; j < z.length; j++) cumulative[j] = total += Math.exp(f(z[j]! - max) / tau);
    const threshold = f(u) * total;
    let count = 0;
    for (let j = 0; j < z.length; j++) if (cumulative[j]! < threshold) count++;
    index = Math.min(count, z.length - 1);
  }
  let sum = 0;
  for (let j = 0; j < z.length; j++) sum += Math.exp(f(z[j]! - max));
  return { index, prob: f(Math.exp(f(z[index]! - max)) / sum) };
}

// ── 3. schedules ────────────────────────────────────────────────────────────────────────────────────────────────
/*
 * Image tasks (MaskGIT cosine, spec §2.2): after step s, keep_n = floor(N0·cos(π/2·(s+1)/T)) positions stay masked
 * (at least 1 before the last step, 0 on the last step). The reference computes the cosine in float32 on the device.
 * Understanding (LLaDA, spec §2.6): each block's masks are split evenly over its steps, the remainder to the first ones.
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

// ── 4. remasking ────────────────────────────────────────────────────────────────────────────────────────────────
/*
 * Image tasks (spec §2.1 mask_by_random_topk): score c = log(max(p, 1e-20)) + τ·g, re-mask every position whose score
 * is strictly below the (k+1)-th smallest score, k = min(keep_n, n − 1): with no ties exactly keep_n are re-masked;
 * ties at the cutoff stay committed; at least one token is committed per step.
 * Understanding (LLaDA low-confidence remasking): commit the `quota` most confident masked positions of the current
 * block (first index wins ties).
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

// ── 5. one step's commit ────────────────────────────────────────────────────────────────────────────────────────

export interface StepPosition {
  seed: number;
  /** the step being committed (0-based) and the schedule's length */
  step: number;
  steps: number;
  temperature: number;
  /** targets of the sequence (the random streams are drawn per target) */
  targets: number;
}

/**
 * MaskGIT: the masked targets (`masked`, target indices) have all taken their draws; returns, for each of them, whether
 * it goes back to [MASK]: the keep_n least confident, keep_n from N0 (`initialMasked`) by the cosine schedule.
 */
export function maskgitRemask(at: StepPosition, masked: readonly number[], sampleProb: ArrayLike<number>, initialMasked: number): boolean[] {
  const noise = uniforms(at.seed, at.step, RngStream.RemaskGumbel, at.targets);
  const scores = remaskScores(
    masked.map((n) => sampleProb[n]!),
    at.temperature,
    masked.map((n) => gumbel(noise[n]!)),
  );
  return remaskLowest(scores, keepCount(initialMasked, at.step, at.steps));
}

/** LLaDA's blocks: which block a step works on, and whether it is the block's first step. */
export function lladaBlock(at: StepPosition, blockLength: number): { block: number; stepsPerBlock: number; first: boolean } {
  const stepsPerBlock = at.steps / (at.targets / blockLength);
  return { block: Math.floor(at.step / stepsPerBlock), stepsPerBlock, first: at.step % stepsPerBlock === 0 };
}

/**
 * LLaDA: the targets to commit this step: the `quota` most confident masked targets of the current block (or random
 * ones with `remasking: 'random'`, stream RandomRemask).
 */
export function lladaTransfer(
  at: StepPosition,
  sampler: { blockLength: number; remasking: 'low_confidence' | 'random' },
  masked: readonly number[],
  sampleProb: ArrayLike<number>,
  quota: number,
): number[] {
  const { block } = lladaBlock(at, sampler.blockLength);
  const inBlock = (n: number) => n >= block * sampler.blockLength && n < (block + 1) * sampler.blockLength;
  const random = sampler.remasking === 'random' ? uniforms(at.seed, at.step, RngStream.RandomRemask, at.targets) : null;
  const confidence = new Float64Array(at.targets).fill(-Infinity);
  for (const n of masked) if (inBlock(n)) confidence[n] = random ? random[n]! : sampleProb[n]!;
  return topConfidence(confidence, quota);
}

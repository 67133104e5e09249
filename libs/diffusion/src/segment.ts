/**
 * The GPU ML-Cache path (docs/model-interface.md §4.6): one `denoise_segment` run per refresh segment — a full step
 * and the partial steps up to the next full step — so the K/V cache never leaves the device. This file plans what a
 * run needs (which steps form each sequence's segment, the keep counts, the random numbers) exactly as the host path
 * (engine.ts + sequence.ts) would use them, and drives a batch of sequences through an injected `SegmentModel`
 * (libs/runtime implements it with onnxruntime-node). No I/O.
 *
 * Every run starts each of its sequences at a full step; a sequence whose segment is shorter than the graph's unroll
 * (warmup steps, the schedule's last segment, no cache) leaves the remaining steps inactive, so sequences at different
 * points of different schedules share one run.
 */
import { callGroups } from './batch-plan';
import type { CallRecord, RunnerOptions, Running } from './runner';
import { SequenceRunner } from './runner';
import type { CacheSettings } from './cache-policy';
import { isFullStep } from './cache-policy';
import { InvalidSamplingRequest } from './errors';
import type { RowBatch } from './model';
import { gumbel, RngStream, uniforms } from './rng';
import { keepCount } from './sampler';
import type { Sequence } from './sequence';

/** Steps one segment covers from the full step `step`: up to (not including) the next full step, or to the end. */
export function segmentLength(step: number, totalSteps: number, cache: CacheSettings | null): number {
  let n = 1;
  while (step + n < totalSteps && !isFullStep(step + n, totalSteps, cache)) n++;
  return n;
}

/** The first step of every segment of a schedule: one `denoise_segment` run each (they are its full steps). */
export function segmentStarts(totalSteps: number, cache: CacheSettings | null): number[] {
  const starts: number[] = [];
  for (let s = 0; s < totalSteps; s += segmentLength(s, totalSteps, cache)) starts.push(s);
  return starts;
}

/** The longest segment of a schedule: the unroll a graph needs to run it. */
export function longestSegment(totalSteps: number, cache: CacheSettings | null): number {
  return Math.max(...segmentStarts(totalSteps, cache).map((s) => segmentLength(s, totalSteps, cache)));
}

/** N0 of the MaskGIT schedule: the targets masked when the sequence was built (what Sequence counts at construction). */
export function initialMaskedTargets(seq: Sequence): number {
  let n = 0;
  for (const cell of seq.spec.targets) if (seq.spec.region[cell] === seq.layout.mask) n++;
  return n;
}

/** Throws unless the sequence can run on a graph unrolled to `segmentSteps` from where it stands. */
export function checkSegmentable(seq: Sequence, segmentSteps: number): void {
  const { steps, cache, sampler } = seq.params;
  if (sampler.kind !== 'maskgit') throw new InvalidSamplingRequest('sampler', 'the GPU segment path embeds the MaskGIT rule only (image tasks)');
  const longest = longestSegment(steps, cache);
  if (longest > segmentSteps) {
    throw new InvalidSamplingRequest('cache.refreshInterval', `a segment of ${longest} steps does not fit the graph's ${segmentSteps}`);
  }
  if (!seq.done && !isFullStep(seq.step, steps, cache)) throw new InvalidSamplingRequest('step', `step ${seq.step} does not start a segment`);
}

/** One sequence's part of a run. Arrays are per step of the graph's unroll T; steps past `steps` are inactive. */
export interface SegmentPlan {
  /** the full step the segment starts at */
  start: number;
  /** steps run (1 … T) */
  steps: number;
  /** [T] keep_n after each step (sampler.ts keepCount from N0); 0 on inactive steps */
  keepCounts: Int32Array;
  /** [T] 1 on the first `steps` steps */
  active: Uint8Array;
  /** [T·N] each step's token uniforms (stream 0), exactly the float32 values the host path feeds `denoise`/`sample_head` */
  uniforms: Float32Array;
  /** [T·N] τ·g with g the remask Gumbel of each step (stream 1), float64 as sampler.ts remaskScores adds it to log p */
  remaskNoise: Float64Array;
  /** quantile level source for the partial steps: the sequence's cacheRatio, or 1 (select only the minimum) when it runs no partial step */
  cacheRatio: number;
}

export function planSegment(seq: Sequence, segmentSteps: number): SegmentPlan {
  checkSegmentable(seq, segmentSteps);
  const { steps: total, cache, seed, temperature } = seq.params;
  const start = seq.step;
  const steps = segmentLength(start, total, cache);
  const N = seq.targets;
  const n0 = initialMaskedTargets(seq);
  const plan: SegmentPlan = {
    start,
    steps,
    keepCounts: new Int32Array(segmentSteps),
    active: new Uint8Array(segmentSteps),
    uniforms: new Float32Array(segmentSteps * N),
    remaskNoise: new Float64Array(segmentSteps * N),
    // a sequence with no partial step in this run: its inactive rows then recompute one position, not a tenth
    cacheRatio: steps > 1 && cache ? cache.cacheRatio : 1,
  };
  for (let t = 0; t < steps; t++) {
    const step = start + t;
    plan.active[t] = 1;
    plan.keepCounts[t] = keepCount(n0, step, total);
    plan.uniforms.set(uniforms(seed, step, RngStream.TokenUniform, N), t * N);
    const u = uniforms(seed, step, RngStream.RemaskGumbel, N);
    for (let n = 0; n < N; n++) plan.remaskNoise[t * N + n] = temperature * gumbel(u[n]!);
  }
  return plan;
}

/** Writes a run's tokens (ids at the targets, [N]) into the sequence and advances it past the segment. */
export function applySegment(seq: Sequence, plan: SegmentPlan, tokens: ArrayLike<number>): void {
  if (seq.step !== plan.start) throw new Error(`sequence ${seq.id} moved since its segment was planned`);
  seq.spec.targets.forEach((cell, n) => (seq.region[cell] = tokens[n]!));
  seq.step += plan.steps;
}

/** The inputs of one `denoise_segment` run (docs/model-interface.md §4.6); rows as for `denoise`, R = B·G. */
export interface SegmentInput extends RowBatch {
  sequences: number;
  branches: number;
  targets: number;
  /** the graph's unroll T */
  segmentSteps: number;
  targetPositions: Int32Array;
  guidanceWeights: Float32Array;
  vocab: readonly [number, number];
  temperature: Float32Array;
  /** [B] float64 */
  cacheRatio: Float64Array;
  /** [B, T] */
  keepCounts: Int32Array;
  /** [B, T] */
  stepActive: Uint8Array;
  /** [B, T, N] */
  uniforms: Float32Array;
  /** [B, T, N] float64 */
  remaskNoise: Float64Array;
}

export interface SegmentOutput {
  /** [B, N] token ids at the targets after the segment (mask where still undecided) */
  tokens: Int32Array;
  /** [B, N] confidences of each sequence's last active step */
  sampleProb: Float32Array;
  /** [R, L] merged row max after each row's last active step */
  rowMax: Float32Array;
}

export interface SegmentModel {
  /** the graph's unroll T (the manifest's segmentSteps) */
  readonly segmentSteps: number;
  segment(input: SegmentInput): Promise<SegmentOutput>;
}

/** One run's inputs for sequences of one group (same branches, vocabulary slice, targets) padded to `length`. */
export function segmentBatch(seqs: readonly Sequence[], length: number, segmentSteps: number): { input: SegmentInput; plans: SegmentPlan[] } {
  const first = seqs[0];
  if (!first) throw new Error('empty segment batch');
  const G = first.branches;
  const N = first.targets;
  const T = segmentSteps;
  const B = seqs.length;
  const R = B * G;
  const L = length;
  const input: SegmentInput = {
    rows: R,
    length: L,
    sequences: B,
    branches: G,
    targets: N,
    segmentSteps: T,
    inputIds: new Int32Array(R * L),
    positionIds: new Int32Array(R * L),
    attentionMask: new Int32Array(R * L),
    targetPositions: new Int32Array(R * N),
    guidanceWeights: new Float32Array(B * G),
    vocab: first.spec.vocab,
    temperature: new Float32Array(B),
    cacheRatio: new Float64Array(B),
    keepCounts: new Int32Array(B * T),
    stepActive: new Uint8Array(B * T),
    uniforms: new Float32Array(B * T * N),
    remaskNoise: new Float64Array(B * T * N),
  };
  const plans = seqs.map((seq, b) => {
    if (seq.branches !== G || seq.targets !== N || seq.spec.vocab.join() !== first.spec.vocab.join()) {
      throw new Error(`sequence ${seq.id} does not fit its segment batch`);
    }
    for (let g = 0; g < G; g++) {
      const r = b * G + g;
      const len = seq.rowLength(g);
      if (len > L) throw new Error(`sequence ${seq.id} is longer than its batch's rows`);
      seq.writeRow(g, input.inputIds.subarray(r * L, r * L + len));
      for (let i = 0; i < len; i++) {
        input.positionIds[r * L + i] = i;
        input.attentionMask[r * L + i] = 1;
      }
      for (let n = 0; n < N; n++) input.targetPositions[r * N + n] = seq.targetPosition(g, n);
    }
    input.guidanceWeights.set(seq.weights, b * G);
    input.temperature[b] = seq.params.temperature;
    const plan = planSegment(seq, T);
    input.cacheRatio[b] = plan.cacheRatio;
    input.keepCounts.set(plan.keepCounts, b * T);
    input.stepActive.set(plan.active, b * T);
    input.uniforms.set(plan.uniforms, b * T * N);
    input.remaskNoise.set(plan.remaskNoise, b * T * N);
    return plan;
  });
  return { input, plans };
}

export type SegmentRunnerOptions = RunnerOptions;

/**
 * Runs sequences on the GPU path: every `step()` advances each sequence by one segment, with one run per group of
 * sequences that share branches, vocabulary slice, padded length and target count (at most `maxRows` rows).
 */
export class SegmentRunner extends SequenceRunner<Running> {
  constructor(
    private readonly model: SegmentModel,
    options: SegmentRunnerOptions,
  ) {
    super(options);
  }

  /** Whether a sequence can run here from where it stands (image tasks whose segments fit the graph's unroll). */
  accepts(seq: Sequence): boolean {
    try {
      checkSegmentable(seq, this.model.segmentSteps);
      return true;
    } catch {
      return false;
    }
  }

  protected member(seq: Sequence, length: number): Running {
    checkSegmentable(seq, this.model.segmentSteps);
    return { seq, length };
  }

  /** Every member advances by one segment: one run per group. */
  protected async advance(calls: CallRecord[]): Promise<void> {
    for (const group of this.groups()) {
      const { input, plans } = segmentBatch(
        group.map((m) => m.seq),
        group[0]!.length,
        this.model.segmentSteps,
      );
      const t0 = performance.now();
      const out = await this.model.segment(input);
      const steps = Math.max(...plans.map((p) => p.steps));
      // every step of the run computes every position of every row (the graph's inactive steps too)
      const positions = input.rows * input.length * steps;
      calls.push({
        kind: 'segment',
        sequences: input.sequences,
        rows: input.rows,
        length: input.length,
        positions,
        fullPositions: positions,
        steps,
        ms: performance.now() - t0,
      });
      const N = input.targets;
      group.forEach((m, b) => applySegment(m.seq, plans[b]!, out.tokens.subarray(b * N, (b + 1) * N)));
    }
  }

  /** The K/V cache lives and dies inside each run. */
  protected cacheBytes(): number {
    return 0;
  }

  private groups(): Running[][] {
    return callGroups(this.members.values(), (m) => [m.seq.branches, m.seq.spec.vocab.join('-'), m.length, m.seq.targets].join('|'), this.options.maxRows);
  }
}

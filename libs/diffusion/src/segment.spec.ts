import type { CacheSettings } from './cache-policy';
import { isFullStep } from './cache-policy';
import type { TokenLayout } from './layout';
import { answerSequence, testLayout } from './testing/fixtures';
import { textToImage } from './layout';
import { gumbel, RngStream, uniforms } from './rng';
import { keepCount } from './sampler';
import type { SegmentInput, SegmentModel, SegmentOutput } from './segment';
import {
  applySegment,
  checkSegmentable,
  initialMaskedTargets,
  longestSegment,
  planSegment,
  segmentBatch,
  segmentLength,
  SegmentRunner,
  segmentStarts,
} from './segment';
import type { SamplingParams } from './sequence';
import { Sequence } from './sequence';

const L: TokenLayout = testLayout(40);
const CACHE: CacheSettings = { cacheRatio: 0.9, warmupRatio: 0.3, refreshInterval: 5 };

function make(id: string, over: Partial<SamplingParams> = {}, size = 4, canvas = false): Sequence {
  const cells = size * size;
  const spec = textToImage(
    L,
    {
      prompt: Int32Array.of(10, 11, 12),
      uncondPrompt: Int32Array.of(10, 5),
      rows: size,
      cols: size,
      ...(canvas
        ? { canvas: { codes: Int32Array.from({ length: cells }, (_, i) => i % 40), regenerate: Array.from({ length: cells }, (_, i) => i % 3 !== 0) } }
        : {}),
    },
    { kind: 'text', scale: 1 },
  );
  return new Sequence(id, L, spec, {
    steps: 20,
    temperature: 0.7,
    seed: 42,
    guidance: { kind: 'text', scale: 1 },
    cache: CACHE,
    sampler: { kind: 'maskgit' },
    ...over,
  });
}

describe('segments of a schedule', () => {
  it('start at the full steps and run to the next one', () => {
    // T = 64 at the defaults: warmup 19, full steps 0…19, 24, …, 59 (spec §3): 28 segments, the last 5 long
    const starts = segmentStarts(64, CACHE);
    expect(starts).toEqual(Array.from({ length: 64 }, (_, s) => s).filter((s) => isFullStep(s, 64, CACHE)));
    expect(starts).toHaveLength(28);
    expect(starts.map((s) => segmentLength(s, 64, CACHE))).toEqual([...Array<number>(19).fill(1), ...Array<number>(9).fill(5)]);
    // T = 40: warmup 12, full 0…12, 17, 22, 27, 32, 37 — the last segment is 3 steps
    expect(segmentStarts(40, CACHE).slice(-3)).toEqual([27, 32, 37]);
    expect(segmentLength(37, 40, CACHE)).toBe(3);
    expect(longestSegment(40, CACHE)).toBe(5);
    expect(longestSegment(64, { ...CACHE, refreshInterval: 8 })).toBe(8);
    // without ML-Cache every step is its own segment
    expect(segmentStarts(6, null)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(longestSegment(6, null)).toBe(1);
  });
});

describe('planSegment', () => {
  it('gives the keep counts and random numbers the host path uses at each step of the segment', () => {
    const seq = make('a', { steps: 40 });
    seq.step = 12; // a full step (the last of the warmup) that starts a 5-step segment
    const plan = planSegment(seq, 5);
    const N = seq.targets;
    expect(plan).toMatchObject({ start: 12, steps: 5, cacheRatio: 0.9 });
    expect(Array.from(plan.active)).toEqual([1, 1, 1, 1, 1]);
    expect(initialMaskedTargets(seq)).toBe(16);
    for (let t = 0; t < 5; t++) {
      expect(plan.keepCounts[t]).toBe(keepCount(16, 12 + t, 40));
      seq.step = 12 + t;
      expect(Array.from(plan.uniforms.subarray(t * N, (t + 1) * N))).toEqual(Array.from(seq.tokenUniforms()));
      const g = uniforms(42, 12 + t, RngStream.RemaskGumbel, N);
      expect(Array.from(plan.remaskNoise.subarray(t * N, (t + 1) * N))).toEqual(Array.from(g, (u) => 0.7 * gumbel(u)));
    }
  });

  it('leaves the steps past a short segment inactive and zero, and keeps one-step runs cheap', () => {
    const seq = make('b', { steps: 40 });
    seq.step = 37;
    const plan = planSegment(seq, 5);
    expect(plan.steps).toBe(3);
    expect(Array.from(plan.active)).toEqual([1, 1, 1, 0, 0]);
    expect(Array.from(plan.keepCounts.subarray(3))).toEqual([0, 0]);
    expect(plan.uniforms.subarray(3 * seq.targets).every((u) => u === 0)).toBe(true);
    seq.step = 2;
    expect(planSegment(seq, 5)).toMatchObject({ steps: 1, cacheRatio: 1 });
  });

  it('refuses sequences the graph cannot run', () => {
    expect(() => checkSegmentable(make('c', { cache: { ...CACHE, refreshInterval: 6 }, steps: 64 }), 5)).toThrow(/segment of 6 steps/);
    const mid = make('d', { steps: 40 });
    mid.step = 14;
    expect(() => planSegment(mid, 5)).toThrow(/does not start a segment/);
    const mmu = answerSequence('m', L);
    expect(() => checkSegmentable(mmu, 5)).toThrow(/MaskGIT rule only/);
  });
});

/**
 * The graph's commit rule as docs/model-interface.md §4.6 states it, fed only from the plan: with the same samples it
 * must move a sequence exactly as Sequence.commit does step by step (keep counts, noise, N0, ties).
 */
function graphCommit(tokens: number[], index: ArrayLike<number>, prob: ArrayLike<number>, keep: number, noise: ArrayLike<number>): number[] {
  const masked = tokens.flatMap((t, n) => (t === L.mask ? [n] : []));
  const out = tokens.map((t, n) => (t === L.mask ? L.codeOffset + index[n]! : t));
  if (masked.length === 0) return out;
  const score = (n: number) => Math.log(Math.max(prob[n]!, 1e-20)) + noise[n]!;
  const cutoff = masked.map(score).sort((a, b) => a - b)[Math.min(Math.max(keep, 0), masked.length - 1)]!;
  for (const n of masked) if (score(n) < cutoff) out[n] = L.mask;
  return out;
}

/** Deterministic stand-in samples for step `s`: confidences with ties (several exactly 1 and equal values). */
const samples = (s: number, N: number) => ({
  index: Array.from({ length: N }, (_, n) => (n * 7 + s * 3) % 40),
  prob: Float32Array.from({ length: N }, (_, n) => ((n + s) % 4 === 0 ? 1 : 0.05 + (((n * 13 + s * 5) % 17) / 17) * 0.9)),
});

describe('a segment run advances a sequence exactly like the host path', () => {
  it.each([
    ['τ = 0.7', { temperature: 0.7 }, false],
    ['τ = 0 (ties)', { temperature: 0 }, false],
    ['painting (N0 < N)', { temperature: 1 }, true],
  ])('%s', (_, over, canvas) => {
    // 12 steps: segments [0], [1], [2], [3…7], [8…11]; 6×6 cells (24 to paint)
    const host = make('h', { steps: 12, ...over }, 6, canvas);
    const gpu = make('g', { steps: 12, ...over }, 6, canvas);
    const N = host.targets;
    const target = (seq: Sequence) => Array.from(seq.spec.targets, (cell) => seq.region[cell]!);
    let runs = 0;
    while (!gpu.done) {
      const plan = planSegment(gpu, 5);
      let tokens = target(gpu);
      for (let t = 0; t < 5; t++) {
        if (!plan.active[t]) continue;
        const { index, prob } = samples(plan.start + t, N);
        tokens = graphCommit(tokens, index, prob, plan.keepCounts[t]!, plan.remaskNoise.subarray(t * N, (t + 1) * N));
        if (!host.done) host.commit(index, prob);
      }
      applySegment(gpu, plan, tokens);
      runs++;
      expect(target(gpu)).toEqual(target(host));
    }
    expect(host.done).toBe(true);
    expect(runs).toBeLessThanOrEqual(segmentStarts(12, CACHE).length);
    expect(segmentStarts(12, CACHE)).toEqual([0, 1, 2, 3, 8]);
  });

  it('applySegment refuses a plan the sequence has moved past', () => {
    const seq = make('x');
    const plan = planSegment(seq, 5);
    applySegment(
      seq,
      plan,
      Array.from(seq.spec.targets, () => L.codeOffset),
    );
    expect(seq.step).toBe(1);
    expect(() => applySegment(seq, plan, [])).toThrow(/moved/);
  });
});

describe('segmentBatch and SegmentRunner', () => {
  it('lays out the rows as denoise takes them and the per-step inputs per sequence', () => {
    const a = make('a', { steps: 40 });
    const b = make('b', { steps: 40, seed: 7, temperature: 0 });
    b.step = 12;
    const { input, plans } = segmentBatch([a, b], 32, 5);
    expect(input).toMatchObject({ rows: 4, length: 32, sequences: 2, branches: 2, targets: 16, segmentSteps: 5, vocab: [20, 60] });
    expect(Array.from(input.guidanceWeights)).toEqual([2, -1, 2, -1]);
    expect(Array.from(input.stepActive)).toEqual([1, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(Array.from(input.cacheRatio)).toEqual([1, 0.9]);
    expect(Array.from(input.temperature)).toEqual([Math.fround(0.7), 0]);
    // row 1 = a's unconditional branch: its own prefix, padding at the end (id 0, mask 0, position 0)
    const len = a.rowLength(1);
    expect(Array.from(input.inputIds.subarray(32, 32 + 2))).toEqual([10, 5]);
    expect(Array.from(input.attentionMask.subarray(32, 64))).toEqual(Array.from({ length: 32 }, (_, i) => (i < len ? 1 : 0)));
    expect(input.positionIds[32 + len - 1]).toBe(len - 1);
    expect(input.targetPositions[16]).toBe(a.targetPosition(1, 0));
    expect(input.remaskNoise.subarray(5 * 16).every((v) => v === 0 || Object.is(v, -0))).toBe(true); // τ = 0
    expect(plans.map((p) => p.steps)).toEqual([1, 5]);
  });

  it('runs each group once per segment, within maxRows, and stops sequences when done', async () => {
    class Fake implements SegmentModel {
      readonly segmentSteps = 5;
      readonly inputs: SegmentInput[] = [];
      segment(x: SegmentInput): Promise<SegmentOutput> {
        this.inputs.push(x);
        // commits every target on its first active step
        return Promise.resolve({
          tokens: new Int32Array(x.sequences * x.targets).fill(L.codeOffset),
          sampleProb: new Float32Array(0),
          rowMax: new Float32Array(0),
        });
      }
    }
    const model = new Fake();
    const runner = new SegmentRunner(model, { lengthBucket: 16, maxRows: 4 });
    const seqs = [make('p'), make('q'), make('r'), make('s', {}, 5)];
    await runner.run(seqs);
    // sizes 4×4 (three sequences, two rows each: 2 + 1 runs of ≤ 4 rows) and 5×5 (one run)
    expect(model.inputs.map((x) => [x.sequences, x.targets])).toEqual([
      [2, 16],
      [1, 16],
      [1, 25],
    ]);
    expect(runner.calls).toHaveLength(3);
    expect(seqs.every((s) => s.done && s.step === 1)).toBe(true);
    expect(runner.size).toBe(0);
  });
});

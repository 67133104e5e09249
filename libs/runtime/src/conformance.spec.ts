/**
 * Conformance of a model directory with docs/model-interface.md, run through onnxruntime-node (the Python side runs
 * tools/model/conformance.py). Checks: manifest and checksums, graph signatures, `denoise` vs `forward_logits` through
 * the §3 rule, `sample_head` vs `denoise`, a partial step over every position vs a full step, VQ round trip; where the
 * model ships the GPU path, `denoise_segment`'s dtypes and ranks and one active step of it vs `denoise` + the host's
 * remasking (whole segments vs the CPU ML-Cache path: segment.spec.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { RESIDENT_CACHE_GRAPHS } from '@dimoo/contracts';
import { combineGuidance, gumbel, remaskLowest, remaskScores, sampleFromLogits } from '@dimoo/diffusion';
import * as ort from 'onnxruntime-node';
import { loadManifest } from '@dimoo/model';
import { kvNames, rowFeeds } from './onnx-model';
import { f32, i64 } from './session';
import { TEST_MODEL_DIR } from './testing/model-dir';

/** Inputs and outputs in order; `*past` / `*present` stand for the per-layer cache tensors (kvNames). */
const DENOISE = {
  inputs: ['input_ids', 'position_ids', 'attention_mask', 'target_positions', 'guidance_weights', 'vocab_range', 'temperature', 'uniforms'],
  outputs: ['sample_index', 'sample_prob', 'row_max', 'target_logits', '*present'],
};
const SAMPLE_HEAD = { inputs: ['logits', 'guidance_weights', 'temperature', 'uniforms'], outputs: ['sample_index', 'sample_prob'] };
const SIGNATURES: Record<keyof ModelManifest['graphs'], { inputs: string[]; outputs: string[] }> = {
  denoise: DENOISE,
  denoise_partial: {
    inputs: ['input_ids', 'query_index', 'position_ids', 'attention_mask', 'vocab_range', '*past'],
    outputs: ['logits', 'row_max', 'new_kv'],
  },
  sample_head: SAMPLE_HEAD,
  forward_logits: { inputs: ['input_ids', 'position_ids', 'attention_mask'], outputs: ['logits'] },
  vq_encode: { inputs: ['pixels'], outputs: ['codes'] },
  vq_decode: { inputs: ['codes'], outputs: ['pixels'] },
  denoise_segment: {
    inputs: [
      'input_ids',
      'position_ids',
      'attention_mask',
      'target_positions',
      'guidance_weights',
      'vocab_range',
      'temperature',
      'cache_ratio',
      'keep_counts',
      'step_active',
      'uniforms',
      'remask_noise',
    ],
    outputs: ['tokens', 'sample_prob', 'row_max'],
  },
  denoise_device: DENOISE,
  sample_head_device: SAMPLE_HEAD,
  denoise_resident: {
    inputs: ['input_ids', 'query_index', 'position_ids', 'attention_mask', 'vocab_range', 'target_source', 'past_target_logits', '*past'],
    outputs: ['row_max', 'present_target_logits', '*present'],
  },
  cache_gather: { inputs: ['rows', 'past_target_logits', '*past'], outputs: ['present_target_logits', '*present'] },
  cache_concat: { inputs: ['past_target_logits', '*past', 'more_target_logits', '*more'], outputs: ['present_target_logits', '*present'] },
};
/** graphs a model may leave out (docs/model-interface.md §4.6, §4.7) */
const OPTIONAL = new Set(['denoise_segment', ...RESIDENT_CACHE_GRAPHS]);

/** denoise_segment's value types and ranks; T is the manifest's segmentSteps */
const SEGMENT_TYPES: Record<string, [ort.Tensor.Type, number]> = {
  input_ids: ['int64', 2],
  position_ids: ['int64', 2],
  attention_mask: ['int64', 2],
  target_positions: ['int64', 2],
  guidance_weights: ['float32', 2],
  vocab_range: ['int64', 1],
  temperature: ['float32', 1],
  cache_ratio: ['float64', 1],
  keep_counts: ['int64', 2],
  step_active: ['int64', 2],
  uniforms: ['float32', 3],
  remask_noise: ['float64', 3],
  tokens: ['int64', 2],
  sample_prob: ['float32', 2],
  row_max: ['float32', 2],
};

let manifest: ModelManifest;
const sessions = {} as Record<keyof ModelManifest['graphs'], ort.InferenceSession>;

beforeAll(async () => {
  manifest = await loadManifest(TEST_MODEL_DIR, { verify: true });
  for (const [graph, file] of Object.entries(manifest.graphs)) {
    sessions[graph as keyof ModelManifest['graphs']] = await ort.InferenceSession.create(join(TEST_MODEL_DIR, file));
  }
});

/** A sample head's tokens for one sequence's two branch rows of target logits (as `denoise` returns them). */
async function headIndex(head: ort.InferenceSession, logits: ort.Tensor, weights: Float32Array, temperature: number, uniforms: Float32Array, K: number) {
  const N = uniforms.length;
  const out = await head.run({
    logits: f32(logits.data as Float32Array, [2, N, K]),
    guidance_weights: f32(weights, [1, 2]),
    temperature: f32(Float32Array.of(temperature), [1]),
    uniforms: f32(uniforms, [1, N]),
  });
  return Array.from(out['sample_index']!.data as BigInt64Array, Number);
}

/** `denoise`'s row feeds for the two rows of rows(): one sequence, two branches, the same targets in both rows. */
function pairFeeds(r: { L: number; ids: Int32Array; pos: Int32Array; att: Int32Array }, targets: number[], weights: Float32Array, temperature: number) {
  const t = manifest.tokens;
  return rowFeeds({
    rows: 2,
    length: r.L,
    sequences: 1,
    branches: 2,
    targets: targets.length,
    inputIds: r.ids,
    positionIds: r.pos,
    attentionMask: r.att,
    targetPositions: [...targets, ...targets],
    guidanceWeights: weights,
    vocab: [t.codeOffset, t.codeOffset + t.codebookSize],
    temperature: Float32Array.of(temperature),
  });
}

/** Two rows of different lengths built from real token ids, padded at the end. */
function rows() {
  const t = manifest.tokens;
  const L = 40;
  const lens = [40, 31];
  const ids = new Int32Array(2 * L);
  const pos = new Int32Array(2 * L);
  const att = new Int32Array(2 * L);
  lens.forEach((len, r) => {
    for (let i = 0; i < len; i++) {
      ids[r * L + i] = i % 3 === 0 ? t.mask : i % 5 === 0 ? t.newline : t.codeOffset + ((i * 7 + r) % t.codebookSize);
      pos[r * L + i] = i;
      att[r * L + i] = 1;
    }
  });
  return { L, lens, ids, pos, att };
}

describe(`model directory ${TEST_MODEL_DIR}`, () => {
  it('has a valid manifest whose files match their checksums', () => {
    expect(manifest.interfaceVersion).toBe(2);
    expect(manifest.tokens.codeOffset + manifest.tokens.codebookSize).toBe(manifest.architecture.vocabSize);
  });

  it.each(Object.keys(SIGNATURES))('graph %s has the documented inputs and outputs', (graph) => {
    const s = sessions[graph as keyof ModelManifest['graphs']];
    const sig = SIGNATURES[graph as keyof ModelManifest['graphs']];
    if (OPTIONAL.has(graph) && !(graph in manifest.graphs)) return; // optional and not shipped: nothing to check
    const expand = (names: string[]) =>
      names.flatMap((n) => (n.startsWith('*') ? kvNames(n.slice(1) as 'past' | 'present' | 'more', manifest.architecture.nLayers) : [n]));
    expect([...s.inputNames]).toEqual(expand(sig.inputs));
    expect([...s.outputNames]).toEqual(expand(sig.outputs));
  });

  it('denoise samples what the §3 rule gives on forward_logits, with guidance and temperature', async () => {
    const { L, lens, ids, pos, att } = rows();
    const t = manifest.tokens;
    const [lo, hi] = [t.codeOffset, t.codeOffset + t.codebookSize];
    const K = hi - lo;
    // one sequence, two branches; targets = the masked positions common to both rows
    const targets = Array.from({ length: 10 }, (_, n) => 3 * n);
    const N = targets.length;
    const weights = Float32Array.of(3.5, -2.5);
    const uniforms = Float32Array.from({ length: N }, (_, n) => (n + 0.5) / N);
    for (const temperature of [0, 1]) {
      const d = await sessions.denoise.run({
        ...pairFeeds({ L, ids, pos, att }, targets, weights, temperature),
        uniforms: f32(uniforms, [1, N]),
      });
      const full = await sessions.forward_logits.run({ input_ids: i64(ids, [2, L]), position_ids: i64(pos, [2, L]), attention_mask: i64(att, [2, L]) });
      const logits = full['logits']!.data as Float32Array;
      const V = manifest.architecture.vocabSize;
      const index = Array.from(d['sample_index']!.data as BigInt64Array, Number);
      const prob = d['sample_prob']!.data as Float32Array;
      targets.forEach((p, n) => {
        const branch = (r: number) => logits.slice((r * L + p) * V + lo, (r * L + p) * V + hi);
        const s = sampleFromLogits(combineGuidance([branch(0), branch(1)], Array.from(weights)), temperature, uniforms[n]!);
        expect(index[n]).toBe(s.index);
        expect(prob[n]).toBeCloseTo(s.prob, 5);
      });
      // row_max is the max slice logit at every real position
      const rowMax = d['row_max']!.data as Float32Array;
      lens.forEach((len, r) => {
        for (let i = 0; i < len; i++) {
          let m = -Infinity;
          for (let j = lo; j < hi; j++) m = Math.max(m, logits[(r * L + i) * V + j]!);
          expect(rowMax[r * L + i]).toBeCloseTo(m, 4);
        }
      });
      // sample_head on denoise's per-branch target logits gives the same samples
      const withCache = await sessions.denoise.run(
        {
          ...pairFeeds({ L, ids, pos, att }, targets, weights, temperature),
          uniforms: f32(uniforms, [1, N]),
        },
        ['target_logits'],
      );
      expect(await headIndex(sessions.sample_head, withCache['target_logits']!, weights, temperature, uniforms, K)).toEqual(index);
    }
  });

  it('denoise_device is denoise with the float32 device draw (§3.1): the same logits and cache, greedy tokens exact, ≥ 99% of draws', async () => {
    if (!manifest.graphs.denoise_device) return; // the device-resident cache is optional (§4.7)
    const { L, ids, pos, att } = rows();
    const t = manifest.tokens;
    const K = t.codebookSize;
    const targets = Array.from({ length: 12 }, (_, n) => 3 * n);
    const N = targets.length;
    const weights = Float32Array.of(3.5, -2.5);
    let same = 0;
    let draws = 0;
    for (const [temperature, seed] of [0, 1, 1, 1, 0.7].map((tau, i) => [tau, i] as const)) {
      const uniforms = Float32Array.from({ length: N }, (_, n) => ((n * 7919 + seed * 104729) % 1000) / 1000 + 0.0005);
      const feeds = { ...pairFeeds({ L, ids, pos, att }, targets, weights, temperature), uniforms: f32(uniforms, [1, N]) };
      const exact = await sessions.denoise.run(feeds);
      const device = await sessions.denoise_device.run(feeds);
      for (const name of ['row_max', 'target_logits', ...kvNames('present', manifest.architecture.nLayers)]) {
        expect([name, Array.from(device[name]!.data as Float32Array)]).toEqual([name, Array.from(exact[name]!.data as Float32Array)]);
      }
      const index = Array.from(device['sample_index']!.data as BigInt64Array, Number);
      const exactIndex = Array.from(exact['sample_index']!.data as BigInt64Array, Number);
      if (temperature === 0) expect(index).toEqual(exactIndex);
      same += index.filter((v, n) => v === exactIndex[n]).length;
      draws += N;
      // the device head on the device step's target logits draws the same tokens
      expect(await headIndex(sessions.sample_head_device, device['target_logits']!, weights, temperature, uniforms, K)).toEqual(index);
      const prob = device['sample_prob']!.data as Float32Array;
      Array.from(exact['sample_prob']!.data as Float32Array).forEach((p, n) => {
        if (index[n] === exactIndex[n]) expect(Math.abs(prob[n]! - p)).toBeLessThanOrEqual(1e-5 * p + 1e-7);
      });
    }
    expect(same / draws).toBeGreaterThanOrEqual(0.99);
  });

  it('a partial step that recomputes every position equals a full step', async () => {
    const { L, lens, ids, pos, att } = rows();
    const t = manifest.tokens;
    const [lo, hi] = [t.codeOffset, t.codeOffset + t.codebookSize];
    const { nLayers, nHeads, dModel } = manifest.architecture;
    const hd = dModel / nHeads;
    const present = kvNames('present', nLayers);
    const full = await sessions.denoise.run(
      {
        ...pairFeeds({ L, ids, pos, att }, [0], Float32Array.of(1, 0), 0),
        uniforms: f32(Float32Array.of(0.5), [1, 1]),
      },
      ['row_max', ...present],
    );
    for (const name of present) expect([name, full[name]!.dims]).toEqual([name, [2, nHeads, L, hd]]);
    // stale cache: zeros; every real position is recomputed, so the result must not depend on it
    const part = await sessions.denoise_partial.run({
      input_ids: i64(ids, [2, L]),
      query_index: i64(
        Array.from({ length: 2 * L }, (_, i) => i % L),
        [2, L],
      ),
      position_ids: i64(pos, [2, L]),
      attention_mask: i64(att, [2, L]),
      vocab_range: i64([lo, hi], [2]),
      ...Object.fromEntries(kvNames('past', nLayers).map((name) => [name, f32(new Float32Array(2 * L * dModel), [2, nHeads, L, hd])])),
    });
    const rowMax = full['row_max']!.data as Float32Array;
    const partMax = part['row_max']!.data as Float32Array;
    lens.forEach((len, r) => {
      for (let i = 0; i < len; i++) expect(partMax[r * L + i]).toBeCloseTo(rowMax[r * L + i]!, 3);
    });
    // new_kv [nLayers, 2, R, nHeads, S = L, headDim] holds every row's fresh K/V: equal to the full step's present_*
    const newKv = part['new_kv']!.data as Float32Array;
    const planeSize = 2 * L * dModel;
    let maxDiff = 0;
    present.forEach((name, p) => {
      const kv = full[name]!.data as Float32Array;
      for (let i = 0; i < kv.length; i++) {
        const l = Math.floor(i / hd) % L;
        const r = Math.floor(i / (hd * L * nHeads));
        if (l < lens[r]!) maxDiff = Math.max(maxDiff, Math.abs(kv[i]! - newKv[p * planeSize + i]!));
      }
    });
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it("denoise_resident returns the cache with denoise_partial's fresh rows written in; cache_gather and cache_concat move whole rows", async () => {
    if (!manifest.graphs.denoise_resident) return; // the device-resident cache is optional (§4.7)
    const { L, ids, pos, att } = rows();
    const t = manifest.tokens;
    const [lo, hi] = [t.codeOffset, t.codeOffset + t.codebookSize];
    const K = hi - lo;
    const { nLayers, nHeads, dModel } = manifest.architecture;
    const hd = dModel / nHeads;
    const R = 2;
    const N = 3;
    const targets = [2, 4, 7]; // position of target n, both rows
    const full = await sessions.denoise.run(
      { ...pairFeeds({ L, ids, pos, att }, targets, Float32Array.of(1, 0), 0), uniforms: f32(Float32Array.of(0.5, 0.5, 0.5), [1, N]) },
      ['target_logits', ...kvNames('present', nLayers)],
    );
    const past = kvNames('past', nLayers).map((name, j) => [name, full[kvNames('present', nLayers)[j]!]!] as const);
    // row 0 recomputes positions 4, 9, 2; row 1 recomputes 5 and pads with it
    const S = 3;
    const queries = [4, 9, 2, 5, 5, 5];
    const source = [2, 0, -1, -1, -1, -1]; // row 0: target 0 (position 2) by query 2, target 1 (position 4) by query 0
    const common = {
      input_ids: i64(
        queries.map((q, k) => ids[Math.floor(k / S) * L + q]!),
        [R, S],
      ),
      query_index: i64(queries, [R, S]),
      position_ids: i64(queries, [R, S]),
      attention_mask: i64(att, [R, L]),
      vocab_range: i64([lo, hi], [2]),
      ...Object.fromEntries(past),
    };
    const partial = await sessions.denoise_partial.run(common);
    const resident = await sessions.denoise_resident.run({ ...common, target_source: i64(source, [R, N]), past_target_logits: full['target_logits']! });
    expect(Array.from(resident['row_max']!.data as Float32Array)).toEqual(Array.from(partial['row_max']!.data as Float32Array));
    // target logits: fresh where a query recomputed the target, the full step's elsewhere
    const before = full['target_logits']!.data as Float32Array;
    const fresh = partial['logits']!.data as Float32Array;
    const after = resident['present_target_logits']!.data as Float32Array;
    for (let r = 0; r < R; r++) {
      for (let n = 0; n < N; n++) {
        const from = source[r * N + n]!;
        const want = from >= 0 ? fresh.subarray(from * K, (from + 1) * K) : before.subarray((r * N + n) * K, (r * N + n + 1) * K);
        expect(Array.from(after.subarray((r * N + n) * K, (r * N + n + 1) * K))).toEqual(Array.from(want));
      }
    }
    // K/V: new_kv's rows at the queried positions, the full step's elsewhere
    const newKv = partial['new_kv']!.data as Float32Array;
    kvNames('present', nLayers).forEach((name, p) => {
      const got = resident[name]!.data as Float32Array;
      const old = past[p]![1].data as Float32Array;
      for (let r = 0; r < R; r++) {
        for (let h = 0; h < nHeads; h++) {
          for (let l = 0; l < L; l++) {
            const s = queries.slice(r * S, (r + 1) * S).indexOf(l);
            const at = ((r * nHeads + h) * L + l) * hd;
            const want =
              s >= 0 ? newKv.subarray((((p * R + r) * nHeads + h) * S + s) * hd, (((p * R + r) * nHeads + h) * S + s + 1) * hd) : old.subarray(at, at + hd);
            expect([name, r, h, l, Array.from(got.subarray(at, at + hd))]).toEqual([name, r, h, l, Array.from(want)]);
          }
        }
      }
    });
    // regrouping: rows [1, 0] of the concatenation of the cache and itself's row-1 copy
    const cache = {
      past_target_logits: resident['present_target_logits']!,
      ...Object.fromEntries(kvNames('past', nLayers).map((n, j) => [n, resident[kvNames('present', nLayers)[j]!]!])),
    };
    const gathered = await sessions.cache_gather.run({ rows: i64([1], [1]), ...cache });
    const concat = await sessions.cache_concat.run({
      ...cache,
      more_target_logits: gathered['present_target_logits']!,
      ...Object.fromEntries(kvNames('more', nLayers).map((n, j) => [n, gathered[kvNames('present', nLayers)[j]!]!])),
    });
    for (const name of ['present_target_logits', ...kvNames('present', nLayers)]) {
      const whole = resident[name]!.data as Float32Array;
      const row = whole.length / R;
      expect(gathered[name]!.dims[0]).toBe(1);
      expect(Array.from(gathered[name]!.data as Float32Array)).toEqual(Array.from(whole.subarray(row, 2 * row)));
      expect(Array.from(concat[name]!.data as Float32Array)).toEqual([...Array.from(whole), ...Array.from(whole.subarray(row, 2 * row))]);
    }
  });

  it('denoise_segment has the documented dtypes and ranks, unrolled to segmentSteps', () => {
    if (!manifest.graphs.denoise_segment) return;
    const s = sessions.denoise_segment;
    for (const m of [...s.inputMetadata, ...s.outputMetadata]) {
      if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
      expect([m.name, m.type, m.shape.length]).toEqual([m.name, ...SEGMENT_TYPES[m.name]!]);
      if (['keep_counts', 'step_active', 'uniforms', 'remask_noise'].includes(m.name)) expect([m.name, m.shape[1]]).toEqual([m.name, manifest.segmentSteps]);
    }
  });

  it('a denoise_segment run with one active step equals denoise + the host remasking; no active step changes nothing', async () => {
    if (!manifest.graphs.denoise_segment) return;
    const { L, ids, pos, att } = rows();
    const t = manifest.tokens;
    const lo = t.codeOffset;
    const T = manifest.segmentSteps!;
    // one sequence, two branches; targets = the 10 masked positions 0, 3, …, 27 of both rows
    const targets = Array.from({ length: 10 }, (_, n) => 3 * n);
    const N = targets.length;
    const weights = Float32Array.of(2, -1);
    const uniforms = Float32Array.from({ length: T * N }, (_, i) => ((i * 37) % 101) / 101 + 0.004);
    const u = (i: number) => ((i * 53 + 11) % 997) / 997 + 0.0005;
    for (const temperature of [0, 1]) {
      const keep = 6;
      const noise = Float64Array.from({ length: T * N }, (_, i) => temperature * gumbel(u(i)));
      const feeds = (active: number[]) => ({
        ...pairFeeds({ L, ids, pos, att }, targets, weights, temperature),
        cache_ratio: new ort.Tensor('float64', Float64Array.of(0.9), [1]),
        keep_counts: i64(
          Array.from({ length: T }, (_, s) => keep - s),
          [1, T],
        ),
        step_active: i64(active, [1, T]),
        uniforms: f32(uniforms, [1, T, N]),
        remask_noise: new ort.Tensor('float64', noise, [1, T, N]),
      });
      const one = await sessions.denoise_segment.run(feeds(Array.from({ length: T }, (_, s) => (s === 0 ? 1 : 0))));
      const d = await sessions.denoise.run({
        ...pairFeeds({ L, ids, pos, att }, targets, weights, temperature),
        uniforms: f32(uniforms.slice(0, N), [1, N]),
      });
      const index = Array.from(d['sample_index']!.data as BigInt64Array, Number);
      const prob = d['sample_prob']!.data as Float32Array;
      // the host path (sequence.ts commitMaskGit): all targets are masked, commit every sample, re-mask keep_n
      const back = remaskLowest(
        remaskScores(
          prob,
          temperature,
          Array.from({ length: N }, (_, n) => gumbel(u(n))),
        ),
        keep,
      );
      const want = index.map((k, n) => (back[n] ? t.mask : lo + k));
      expect(Array.from(one['tokens']!.data as BigInt64Array, Number)).toEqual(want);
      expect(want.filter((v) => v === t.mask)).toHaveLength(keep);
      expect(Array.from(one['sample_prob']!.data as Float32Array)).toEqual(Array.from(prob));
      const none = await sessions.denoise_segment.run(feeds(Array.from({ length: T }, () => 0)));
      expect(Array.from(none['tokens']!.data as BigInt64Array, Number)).toEqual(targets.map(() => t.mask));
      // all steps: fewer masks with each step's keep count
      const all = await sessions.denoise_segment.run(feeds(Array.from({ length: T }, () => 1)));
      const left = Array.from(all['tokens']!.data as BigInt64Array, Number).filter((v) => v === t.mask).length;
      expect(left).toBeLessThanOrEqual(keep - (T - 1));
    }
  });

  // a VQ with an exact codebook (the tiny model's patch VQ, shipped with its world.json) re-encodes its own decodings to
  // the same codes; a learned VQ need not (and the twin's random one does not): there, shapes, range and determinism
  it('vq_encode and vq_decode have the documented shapes; an exact VQ re-encodes its reconstructions', async () => {
    const { gridFactor } = manifest.image;
    const [H, W] = [3 * gridFactor, 4 * gridFactor];
    const px = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) px[(c * H + y) * W + x] = ((x * (c + 1) + y * 3) % 97) / 96;
    const enc = await sessions.vq_encode.run({ pixels: f32(px, [1, 3, H, W]) });
    expect(enc['codes']!.dims).toEqual([1, 3, 4]);
    const dec = await sessions.vq_decode.run({ codes: enc['codes']! });
    expect(dec['pixels']!.dims).toEqual([1, 3, H, W]);
    const pixels = dec['pixels']!.data as Float32Array;
    expect(pixels.every((v) => v >= 0 && v <= 1)).toBe(true);
    const codes = Array.from(enc['codes']!.data as BigInt64Array, Number);
    expect(codes.every((c) => c >= 0 && c < manifest.tokens.codebookSize)).toBe(true);
    const again = await sessions.vq_encode.run({ pixels: existsSync(join(TEST_MODEL_DIR, 'world.json')) ? dec['pixels']! : f32(px, [1, 3, H, W]) });
    expect(Array.from(again['codes']!.data as BigInt64Array, Number)).toEqual(codes);
  });
});

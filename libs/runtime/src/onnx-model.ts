import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { RESIDENT_CACHE_GRAPHS } from '@dimoo/contracts';
import type { CachedSampleInput, CachedSampleOutput, CacheHandle, DenoiseModel, FullStepInput, FullStepOutput, PartialStepInput } from '@dimoo/diffusion';
import type * as ort from 'onnxruntime-node';
import { DeviceKvCache, DeviceLedger, gatherPlan } from './device-cache';
import type { DeviceState } from './device-cache';
import type { KvShape } from './host-cache';
import { HostKvCache } from './host-cache';
import type { ExecutionProvider, OutputLocation, SessionOptions } from './session';
import { f32, i64, openSession, toFloat32, toInt32 } from './session';

/** The per-layer ML-Cache tensors' names (docs/model-interface.md §4.1–4.2), in order: key 0, value 0, key 1, … */
export function kvNames(prefix: 'past' | 'present' | 'more', nLayers: number): string[] {
  return Array.from({ length: 2 * nLayers }, (_, j) => `${prefix}_${j % 2 ? 'value' : 'key'}_${j >> 1}`);
}

/** What a call's rows and their sampling settings are (docs/model-interface.md §4.1): `denoise` and `denoise_segment` take the same. */
export interface RowFeeds {
  rows: number;
  length: number;
  sequences: number;
  branches: number;
  targets: number;
  inputIds: ArrayLike<number>;
  positionIds: ArrayLike<number>;
  attentionMask: ArrayLike<number>;
  targetPositions: ArrayLike<number>;
  guidanceWeights: Float32Array;
  vocab: readonly [number, number];
  temperature: Float32Array;
}

/** The feeds `denoise` and `denoise_segment` share: the padded rows, the targets, guidance, the vocabulary slice, τ. */
export function rowFeeds(x: RowFeeds): Record<string, ort.Tensor> {
  const { rows: R, length: L, sequences: B, branches: G, targets: N } = x;
  return {
    input_ids: i64(x.inputIds, [R, L]),
    position_ids: i64(x.positionIds, [R, L]),
    attention_mask: i64(x.attentionMask, [R, L]),
    target_positions: i64(x.targetPositions, [R, N]),
    guidance_weights: f32(x.guidanceWeights, [B, G]),
    vocab_range: i64(x.vocab, [2]),
    temperature: f32(x.temperature, [B]),
  };
}

/** Bytes fed to and fetched from onnxruntime by a model's runs (int64 ids count 8 bytes each, as the graphs take them). */
export interface Traffic {
  bytesIn: number;
  bytesOut: number;
}

/** Host bytes of a run's tensors: a device tensor fed or returned in place crosses nothing. */
const tensorBytes = (tensors: Record<string, ort.Tensor | undefined>) =>
  Object.values(tensors).reduce((n, t) => n + (t && t.location === 'cpu' ? (t.data as ArrayBufferView).byteLength : 0), 0);

/** A session opened on its first use; a failed open is retried on the next use instead of being kept. */
class LazySession {
  private session: Promise<ort.InferenceSession> | null = null;

  constructor(private readonly open: () => Promise<ort.InferenceSession>) {}

  get(): Promise<ort.InferenceSession> {
    if (!this.session) {
      const opening = this.open();
      this.session = opening;
      opening.catch(() => {
        if (this.session === opening) this.session = null;
      });
    }
    return this.session;
  }

  async release(): Promise<void> {
    const session = await this.session?.catch(() => null);
    this.session = null;
    await session?.release();
  }
}

/** Whether a model directory ships the device-resident ML-Cache's graphs (docs/model-interface.md §4.7). */
export const hasResidentCache = (manifest: ModelManifest) => RESIDENT_CACHE_GRAPHS.every((g) => manifest.graphs[g] !== undefined);

export interface DenoiseModelOptions extends SessionOptions {
  /**
   * On WebGPU, keep the ML-Cache on the device when the model ships the resident graphs (default true); false keeps
   * it in host memory (the CPU path's `HostKvCache`, its K/V read back after each cached full step).
   */
  deviceCache?: boolean;
}

/** The resident cache's sessions (WebGPU): their cache outputs stay on the device. */
interface ResidentSessions {
  partial: LazySession;
  gather: LazySession;
  concat: LazySession;
}

/**
 * The engine's model interface over the `denoise`, `denoise_partial` and `sample_head` graphs, with the ML-Cache state
 * in host memory (`HostKvCache`, where the CPU provider computes anyway: docs/model-interface.md §4.2, §5) — or, on
 * WebGPU with a model that ships them, over `denoise_device`, `sample_head_device`, `denoise_resident`, `cache_gather`
 * and `cache_concat` with the state on the device (`DeviceKvCache`, §4.7): then per step only ids, positions, the max
 * logits, sampled tokens and their confidences cross between host and device (the draw is the float32 device rule,
 * §3.1, so that the guided logits need no float64 kernel on the host).
 * `denoise_partial` (the CPU ML-Cache path) is opened on its first use: each onnxruntime session holds its own copy of
 * the weights, and a GPU worker that caches through `denoise_segment` never needs it (docs/models.md §3).
 */
export class OnnxDenoiseModel implements DenoiseModel {
  private readonly partialSession: LazySession;
  /** the sample head's input logits, reused across steps (a fresh buffer per step is garbage-collection pressure) */
  private sampleScratch = new Float32Array(0);
  /** the last sample-head run: the next waits for it, since they share `sampleScratch` (one engine never overlaps them) */
  private sampling: Promise<unknown> = Promise.resolve();
  /** what crossed the runtime boundary since construction (bench:engine reads it); device tensors fed or kept count nothing */
  readonly traffic: Traffic = { bytesIn: 0, bytesOut: 0 };
  /** the device tensors the resident cache holds (tests read it: every job's cache is freed when it leaves) */
  readonly device = new DeviceLedger();
  /** runs of the resident cache's graphs since construction (tests read them) */
  readonly deviceCalls = { partial: 0, gather: 0, concat: 0 };

  private constructor(
    readonly shape: KvShape,
    readonly provider: ExecutionProvider,
    private readonly denoise: ort.InferenceSession,
    openPartial: () => Promise<ort.InferenceSession>,
    private readonly head: ort.InferenceSession,
    private readonly resident: ResidentSessions | null,
  ) {
    this.partialSession = new LazySession(openPartial);
  }

  static async open(dir: string, manifest: ModelManifest, options: DenoiseModelOptions): Promise<OnnxDenoiseModel> {
    const { nLayers, nHeads, dModel } = manifest.architecture;
    const present = kvNames('present', nLayers);
    const onDevice = (names: string[]): Record<string, OutputLocation> => Object.fromEntries(names.map((n) => [n, 'gpu-buffer']));
    const g = manifest.graphs;
    const wantResident = (options.deviceCache ?? true) && options.provider === 'webgpu' && hasResidentCache(manifest);
    // the resident path's full step and draw use the device rule (§3.1: float32, no host copy of the guided logits);
    // a CPU fallback keeps the exact graphs
    let denoise = wantResident
      ? await openSession(join(dir, g.denoise_device!), options, onDevice(['target_logits', ...present]))
      : await openSession(join(dir, g.denoise), options);
    const residentNow = wantResident && denoise.provider === 'webgpu';
    if (wantResident && !residentNow) {
      await denoise.session.release();
      denoise = await openSession(join(dir, g.denoise), { ...options, provider: 'cpu' });
    }
    // the other graphs run on the provider the full step got (a CPU fallback applies to all)
    const opened = { ...options, provider: denoise.provider };
    const head = await openSession(join(dir, residentNow ? g.sample_head_device! : g.sample_head), opened);
    const lazy = (file: string, outputs?: Record<string, OutputLocation>) =>
      new LazySession(async () => (await openSession(join(dir, file), opened, outputs)).session);
    const openPartial = async () => (await openSession(join(dir, g.denoise_partial), opened)).session;
    const cacheOut = onDevice(['present_target_logits', ...present]);
    const resident = residentNow
      ? { partial: lazy(g.denoise_resident!, cacheOut), gather: lazy(g.cache_gather!, cacheOut), concat: lazy(g.cache_concat!, cacheOut) }
      : null;
    return new OnnxDenoiseModel({ nLayers, nHeads, dModel }, denoise.provider, denoise.session, openPartial, head.session, resident);
  }

  /** Whether the ML-Cache state stays on the device (WebGPU with the resident graphs). */
  get residentCache(): boolean {
    return this.resident !== null;
  }

  /** Frees every session and every device tensor still held (see `releaseModel`); the model is unusable afterwards. */
  async release(): Promise<void> {
    this.device.freeAll();
    const resident = this.resident ? [this.resident.partial, this.resident.gather, this.resident.concat].map((s) => s.release()) : [];
    await Promise.all([this.denoise.release(), this.head.release(), this.partialSession.release(), ...resident]);
  }

  /** A cache no sequence holds any more: a device cache frees its tensors now (host memory is left to the collector). */
  releaseCache(cache: CacheHandle): void {
    if (cache instanceof DeviceKvCache) cache.release();
  }

  private async run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches?: string[]): Promise<Record<string, ort.Tensor>> {
    this.traffic.bytesIn += tensorBytes(feeds);
    const out = fetches ? await session.run(feeds, fetches) : await session.run(feeds);
    this.traffic.bytesOut += tensorBytes(out);
    return out;
  }

  async fullStep(x: FullStepInput): Promise<FullStepOutput> {
    const present = kvNames('present', this.shape.nLayers);
    // A session with device outputs runs through an IO binding that onnxruntime-node keeps from run to run: an output
    // bound by an earlier run and not fetched now would be taken as a preallocated output of the old shape. So the
    // resident path fetches every output every time and drops the device ones a step without cache does not keep.
    const fetches = ['sample_index', 'sample_prob', 'row_max', ...(x.withCache || this.resident ? ['target_logits', ...present] : [])];
    const out = await this.run(this.denoise, { ...rowFeeds(x), uniforms: f32(x.uniforms, [x.sequences, x.targets]) }, fetches);
    if (this.resident && !x.withCache) for (const name of ['target_logits', ...present]) out[name]?.dispose();
    const rowMax = toFloat32(out['row_max'], 'row_max');
    const result: FullStepOutput = {
      sampleIndex: toInt32(out['sample_index'], 'sample_index'),
      sampleProb: toFloat32(out['sample_prob'], 'sample_prob'),
      rowMax,
    };
    if (x.withCache && this.resident) {
      const [lo, hi] = x.vocab;
      const state = { kv: present.map((name) => deviceTensor(out[name], name)), logits: deviceTensor(out['target_logits'], 'target_logits') };
      result.cache = new DeviceKvCache(this.shape, x.sequences, x.branches, x.length, x.targets, hi - lo, state, rowMax, x.targetPositions, this.device);
    } else if (x.withCache) {
      const [lo, hi] = x.vocab;
      const kv = present.map((name) => toFloat32(out[name], name));
      const logits = toFloat32(out['target_logits'], 'target_logits');
      // the outputs become the cache without a copy; targetPositions is the engine's fresh array for this call
      result.cache = new HostKvCache(this.shape, x.sequences, x.branches, x.length, x.targets, hi - lo, kv, logits, rowMax, x.targetPositions);
    }
    return result;
  }

  gatherCache(parts: readonly { cache: CacheHandle; sequence: number }[]): CacheHandle | Promise<CacheHandle> {
    if (this.resident) return this.gatherDevice(parts.map((p) => ({ cache: deviceCache(p.cache), sequence: p.sequence })));
    return HostKvCache.gather(parts.map((p) => ({ cache: hostCache(p.cache), sequence: p.sequence })));
  }

  /**
   * Regrouping on the device: the distinct source caches concatenated (`cache_concat`, only when the group draws from
   * more than one), then the group's rows taken in order (`cache_gather`). The sources stay as they are: other groups
   * may still hold them; the engine releases each when no sequence does.
   */
  private async gatherDevice(parts: { cache: DeviceKvCache; sequence: number }[]): Promise<DeviceKvCache> {
    const { sources, rows, rowMax, targetPositions } = gatherPlan(parts);
    const resident = this.resident!;
    const a0 = sources[0]!;
    const temporary: DeviceState[] = [];
    try {
      let acc = a0.device;
      for (const next of sources.slice(1)) {
        this.deviceCalls.concat++;
        const out = await this.run(await resident.concat.get(), { ...cacheFeeds('past', acc), ...cacheFeeds('more', next.device) });
        acc = this.cacheState(out);
        temporary.push(acc);
      }
      this.deviceCalls.gather++;
      const out = await this.run(await resident.gather.get(), { rows: i64(rows, [rows.length]), ...cacheFeeds('past', acc) });
      const state = this.cacheState(out);
      return new DeviceKvCache(this.shape, parts.length, a0.branches, a0.length, a0.targets, a0.vocabSize, state, rowMax, targetPositions, this.device);
    } finally {
      for (const t of temporary) this.device.free([...t.kv, t.logits]);
    }
  }

  /** A resident graph's cache outputs (`present_*`, `present_target_logits`), counted in the ledger at once. */
  private cacheState(out: Record<string, ort.Tensor>): DeviceState {
    const state = {
      kv: kvNames('present', this.shape.nLayers).map((name) => deviceTensor(out[name], name)),
      logits: deviceTensor(out['present_target_logits'], 'present_target_logits'),
    };
    this.device.hold([...state.kv, state.logits]);
    return state;
  }

  async partialStep(x: PartialStepInput): Promise<void> {
    if (this.resident) return this.partialStepDevice(x, deviceCache(x.cache));
    const cache = hostCache(x.cache);
    const { rows: R, length: L, queries: S } = x;
    const { nHeads, dModel } = this.shape;
    // the cache planes go in as views of the cache's buffers (onnxruntime-node copies outputs, not inputs)
    const past = Object.fromEntries(kvNames('past', this.shape.nLayers).map((name, j) => [name, f32(cache.kv[j]!, [R, nHeads, L, dModel / nHeads])]));
    const out = await this.run(await this.partialSession.get(), {
      input_ids: i64(x.inputIds, [R, S]),
      query_index: i64(x.queryIndex, [R, S]),
      position_ids: i64(x.positionIds, [R, S]),
      attention_mask: i64(x.attentionMask, [R, L]),
      vocab_range: i64(x.vocab, [2]),
      ...past,
    });
    cache.scatter(x.queryIndex, x.queryCounts, S, toFloat32(out['new_kv'], 'new_kv'), toFloat32(out['logits'], 'logits'), toFloat32(out['row_max'], 'row_max'));
  }

  /**
   * The resident partial step (`denoise_resident`): the cache's planes go in as device tensors and the updated planes
   * come back on the device, replacing them; in: ids, positions, the target map; out: the recomputed max logits.
   */
  private async partialStepDevice(x: PartialStepInput, cache: DeviceKvCache): Promise<void> {
    const { rows: R, length: L, queries: S } = x;
    const source = cache.targetSource(x.queryIndex, x.queryCounts, S);
    this.deviceCalls.partial++;
    const out = await this.run(await this.resident!.partial.get(), {
      input_ids: i64(x.inputIds, [R, S]),
      query_index: i64(x.queryIndex, [R, S]),
      position_ids: i64(x.positionIds, [R, S]),
      attention_mask: i64(x.attentionMask, [R, L]),
      vocab_range: i64(x.vocab, [2]),
      target_source: i64(source, [R, cache.targets]),
      ...cacheFeeds('past', cache.device),
    });
    const next = this.cacheState(out);
    cache.replace(next);
    cache.scatterRowMax(x.queryIndex, x.queryCounts, S, toFloat32(out['row_max'], 'row_max'));
  }

  /**
   * Runs the sample head on the masked targets only: a target's sample depends only on its own logits and uniform (§3),
   * so it is the same token as sampling every target, and late in a schedule most targets are committed. Returns [B, N]
   * arrays (entries of committed targets unread).
   */
  sampleCached(x: CachedSampleInput): Promise<CachedSampleOutput> {
    const run = this.sampling.then(() => this.sampleCachedNow(x));
    this.sampling = run.catch(() => undefined);
    return run;
  }

  private async sampleCachedNow(x: CachedSampleInput): Promise<CachedSampleOutput> {
    if (this.resident) return this.sampleCachedDevice(x, deviceCache(x.cache));
    const cache = hostCache(x.cache);
    const B = x.sequences;
    const G = cache.branches;
    const N = cache.targets;
    const K = cache.vocabSize;
    const M = Math.max(1, ...x.masked.map((ns) => ns.length));
    if (this.sampleScratch.length < B * G * M * K) this.sampleScratch = new Float32Array(B * G * N * K);
    const logits = this.sampleScratch.subarray(0, B * G * M * K);
    const uniforms = new Float32Array(B * M);
    x.masked.forEach((ns, b) => {
      for (let m = 0; m < M; m++) {
        const n = ns[m] ?? ns[0] ?? 0; // padding repeats an entry; its sample is not read
        uniforms[b * M + m] = x.uniforms[b * N + n]!;
        for (let r = b * G; r < (b + 1) * G; r++) logits.set(cache.logits.subarray((r * N + n) * K, (r * N + n + 1) * K), (r * M + m) * K);
      }
    });
    const out = await this.run(this.head, {
      logits: f32(logits, [B * G, M, K]),
      guidance_weights: f32(x.guidanceWeights, [B, G]),
      temperature: f32(x.temperature, [B]),
      uniforms: f32(uniforms, [B, M]),
    });
    const index = toInt32(out['sample_index'], 'sample_index');
    const prob = toFloat32(out['sample_prob'], 'sample_prob');
    const sampleIndex = new Int32Array(B * N);
    const sampleProb = new Float32Array(B * N);
    x.masked.forEach((ns, b) =>
      ns.forEach((n, m) => {
        sampleIndex[b * N + n] = index[b * M + m]!;
        sampleProb[b * N + n] = prob[b * M + m]!;
      }),
    );
    return { sampleIndex, sampleProb, fed: M };
  }

  /**
   * The resident cache's draw: the sample head reads the device's target logits in place, for every target (picking
   * the masked ones out would be a device gather per step; a target's sample depends only on its own logits and
   * uniform, so the masked ones get the same tokens). Only the [B, N] tokens and confidences come back.
   */
  private async sampleCachedDevice(x: CachedSampleInput, cache: DeviceKvCache): Promise<CachedSampleOutput> {
    const B = x.sequences;
    const N = cache.targets;
    const out = await this.run(this.head, {
      logits: cache.device.logits,
      guidance_weights: f32(x.guidanceWeights, [B, cache.branches]),
      temperature: f32(x.temperature, [B]),
      uniforms: f32(x.uniforms, [B, N]),
    });
    return { sampleIndex: toInt32(out['sample_index'], 'sample_index'), sampleProb: toFloat32(out['sample_prob'], 'sample_prob'), fed: N };
  }
}

/** The feeds of a device cache: `{prefix}_key_0`, `{prefix}_value_0`, …, `{prefix}_target_logits`. */
function cacheFeeds(prefix: 'past' | 'more', state: DeviceState): Record<string, ort.Tensor> {
  const names = kvNames(prefix, state.kv.length / 2);
  return { ...Object.fromEntries(names.map((name, j) => [name, state.kv[j]!])), [`${prefix}_target_logits`]: state.logits };
}

function deviceTensor(t: ort.Tensor | undefined, name: string): ort.Tensor {
  if (!t) throw new Error(`graph returned no ${name}`);
  if (t.location !== 'gpu-buffer') throw new Error(`${name} came back in ${t.location} memory, not on the device`);
  return t;
}

function deviceCache(handle: CacheHandle): DeviceKvCache {
  if (!(handle instanceof DeviceKvCache)) throw new TypeError('a cache handle of another model');
  return handle;
}

function hostCache(handle: CacheHandle): HostKvCache {
  if (!(handle instanceof HostKvCache)) throw new TypeError('a cache handle of another model');
  return handle;
}

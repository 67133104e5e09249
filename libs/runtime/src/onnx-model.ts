import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import type { CachedSampleInput, CachedSampleOutput, CacheHandle, DenoiseModel, FullStepInput, FullStepOutput, PartialStepInput } from '@dimoo/diffusion';
import type * as ort from 'onnxruntime-node';
import type { KvShape } from './host-cache';
import { HostKvCache } from './host-cache';
import type { ExecutionProvider, SessionOptions } from './session';
import { f32, i64, openSession, toFloat32, toInt32 } from './session';

/** The per-layer ML-Cache tensors' names (docs/model-interface.md §4.1–4.2), in order: key 0, value 0, key 1, … */
export function kvNames(prefix: 'past' | 'present', nLayers: number): string[] {
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

const tensorBytes = (tensors: Record<string, ort.Tensor | undefined>) =>
  Object.values(tensors).reduce((n, t) => n + ((t?.data as ArrayBufferView | undefined)?.byteLength ?? 0), 0);

/**
 * The engine's model interface over the `denoise`, `denoise_partial` and `sample_head` graphs, with the ML-Cache state
 * in host memory (`HostKvCache`, where the CPU provider computes anyway: docs/model-interface.md §4.2, §5).
 * `denoise_partial` (the CPU ML-Cache path) is opened on its first use: each onnxruntime session holds its own copy of
 * the weights, and a GPU worker that caches through `denoise_segment` never needs it (docs/models.md §3).
 */
export class OnnxDenoiseModel implements DenoiseModel {
  private partialSession: Promise<ort.InferenceSession> | null = null;
  /** the sample head's input logits, reused across steps (a fresh buffer per step is garbage-collection pressure) */
  private sampleScratch = new Float32Array(0);
  /** the last sample-head run: the next waits for it, since they share `sampleScratch` (one engine never overlaps them) */
  private sampling: Promise<unknown> = Promise.resolve();
  /** what crossed the runtime boundary since construction (bench:engine reads it) */
  readonly traffic: Traffic = { bytesIn: 0, bytesOut: 0 };

  private constructor(
    readonly shape: KvShape,
    readonly provider: ExecutionProvider,
    private readonly denoise: ort.InferenceSession,
    private readonly openPartial: () => Promise<ort.InferenceSession>,
    private readonly head: ort.InferenceSession,
  ) {}

  static async open(dir: string, manifest: ModelManifest, options: SessionOptions): Promise<OnnxDenoiseModel> {
    const denoise = await openSession(join(dir, manifest.graphs.denoise), options);
    const head = await openSession(join(dir, manifest.graphs.sample_head), options);
    // the partial graph runs on the provider the full step got (a CPU fallback applies to both)
    const partialOptions = { ...options, provider: denoise.provider };
    const openPartial = async () => (await openSession(join(dir, manifest.graphs.denoise_partial), partialOptions)).session;
    const { nLayers, nHeads, dModel } = manifest.architecture;
    return new OnnxDenoiseModel({ nLayers, nHeads, dModel }, denoise.provider, denoise.session, openPartial, head.session);
  }

  private get partial(): Promise<ort.InferenceSession> {
    if (!this.partialSession) {
      this.partialSession = this.openPartial();
      // a failed open is retried on the next use instead of being cached
      this.partialSession.catch(() => (this.partialSession = null));
    }
    return this.partialSession;
  }

  private async run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches?: string[]): Promise<Record<string, ort.Tensor>> {
    this.traffic.bytesIn += tensorBytes(feeds);
    const out = fetches ? await session.run(feeds, fetches) : await session.run(feeds);
    this.traffic.bytesOut += tensorBytes(out);
    return out;
  }

  async fullStep(x: FullStepInput): Promise<FullStepOutput> {
    const present = kvNames('present', this.shape.nLayers);
    const fetches = ['sample_index', 'sample_prob', 'row_max', ...(x.withCache ? ['target_logits', ...present] : [])];
    const out = await this.run(this.denoise, { ...rowFeeds(x), uniforms: f32(x.uniforms, [x.sequences, x.targets]) }, fetches);
    const rowMax = toFloat32(out['row_max'], 'row_max');
    const result: FullStepOutput = {
      sampleIndex: toInt32(out['sample_index'], 'sample_index'),
      sampleProb: toFloat32(out['sample_prob'], 'sample_prob'),
      rowMax,
    };
    if (x.withCache) {
      const [lo, hi] = x.vocab;
      const kv = present.map((name) => toFloat32(out[name], name));
      const logits = toFloat32(out['target_logits'], 'target_logits');
      // the outputs become the cache without a copy; targetPositions is the engine's fresh array for this call
      result.cache = new HostKvCache(this.shape, x.sequences, x.branches, x.length, x.targets, hi - lo, kv, logits, rowMax, x.targetPositions);
    }
    return result;
  }

  gatherCache(parts: readonly { cache: CacheHandle; sequence: number }[]): CacheHandle {
    return HostKvCache.gather(parts.map((p) => ({ cache: hostCache(p.cache), sequence: p.sequence })));
  }

  async partialStep(x: PartialStepInput): Promise<void> {
    const cache = hostCache(x.cache);
    const { rows: R, length: L, queries: S } = x;
    const { nHeads, dModel } = this.shape;
    // the cache planes go in as views of the cache's buffers (onnxruntime-node copies outputs, not inputs)
    const past = Object.fromEntries(kvNames('past', this.shape.nLayers).map((name, j) => [name, f32(cache.kv[j]!, [R, nHeads, L, dModel / nHeads])]));
    const out = await this.run(await this.partial, {
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
}

function hostCache(handle: CacheHandle): HostKvCache {
  if (!(handle instanceof HostKvCache)) throw new TypeError('a cache handle of another model');
  return handle;
}

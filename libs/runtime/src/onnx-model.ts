import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import type {
  DenoiseModel,
  FullStepInput,
  FullStepOutput,
  ModelShape,
  PartialStepInput,
  PartialStepOutput,
  SampleHeadInput,
  SampleOutput,
} from '@dimoo/diffusion';
import type * as ort from 'onnxruntime-node';
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

/**
 * The engine's model interface over the `denoise`, `denoise_partial` and `sample_head` graphs. `denoise_partial` (the
 * CPU ML-Cache path) is opened on its first use: each onnxruntime session holds its own copy of the weights, and a GPU
 * worker that caches through `denoise_segment` never needs it (docs/models.md §3).
 */
export class OnnxDenoiseModel implements DenoiseModel {
  private partialSession: Promise<ort.InferenceSession> | null = null;

  private constructor(
    readonly shape: ModelShape,
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

  async fullStep(x: FullStepInput): Promise<FullStepOutput> {
    const present = kvNames('present', this.shape.nLayers);
    const fetches = ['sample_index', 'sample_prob', 'row_max', ...(x.withCache ? ['target_logits', ...present] : [])];
    const out = await this.denoise.run({ ...rowFeeds(x), uniforms: f32(x.uniforms, [x.sequences, x.targets]) }, fetches);
    return {
      sampleIndex: toInt32(out['sample_index'], 'sample_index'),
      sampleProb: toFloat32(out['sample_prob'], 'sample_prob'),
      rowMax: toFloat32(out['row_max'], 'row_max'),
      ...(x.withCache ? { presentKv: present.map((name) => toFloat32(out[name], name)), targetLogits: toFloat32(out['target_logits'], 'target_logits') } : {}),
    };
  }

  async partialStep(x: PartialStepInput): Promise<PartialStepOutput> {
    const { rows: R, length: L, queries: S } = x;
    const { nHeads, dModel } = this.shape;
    // the cache planes go in as views of the arena's buffers (onnxruntime-node copies outputs, not inputs)
    const past = Object.fromEntries(kvNames('past', this.shape.nLayers).map((name, j) => [name, f32(x.pastKv[j]!, [R, nHeads, L, dModel / nHeads])]));
    const out = await (
      await this.partial
    ).run({
      input_ids: i64(x.inputIds, [R, S]),
      query_index: i64(x.queryIndex, [R, S]),
      position_ids: i64(x.positionIds, [R, S]),
      attention_mask: i64(x.attentionMask, [R, L]),
      vocab_range: i64(x.vocab, [2]),
      ...past,
    });
    return { logits: toFloat32(out['logits'], 'logits'), rowMax: toFloat32(out['row_max'], 'row_max'), newKv: toFloat32(out['new_kv'], 'new_kv') };
  }

  async sampleHead(x: SampleHeadInput): Promise<SampleOutput> {
    const { sequences: B, branches: G, targets: N, vocabSize: K } = x;
    const out = await this.head.run({
      logits: f32(x.logits, [B * G, N, K]),
      guidance_weights: f32(x.guidanceWeights, [B, G]),
      temperature: f32(x.temperature, [B]),
      uniforms: f32(x.uniforms, [B, N]),
    });
    return { sampleIndex: toInt32(out['sample_index'], 'sample_index'), sampleProb: toFloat32(out['sample_prob'], 'sample_prob') };
  }
}

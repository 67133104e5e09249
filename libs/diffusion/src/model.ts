/**
 * The model as the engine sees it (docs/model-interface.md §4): injected, so the engine has no I/O. `libs/runtime`
 * implements it with onnxruntime-node; tests may wrap it to count calls. Arrays are row-major; ids are int32 here
 * (the runtime widens them to the graphs' int64).
 */

export interface ModelShape {
  nLayers: number;
  dModel: number;
}

/** Rows of one call: R rows padded to one length L (padding at the end, mask 0, position 0). */
export interface RowBatch {
  rows: number;
  length: number;
  inputIds: Int32Array;
  positionIds: Int32Array;
  attentionMask: Int32Array;
}

export interface FullStepInput extends RowBatch {
  sequences: number;
  branches: number;
  targets: number;
  targetPositions: Int32Array;
  guidanceWeights: Float32Array;
  vocab: readonly [number, number];
  temperature: Float32Array;
  uniforms: Float32Array;
  /** also return present K/V and the per-branch target logits (the ML-Cache state) */
  withCache: boolean;
}

export interface SampleOutput {
  /** [B, N] indices into the vocabulary slice */
  sampleIndex: Int32Array;
  /** [B, N] softmax(z) at the sampled index */
  sampleProb: Float32Array;
}

export interface FullStepOutput extends SampleOutput {
  /** [R, L] max slice logit at every position (ML-Cache selection score) */
  rowMax: Float32Array;
  /** [nLayers, 2, R, L, dModel] K (after RoPE) and V, when withCache */
  presentKv?: Float32Array;
  /** [R, N, K] per-branch slice logits at the targets, when withCache */
  targetLogits?: Float32Array;
}

export interface PartialStepInput {
  rows: number;
  length: number;
  queries: number;
  inputIds: Int32Array;
  queryIndex: Int32Array;
  positionIds: Int32Array;
  /** [nLayers, 2, R, L, dModel]: K (after RoPE) and V */
  pastKv: Float32Array;
  attentionMask: Int32Array;
  vocab: readonly [number, number];
}

export interface PartialStepOutput {
  /** [R, S, K] */
  logits: Float32Array;
  /** [R, S] */
  rowMax: Float32Array;
  /** [nLayers, 2, R, S, dModel] */
  newKv: Float32Array;
}

export interface SampleHeadInput {
  sequences: number;
  branches: number;
  targets: number;
  vocabSize: number;
  logits: Float32Array;
  guidanceWeights: Float32Array;
  temperature: Float32Array;
  uniforms: Float32Array;
}

export interface DenoiseModel {
  readonly shape: ModelShape;
  fullStep(input: FullStepInput): Promise<FullStepOutput>;
  partialStep(input: PartialStepInput): Promise<PartialStepOutput>;
  sampleHead(input: SampleHeadInput): Promise<SampleOutput>;
}

/**
 * The model as the engine sees it (docs/model-interface.md §4): injected, so the engine has no I/O. `libs/runtime`
 * implements it with onnxruntime-node; tests may wrap it to count calls. Arrays are row-major; ids are int32 here
 * (the runtime widens them to the graphs' int64).
 */

export interface ModelShape {
  nLayers: number;
  nHeads: number;
  dModel: number;
}

/**
 * The ML-Cache K/V of a call's rows (docs/model-interface.md §4.1, §4.2): one plane per layer and kind, in the order
 * key 0, value 0, key 1, …, each [R, nHeads, L, headDim] — K after RoPE, heads split, as attention reads them.
 */
export type KvPlanes = Float32Array[];

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
  /** also return the rows' K/V and per-branch target logits (the ML-Cache state) */
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
  /** the rows' K/V, when withCache */
  presentKv?: KvPlanes;
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
  /** the rows' cache */
  pastKv: KvPlanes;
  attentionMask: Int32Array;
  vocab: readonly [number, number];
}

export interface PartialStepOutput {
  /** [R, S, K] */
  logits: Float32Array;
  /** [R, S] */
  rowMax: Float32Array;
  /** [nLayers, 2, R, nHeads, S, headDim]: the fresh K (after RoPE) and V rows at queryIndex */
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

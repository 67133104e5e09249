/**
 * The model as the engine sees it (docs/model-interface.md §4): injected, so the engine has no I/O. `libs/runtime`
 * implements it with onnxruntime-node (its `traffic` counts the bytes crossing it). Arrays are row-major; ids are int32 here
 * (the runtime widens them to the graphs' int64).
 *
 * The ML-Cache state (K/V of every layer, the per-branch target logits) is an opaque `CacheHandle` the model owns: the
 * CPU path keeps it in host memory, a device-resident cache (the runtime's WebGPU path) keeps it on the accelerator.
 * The engine only reads each position's selection score (`rowMax`, the cache policy's input), says which rows make up
 * a call, and says when it holds a handle no more (`releaseCache`).
 */

/** Rows of one call: R rows padded to one length L (padding at the end, mask 0, position 0). */
export interface RowBatch {
  rows: number;
  length: number;
  inputIds: Int32Array;
  positionIds: Int32Array;
  attentionMask: Int32Array;
}

/** One ML-Cache state of a call's rows (row = sequence · branches + branch), owned by the model. */
export interface CacheHandle {
  /** sequences whose rows it holds, in row order */
  readonly sequences: number;
  /** [R, L] each position's max slice logit after the last step (fresh or cached): the ML-Cache selection score */
  readonly rowMax: Float32Array;
  /** memory it holds */
  readonly bytes: number;
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
  /** also keep the rows' ML-Cache state (`FullStepOutput.cache`): a partial step follows */
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
  /** the rows' cache state, when withCache */
  cache?: CacheHandle;
}

/** A partial step: each row recomputes the positions at `queryIndex` (its first `queryCounts[r]` entries; the rest repeat them). */
export interface PartialStepInput {
  /** the rows' cache; the step merges its fresh K/V, logits and row max into it */
  cache: CacheHandle;
  rows: number;
  length: number;
  queries: number;
  inputIds: Int32Array;
  queryIndex: Int32Array;
  /** [R] real entries of each row's queries */
  queryCounts: Int32Array;
  positionIds: Int32Array;
  attentionMask: Int32Array;
  vocab: readonly [number, number];
}

/** The draw (guidance, sampling) from the cache's merged target logits, at each sequence's masked targets only. */
export interface CachedSampleInput {
  cache: CacheHandle;
  sequences: number;
  branches: number;
  targets: number;
  /** per sequence: its masked target indices */
  masked: readonly (readonly number[])[];
  guidanceWeights: Float32Array;
  temperature: Float32Array;
  /** [B, N] this step's token uniforms */
  uniforms: Float32Array;
}

export interface CachedSampleOutput extends SampleOutput {
  /** targets fed per sequence (the most masked, others padded): the call's width */
  fed: number;
}

export interface DenoiseModel {
  fullStep(input: FullStepInput): Promise<FullStepOutput>;
  partialStep(input: PartialStepInput): Promise<void>;
  sampleCached(input: CachedSampleInput): Promise<CachedSampleOutput>;
  /** A cache holding the given sequences' rows, in order (each from its handle and sequence index there); a device-resident cache gathers on the device. */
  gatherCache(parts: readonly { cache: CacheHandle; sequence: number }[]): CacheHandle | Promise<CacheHandle>;
  /**
   * The engine holds this cache no more (its sequences left or moved to another): a device-resident cache frees its
   * memory now instead of whenever a finalizer runs. Optional: host memory is left to the garbage collector.
   */
  releaseCache?(cache: CacheHandle): void;
}

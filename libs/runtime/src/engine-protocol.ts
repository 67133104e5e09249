/** Messages between the engine thread and its host (engine-host.ts). */
import type { BatchPolicy, StepStats } from '@dimoo/diffusion';
import type { EngineJob } from './pipeline';
import type { SessionOptions } from './session';

export type { StepStats } from '@dimoo/diffusion';

/**
 * Where ML-Cache image jobs run (the worker's ML_CACHE_PATH): `host` — the host engine with the K/V in host memory (the
 * CPU path: one call per step, the K/V read back after each cached full step); `resident` — the host engine with the
 * K/V kept on the device (WebGPU with the §4.7 graphs: per step only ids, positions, tokens, confidences and max logits
 * cross); `segment` — `denoise_segment`, one run per refresh segment, the cache never leaves the run; `auto` (default) —
 * `segment` on CUDA/TensorRT when the model ships it, `resident` on WebGPU when the model ships its graphs (no GPU
 * measurement says `segment` is faster there yet: docs/performance.md), else `host`.
 */
export const ML_CACHE_PATHS = ['host', 'resident', 'segment', 'auto'] as const;
export type MlCachePath = (typeof ML_CACHE_PATHS)[number];

export interface EngineThreadOptions {
  modelDir: string;
  session: Omit<SessionOptions, 'log'>;
  /** most rows (sequences × guidance branches) per model call */
  maxRows?: number;
  /** verify model file checksums at start */
  verify?: boolean;
  /** batch formation (libs/diffusion batch-plan.ts); default DEFAULT_BATCH_POLICY */
  batch?: BatchPolicy;
  /** a preview every this many steps unless the job says otherwise (0: none) */
  previewEvery?: number;
  /** where ML-Cache image jobs run (ML_CACHE_PATHS); default `auto` */
  mlCachePath?: MlCachePath;
  /** fault injection (tests only): the thread exits after this many steps, as a crash would end it */
  exitAfterSteps?: number;
}

/** A job submitted to the engine: what to run, and what admission weighs (team, priority). */
export interface EngineSubmission extends EngineJob {
  team?: string;
  priority?: number;
}

export interface EngineError {
  name: string;
  message: string;
  /** the request field at fault, for input errors (never retried) */
  field?: string;
  retryable: boolean;
}

export type EngineOutput =
  { kind: 'image'; bytes: Uint8Array; contentType: string; extension: string; width: number; height: number } | { kind: 'text'; text: string };

export interface JobTimings {
  /** prepared, waiting for the batch to admit it (wait window, budget, static batches) */
  admitWaitMs: number;
  prepareMs: number;
  samplingMs: number;
  decodeMs: number;
  steps: number;
}

export type ToThread = { type: 'submit'; id: string; job: EngineSubmission } | { type: 'cancel'; id: string } | { type: 'shutdown' };

export type FromThread =
  | { type: 'ready'; model: { name: string; version: string; checksum: string }; provider: string }
  | { type: 'failed-start'; error: EngineError }
  | { type: 'progress'; id: string; step: number; steps: number }
  | { type: 'preview'; id: string; step: number; steps: number; png: Uint8Array }
  | { type: 'done'; id: string; output: EngineOutput; timings: JobTimings }
  | { type: 'error'; id: string; error: EngineError }
  | { type: 'canceled'; id: string }
  | { type: 'step'; stats: StepStats }
  | { type: 'log'; message: string };

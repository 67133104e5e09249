/** Messages between the engine thread and its host (engine-host.ts). */
import type { TaskRequest } from './pipeline';
import type { SessionOptions } from './session';

export interface EngineThreadOptions {
  modelDir: string;
  session: Omit<SessionOptions, 'log'>;
  /** most rows (sequences × guidance branches) per model call */
  maxRows?: number;
  /** verify model file checksums at start */
  verify?: boolean;
}

export interface EngineError {
  name: string;
  message: string;
  /** the request field at fault, for input errors (never retried) */
  field?: string;
  retryable: boolean;
}

export type EngineOutput =
  | { kind: 'image'; png: Uint8Array; width: number; height: number }
  | { kind: 'text'; text: string };

export interface JobTimings {
  prepareMs: number;
  samplingMs: number;
  decodeMs: number;
  steps: number;
}

export interface StepStats {
  /** ids of the sequences that ran this step */
  jobs: string[];
  calls: { kind: string; sequences: number; rows: number; positions: number; ms: number }[];
  stepMs: number;
  cacheBytes: number;
}

export type ToThread = { type: 'submit'; id: string; request: TaskRequest } | { type: 'cancel'; id: string } | { type: 'shutdown' };

export type FromThread =
  | { type: 'ready'; model: { name: string; version: string; checksum: string }; provider: string }
  | { type: 'failed-start'; error: EngineError }
  | { type: 'progress'; id: string; step: number; steps: number }
  | { type: 'done'; id: string; output: EngineOutput; timings: JobTimings }
  | { type: 'error'; id: string; error: EngineError }
  | { type: 'canceled'; id: string }
  | { type: 'step'; stats: StepStats }
  | { type: 'log'; message: string };

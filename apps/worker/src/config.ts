/** The worker's environment, validated once at boot. */
import { hostname } from 'node:os';
import { ServiceEnvSchema } from '@dimoo/config';
import { DEFAULT_BATCH_POLICY } from '@dimoo/diffusion';
import { EXECUTION_PROVIDERS, ML_CACHE_PATHS } from '@dimoo/runtime';
import { z } from 'zod';

export const WorkerEnvSchema = ServiceEnvSchema.extend({
  EXECUTION_PROVIDER: z.enum(EXECUTION_PROVIDERS).default('cpu'),
  /** with EXECUTION_PROVIDER=cuda, tensorrt or webgpu and that provider missing (no WebGPU adapter): run on CPU (logged) instead of refusing to start */
  ALLOW_CPU_FALLBACK: z.stringbool().default(false),
  INTRA_OP_THREADS: z.coerce.number().int().min(0).default(0),
  /** jobs held at once = batch slots: they share model calls step by step */
  BATCH_SLOTS: z.coerce.number().int().min(1).max(256).default(8),
  MAX_BATCH_ROWS: z.coerce.number().int().min(1).optional(),
  WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  LOCK_DURATION_MS: z.coerce.number().int().min(1000).default(30000),
  /** times a job may lose its worker (a crash, a frozen process) before BullMQ fails it as a poison pill */
  MAX_STALLED_COUNT: z.coerce.number().int().min(0).default(2),
  /** how often the progress of the batch's jobs is written (one statement for all of them) */
  PROGRESS_INTERVAL_MS: z.coerce.number().int().min(50).default(500),
  /** on SIGTERM: how long running jobs may take to finish before they are handed back to the queue */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30000),
  /** continuous: jobs join a running batch at the next step; static: a batch starts and ends together (comparison) */
  BATCH_MODE: z.enum(['continuous', 'static']).default(DEFAULT_BATCH_POLICY.mode),
  /** most positions (padded sequence length × guidance branches) in one batch; bounds model time and cache memory */
  BATCH_COST_BUDGET: z.coerce.number().int().min(1).default(DEFAULT_BATCH_POLICY.costBudget),
  /** an idle engine waits this long after the first arrival for a batch to fill */
  BATCH_WAIT_MS: z.coerce.number().int().min(0).max(10000).default(DEFAULT_BATCH_POLICY.waitMs),
  /** a preview image every this many steps unless the job says otherwise (0: none) */
  PREVIEW_EVERY_STEPS: z.coerce.number().int().min(0).default(8),
  /** ML-Cache jobs: host (K/V in host memory), resident (K/V on the WebGPU device), segment (denoise_segment), auto (libs/runtime engine-protocol.ts) */
  ML_CACHE_PATH: z.enum(ML_CACHE_PATHS).default('auto'),
  /** a batch record is cut after this many steps even if the batch keeps running */
  /** port of /healthz and /readyz (0: none); with it, a worker whose model fails to load stays up and says why */
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** fault injection for tests: the engine thread exits after this many steps (never set it in a deployment) */
  FAULT_ENGINE_EXIT_AFTER_STEPS: z.coerce.number().int().min(1).optional(),
  BATCH_RECORD_MAX_STEPS: z.coerce.number().int().min(1).default(500),
});
export type WorkerEnv = z.infer<typeof WorkerEnvSchema>;

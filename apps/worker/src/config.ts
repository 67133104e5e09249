/** The worker's environment, validated once at boot. */
import { hostname } from 'node:os';
import { ServiceEnvSchema } from '@dimoo/queue';
import { z } from 'zod';

export const WorkerEnvSchema = ServiceEnvSchema.extend({
  EXECUTION_PROVIDER: z.enum(['cpu', 'cuda']).default('cpu'),
  /** with EXECUTION_PROVIDER=cuda and no CUDA provider: run on CPU (logged) instead of refusing to start */
  ALLOW_CPU_FALLBACK: z.stringbool().default(false),
  INTRA_OP_THREADS: z.coerce.number().int().min(0).default(0),
  /** jobs held at once = batch slots: they share model calls step by step */
  BATCH_SLOTS: z.coerce.number().int().min(1).max(256).default(8),
  MAX_BATCH_ROWS: z.coerce.number().int().min(1).optional(),
  WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  LOCK_DURATION_MS: z.coerce.number().int().min(1000).default(30000),
  PROGRESS_INTERVAL_MS: z.coerce.number().int().min(50).default(500),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30000),
});
export type WorkerEnv = z.infer<typeof WorkerEnvSchema>;

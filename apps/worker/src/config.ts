/** The worker's environment, validated once at boot. */
import { hostname } from 'node:os';
import { z } from 'zod';

export const WorkerEnvSchema = z.object({
  DATABASE_URL: z.url(),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().min(1).default('dimoo'),
  S3_ENDPOINT: z.string().min(1).default('127.0.0.1'),
  S3_PORT: z.coerce.number().int().positive().default(9000),
  S3_USE_SSL: z.stringbool().default(false),
  S3_ACCESS_KEY: z.string().min(1),
  S3_SECRET_KEY: z.string().min(1),
  S3_BUCKET: z.string().min(3).default('dimoo'),
  S3_REGION: z.string().default('us-east-1'),
  MODEL_DIR: z.string().min(1),
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

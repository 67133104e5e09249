/** The API's environment, validated once at boot: a bad value stops the process with the variable named. */
import { z } from 'zod';

export const ApiEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
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
  /** bootstrap admin key: creates teams and their keys */
  ADMIN_API_KEY: z.string().min(24, 'use at least 24 characters'),
  /** the served model's directory: requests are validated against its manifest */
  MODEL_DIR: z.string().min(1),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(20 * 1024 * 1024),
  RESULT_URL_TTL_SECONDS: z.coerce.number().int().positive().default(3600),
  OUTBOX_INTERVAL_MS: z.coerce.number().int().positive().default(2000),
});
export type ApiEnv = z.infer<typeof ApiEnvSchema>;

import { z } from 'zod';
import { LoggingEnvSchema } from './logging';
import { TelemetryEnvSchema } from './telemetry';

/** Validates the environment once at boot; a bad value stops the process naming every offending variable. */
export function loadEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv = process.env): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new Error(`invalid environment:\n${lines}`);
  }
  return parsed.data;
}

/** Settings every service process shares: where the record, the queue, the objects and the model are; logs and traces. */
export const ServiceEnvSchema = z.object({
  DATABASE_URL: z.url(),
  /** how long a database connection or query may take before it fails (and the caller retries or answers 503) */
  DATABASE_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().min(1).default('dimoo'),
  /** jobs BullMQ holds waiting at once (the rest wait in the fair queue): at most this many start before a newcomer */
  DISPATCH_AHEAD: z.coerce.number().int().min(1).max(1000).default(8),
  S3_ENDPOINT: z.string().min(1).default('127.0.0.1'),
  S3_PORT: z.coerce.number().int().positive().default(9000),
  S3_USE_SSL: z.stringbool().default(false),
  S3_ACCESS_KEY: z.string().min(1),
  S3_SECRET_KEY: z.string().min(1),
  S3_BUCKET: z.string().min(3).default('dimoo'),
  S3_REGION: z.string().default('us-east-1'),
  /** where clients reach the store (e.g. https://s3.example.com), for presigned result URLs; the endpoint above otherwise */
  S3_PUBLIC_URL: z.url().optional(),
  /** the served model's directory */
  MODEL_DIR: z.string().min(1),
  ...LoggingEnvSchema.shape,
  ...TelemetryEnvSchema.shape,
});
export type ServiceEnv = z.infer<typeof ServiceEnvSchema>;

/** The notifier's environment, validated once at boot: it needs the record and the queue, not the store or the model. */
import { ServiceEnvSchema } from '@dimoo/config';
import { z } from 'zod';

export const NotifierEnvSchema = ServiceEnvSchema.pick({
  DATABASE_URL: true,
  DATABASE_TIMEOUT_MS: true,
  REDIS_URL: true,
  QUEUE_PREFIX: true,
  LOG_LEVEL: true,
  LOG_FORMAT: true,
  OTEL_EXPORTER_OTLP_ENDPOINT: true,
  OTEL_SERVICE_NAME: true,
}).extend({
  /** addresses or CIDR ranges webhooks may reach although private or loopback (comma-separated; e.g. 127.0.0.1/32 in tests) */
  WEBHOOK_ALLOW: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    ),
  /** how long a receiver may take to answer */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
  /** tries per delivery (the first included) before it is recorded failed */
  WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(30).default(8),
  /** the first retry's delay; each next one doubles it (BullMQ exponential backoff) */
  WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).default(5000),
  /** deliveries sent at once */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(16),
  /** how often the event log is read for new deliveries even without a notification */
  NOTIFIER_SCAN_MS: z.coerce.number().int().min(50).default(2000),
  /** port of `/metrics` (Prometheus) and `/healthz` (0: no HTTP server) */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
});
export type NotifierEnv = z.infer<typeof NotifierEnvSchema>;

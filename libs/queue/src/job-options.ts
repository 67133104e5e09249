import type { JobsOptions } from 'bullmq';

/**
 * How generation jobs are retried and retained. Attempts cover worker crashes and transient failures; input errors
 * are thrown as UnrecoverableError and never retried. Redis keeps finished jobs only briefly: Postgres is the record.
 */
export const GENERATION_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 5000 },
};

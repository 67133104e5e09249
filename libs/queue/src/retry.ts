/**
 * Retrying an operation through a short outage of the store behind it (Postgres, S3): exponential backoff while the
 * error is transient, at once otherwise. Long outages are the queue's business (GENERATION_JOB_OPTIONS: attempts and
 * backoff); this keeps a few seconds of outage from costing a job an attempt, or a finished image its upload.
 */
export interface RetryOptions {
  /** whether the error may go away by itself */
  isTransient: (error: unknown) => boolean;
  /** tries in all @defaultValue 7 */
  attempts?: number;
  /** the first wait; each next one doubles @defaultValue 250 */
  baseMs?: number;
  /** the longest wait @defaultValue 8000 */
  maxMs?: number;
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
}

/** With the defaults, a transient error is retried for about 24 s before it is thrown. */
export async function retryTransient<T>(op: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { isTransient, attempts = 7, baseMs = 250, maxMs = 8000, onRetry } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (error) {
      if (attempt >= attempts || !isTransient(error)) throw error;
      const waitMs = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
      onRetry?.(error, attempt, waitMs);
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

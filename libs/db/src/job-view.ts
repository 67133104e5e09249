/**
 * A job row and its events as clients see them: the API's job view and event stream, and the webhooks' payloads (one
 * definition for both).
 */
import type { JobStreamEventType, JobView } from '@dimoo/contracts';
import { OUTPUT_FORMATS, parseStoredJob, resultFormat } from '@dimoo/contracts';
import type { Job, JobEvent } from './prisma';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toView(job: Job): JobView {
  const resultUrl = `/v1/jobs/${job.id}/result`;
  return {
    id: job.id,
    task: job.task,
    status: job.status,
    progress: job.progress,
    step: job.step,
    steps: job.steps,
    seed: job.seed === null ? null : Number(job.seed),
    model: { name: job.model, checksum: job.modelChecksum },
    attempts: job.attempts,
    apiKeyId: job.apiKeyId,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    deadline: iso(job.deadlineAt),
    timings: (job.timings as Record<string, number> | null) ?? null,
    resultDeletedAt: iso(job.resultDeletedAt),
    result:
      job.status !== 'succeeded' || (job.resultDeletedAt && job.resultText === null)
        ? null
        : job.resultText !== null
          ? { kind: 'text', text: job.resultText, url: resultUrl }
          : {
              kind: 'image',
              url: resultUrl,
              contentType: resultContentType(job),
              // every image of a job that made several (n); the first is `url`
              images: (job.resultKeys.length > 0 ? job.resultKeys : [job.resultKey]).map((_, i) => (i === 0 ? resultUrl : `${resultUrl}?index=${i}`)),
            },
    error: errorView(job.error),
  };
}

/**
 * The content type of an image job's result: its resolved job's format (@dimoo/contracts resultFormat); for a row the
 * worker cannot read any more (stored before resolved jobs were versioned), the result key's extension.
 */
export function resultContentType(job: Job): string {
  const stored = parseStoredJob(job.params);
  const format = stored.ok ? resultFormat(stored.job) : Object.values(OUTPUT_FORMATS).find((f) => job.resultKey?.endsWith(`.${f.extension}`));
  return format?.contentType ?? 'application/octet-stream';
}

/** The recorded failure ({code, message, details}) as the API shows it. */
function errorView(e: unknown): JobView['error'] {
  if (!e || typeof e !== 'object') return null;
  const { code, message, details } = e as { code?: string; message?: string; details?: { field?: string } };
  return { type: code ?? 'error', message: message ?? '', ...(details?.field ? { field: details.field } : {}) };
}

/**
 * A recorded job event as the event stream sends it (`GET /v1/jobs/:id/events`); null for bookkeeping events
 * (`enqueued`, `retried`: a retry is followed by `started`).
 */
export function toStreamEvent(e: JobEvent): { event: JobStreamEventType; data: Record<string, unknown> } | null {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const base = { jobId: e.jobId, at: e.createdAt.toISOString() };
  switch (e.type) {
    case 'queued':
      return { event: 'queued', data: { ...base, ...(data['reason'] ? { reason: data['reason'] } : {}) } };
    case 'started':
      return { event: 'started', data: { ...base, attempt: data['attempt'] ?? null } };
    case 'progress':
      return { event: 'progress', data: { ...base, step: data['step'], steps: data['steps'] } };
    case 'preview':
      return { event: 'preview', data: { ...base, step: data['step'], url: `/v1/jobs/${e.jobId}/previews/${String(data['step'])}`, contentType: 'image/png' } };
    case 'succeeded':
      return { event: 'completed', data: { ...base, url: `/v1/jobs/${e.jobId}/result`, ...(data['resultText'] ? { text: data['resultText'] } : {}) } };
    case 'failed':
      return { event: 'failed', data: { ...base, error: errorView({ code: data['code'], message: data['message'], details: data['details'] }) } };
    case 'canceled':
      return { event: 'canceled', data: base };
    case 'expired':
      return { event: 'expired', data: base };
    default:
      return null;
  }
}

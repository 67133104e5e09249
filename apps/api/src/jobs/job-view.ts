import type { JobView } from '@dimoo/contracts';
import type { Job } from '@dimoo/db';

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
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    timings: (job.timings as Record<string, number> | null) ?? null,
    result:
      job.status !== 'succeeded'
        ? null
        : job.resultText !== null
          ? { kind: 'text', text: job.resultText, url: resultUrl }
          : { kind: 'image', url: resultUrl, contentType: 'image/png' },
    error: errorView(job.error),
  };
}

/** The recorded failure ({code, message, details}) as the API shows it. */
function errorView(e: unknown): JobView['error'] {
  if (!e || typeof e !== 'object') return null;
  const { code, message, details } = e as { code?: string; message?: string; details?: { field?: string } };
  return { type: code ?? 'error', message: message ?? '', ...(details?.field ? { field: details.field } : {}) };
}

/**
 * Every enumeration the API, the worker, the database and the dashboard share, defined once. `libs/db` imports them
 * (its Prisma enums are held equal to these by `libs/db/src/enums.spec.ts`); the problem+json, the event stream and
 * the stored job record all use these names.
 */

/** What a job asks the model for: text-to-image, painting (inpaint/outpaint), image-to-image, understanding. */
export const JOB_TASKS = ['t2i', 'paint', 'i2i', 'mmu'] as const;
export type JobTask = (typeof JOB_TASKS)[number];

/** A job's priority within its team (fair share across teams comes first): high jobs start before normal, then low. */
export const JOB_PRIORITIES = ['high', 'normal', 'low'] as const;
export type JobPriority = (typeof JOB_PRIORITIES)[number];
export const DEFAULT_PRIORITY: JobPriority = 'normal';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves. The database allows at most one event of these types per job. */
export const TERMINAL_STATUSES = ['succeeded', 'failed', 'canceled'] as const satisfies readonly JobStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** The types a job's recorded history can hold (column `job_events.type`). */
export const JOB_EVENT_TYPES = ['queued', 'enqueued', 'started', 'progress', 'preview', 'succeeded', 'failed', 'canceled', 'retried'] as const;
export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/**
 * The events a client's stream (`GET /v1/jobs/:id/events`) sends: the history without its bookkeeping (`enqueued`,
 * `retried`), with `succeeded` named `completed`. The stream ends after a terminal one.
 */
export const JOB_STREAM_EVENT_TYPES = ['queued', 'started', 'progress', 'preview', 'completed', 'failed', 'canceled'] as const;
export type JobStreamEventType = (typeof JOB_STREAM_EVENT_TYPES)[number];
export const TERMINAL_STREAM_EVENT_TYPES = ['completed', 'failed', 'canceled'] as const satisfies readonly JobStreamEventType[];

export function isTerminalStreamEvent(type: JobStreamEventType): boolean {
  return (TERMINAL_STREAM_EVENT_TYPES as readonly JobStreamEventType[]).includes(type);
}

/** Image-to-image kinds; each selects the model's system prompt of the same name (manifest `templates.sys`). */
export const EDIT_TYPES = ['edit', 'subject', 'control', 'style'] as const;
export type EditType = (typeof EDIT_TYPES)[number];

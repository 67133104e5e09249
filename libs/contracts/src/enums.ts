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

/** `expired`: the job's `deadline` passed before any worker started it (it never ran). */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled', 'expired'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves. The database allows at most one event of these types per job. */
export const TERMINAL_STATUSES = ['succeeded', 'failed', 'canceled', 'expired'] as const satisfies readonly JobStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** Whether a status (or a recorded event type of the same name) is one a job never leaves. */
export function isTerminalStatus(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** The types a job's recorded history can hold (column `job_events.type`). */
export const JOB_EVENT_TYPES = ['queued', 'enqueued', 'started', 'progress', 'preview', 'succeeded', 'failed', 'canceled', 'expired', 'retried'] as const;
export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/**
 * The events a client's stream (`GET /v1/jobs/:id/events`) sends: the history without its bookkeeping (`enqueued`,
 * `retried`), with `succeeded` named `completed`. The stream ends after a terminal one.
 */
export const JOB_STREAM_EVENT_TYPES = ['queued', 'started', 'progress', 'preview', 'completed', 'failed', 'canceled', 'expired'] as const;
export type JobStreamEventType = (typeof JOB_STREAM_EVENT_TYPES)[number];
export const TERMINAL_STREAM_EVENT_TYPES = ['completed', 'failed', 'canceled', 'expired'] as const satisfies readonly JobStreamEventType[];

export function isTerminalStreamEvent(type: JobStreamEventType): boolean {
  return (TERMINAL_STREAM_EVENT_TYPES as readonly JobStreamEventType[]).includes(type);
}

/**
 * Image-to-image kinds; each selects the model's system prompt of the same name (manifest `templates.sys`). `dense`
 * (a `target` map of the image) and `multiView` (a `view` of the object in the image) take no prompt: their user
 * sentence is the model's own for the target or the view (libs/runtime/src/prompts.ts).
 */
export const EDIT_TYPES = ['edit', 'subject', 'control', 'style', 'dense', 'multiView'] as const;
export type EditType = (typeof EDIT_TYPES)[number];

/** The maps dense prediction (editType `dense`) makes of an image; `segmentation` is the model's "sam2 mask". */
export const DENSE_TARGETS = ['canny', 'hed', 'depth', 'normal', 'pose', 'segmentation'] as const;
export type DenseTarget = (typeof DENSE_TARGETS)[number];

/**
 * The views multi-view generation (editType `multiView`) makes of the object whose front view is the input. The
 * reference passes any word into its prompt and documents no trained set; this list is the project's own.
 */
export const VIEWS = ['back', 'left', 'right', 'top', 'bottom'] as const;
export type View = (typeof VIEWS)[number];

/**
 * The job events a webhook can ask for (`webhookEvents`), named as the event stream names them; by default the
 * terminal ones.
 */
export const WEBHOOK_EVENTS = ['started', 'progress', 'completed', 'failed', 'canceled', 'expired'] as const satisfies readonly JobStreamEventType[];
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ['completed', 'failed', 'canceled', 'expired'];

/** The recorded event (`job_events.type`) a webhook event is: `completed` is `succeeded` in the log. */
export function eventTypeOfWebhook(event: WebhookEvent): JobEventType {
  return event === 'completed' ? 'succeeded' : event;
}

/** The webhook event a recorded event is, or null for bookkeeping events a webhook cannot ask for. */
export function webhookEventOf(type: JobEventType): WebhookEvent | null {
  const event = type === 'succeeded' ? 'completed' : type;
  return (WEBHOOK_EVENTS as readonly string[]).includes(event) ? (event as WebhookEvent) : null;
}

/** What an API key may do: submit (and cancel, delete) jobs, read jobs, administer teams and keys. */
export const API_KEY_SCOPES = ['submit', 'read', 'admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];
/** A team key's scopes unless the admin says otherwise. */
export const DEFAULT_KEY_SCOPES: readonly ApiKeyScope[] = ['submit', 'read'];

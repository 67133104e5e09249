/**
 * The admin routes' wire shapes (all need an admin-scoped key): the teams list, jobs of every team with their team and
 * history, retries, and the queues. The dashboard (apps/dashboard) reads them through the generated SDK types.
 * Insights (stats, batches, workers, usage) are in admin-insights.ts.
 */
import { z } from 'zod';
import { TeamViewSchema } from './api';
import type { JobStatus } from './enums';
import { JOB_EVENT_TYPES } from './enums';
import { JobListQuerySchema, JobViewSchema } from './jobs';

/** `GET /v1/teams`: every team, ordered by name. */
export const TeamListSchema = z.object({ items: z.array(TeamViewSchema) });

/** The header with which an admin-scoped key submits a job (or asks for an upload URL) as another team: the playground. */
export const SUBMIT_AS_HEADER = 'X-Dimoo-Team';

/** The statuses an admin may retry a job from (`POST /v1/admin/jobs/:id/retry`): it ended without a result. */
export const RETRYABLE_STATUSES = ['failed', 'canceled', 'expired'] as const satisfies readonly JobStatus[];
export const isRetryableStatus = (status: string): boolean => (RETRYABLE_STATUSES as readonly string[]).includes(status);

const UUID_TEMPLATE = 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx';
/** Whether `s` is the start of a job id as written (lower-case hex, dashes where a uuid has them). */
export const isJobIdPrefix = (s: string): boolean =>
  s.length >= 1 && s.length <= UUID_TEMPLATE.length && [...s].every((c, i) => (UUID_TEMPLATE[i] === '-' ? c === '-' : /[0-9a-f]/.test(c)));

/** The query of `GET /v1/admin/jobs` (unknown parameters are refused); limit, after, status and task as on `GET /v1/jobs`. */
export const AdminJobQuerySchema = z.strictObject({
  teamId: z.uuid().optional().describe("only this team's jobs"),
  task: JobListQuerySchema.shape.task,
  status: JobListQuerySchema.shape.status,
  since: z.iso.datetime({ offset: true }).optional().describe('only jobs created at or after this time (ISO 8601)'),
  until: z.iso.datetime({ offset: true }).optional().describe('only jobs created before this time (ISO 8601)'),
  q: z
    .string()
    .trim()
    .toLowerCase()
    .refine(isJobIdPrefix, 'must be a job id or the start of one')
    .optional()
    .describe('a job id, or the start of one (e.g. the first 8 characters)'),
  limit: JobListQuerySchema.shape.limit,
  after: JobListQuerySchema.shape.after,
});
export type AdminJobQuery = z.infer<typeof AdminJobQuerySchema>;

/** A job as admins see it: any team's, with its team, the key that submitted it and the job it retried. */
export const AdminJobSchema = JobViewSchema.extend({
  teamId: z.uuid(),
  teamName: z.string(),
  apiKeyId: z.uuid().nullable().describe('the key that submitted the job (null: the bootstrap admin key, or before keys were recorded)'),
  retryOf: z.uuid().nullable().describe('the failed, canceled or expired job this one retries'),
});
export type AdminJob = z.infer<typeof AdminJobSchema>;

/** `GET /v1/admin/jobs`: newest first; `next` is the URL of the next page (null on the last). */
export const AdminJobPageSchema = z.object({ items: z.array(AdminJobSchema), hasMore: z.boolean(), next: z.string().nullable() });
export type AdminJobPage = z.infer<typeof AdminJobPageSchema>;

/** One recorded event of a job, bookkeeping included (`enqueued`, `retried`), as the log holds it. */
export const JobEventRecordSchema = z.object({
  seq: z.number().int().describe('the event id (increasing in the order the job’s events were committed; the event stream’s id)'),
  type: z.enum(JOB_EVENT_TYPES),
  at: z.string().describe('when it was recorded (ISO 8601)'),
  data: z.record(z.string(), z.unknown()).nullable(),
});

/** `GET /v1/admin/jobs/:id`: the job, its whole history and where its time went. */
export const AdminJobDetailSchema = AdminJobSchema.extend({
  params: z.record(z.string(), z.unknown()).nullable().describe('the resolved request as stored: every default applied (prompt, steps, seed, …)'),
  events: z.array(JobEventRecordSchema).describe('oldest first'),
  timings: z
    .object({
      waitMs: z.number().nullable().describe('submit → start (null until started)'),
      runMs: z.number().nullable().describe('start → end (null until finished, or never started)'),
      totalMs: z.number().nullable().describe('submit → end (null until finished)'),
    })
    .catchall(z.number().nullable())
    .describe("the job's wait, run and total times, and the worker's own stage timings (prepareMs, samplingMs, decodeMs, uploadMs, …)"),
});
export type AdminJobDetail = z.infer<typeof AdminJobDetailSchema>;

const count = z.number().int().min(0);
/** A BullMQ queue as admins see it: paused or not, and its jobs by state. */
export const QueueItemSchema = z.object({
  name: z.string(),
  paused: z.boolean().describe('paused: workers take no new job (running ones finish)'),
  counts: z.object({ waiting: count, prioritized: count, active: count, delayed: count, completed: count, failed: count }),
});
export type QueueItem = z.infer<typeof QueueItemSchema>;
export const QueueListSchema = z.object({ items: z.array(QueueItemSchema) });

/** `POST /v1/admin/board-session`: a one-time URL that opens the (read-only) queue board in a browser. */
export const BoardSessionSchema = z.object({
  url: z.string().describe('open it within 60 s, once: it sets the board cookie and redirects to the board (relative to the API)'),
});

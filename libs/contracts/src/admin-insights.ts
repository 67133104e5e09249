/**
 * The admin read models (`GET /v1/admin/workers`, `/stats`, `/batches`, `/usage`): their query parameters, their
 * answers, and the rules they rest on — when a worker counts as stale, how long a crashed worker's row is kept, how
 * short a worker's last error is. The worker writes the registry (apps/worker), the API reads it (apps/api/src/admin),
 * the dashboard shows it; all three take the rules from here.
 */
import { z } from 'zod';
import { JOB_STATUSES } from './enums';

/**
 * A worker writes its heartbeats — its registry row and the heartbeats of the jobs it holds — every third of its
 * BullMQ lock period (`LOCK_DURATION_MS`), so a lock is renewed twice before it could expire.
 */
export const workerHeartbeatMs = (lockDurationMs: number): number => Math.max(50, Math.floor(lockDurationMs / 3));

/**
 * A worker is stale once it has written no heartbeat for this many of its heartbeat periods (each row carries its own
 * period: workers with different lock periods are judged each by its own). A stale worker crashed, froze or lost the
 * database; one that shut down gracefully removes its row.
 */
export const WORKER_STALE_PERIODS = 3;

/** A stale worker's row is deleted once it is this old (by any worker registering): crashed workers do not pile up. */
export const WORKER_FORGET_AFTER_MS = 24 * 60 * 60 * 1000;

/** A worker's `lastError` is cut to this many characters (an error code and its first line, object keys masked). */
export const WORKER_LAST_ERROR_MAX = 200;

/** `GET /v1/admin/stats`: the window, in minutes (one series bucket per minute). */
export const STATS_MINUTES = { default: 60, max: 1440 } as const;
/** `GET /v1/admin/batches`: records per page. */
export const BATCH_LIST_LIMITS = { default: 50, max: 200 } as const;
/** `GET /v1/admin/usage`: days back, today (UTC) included. */
export const USAGE_DAYS = { default: 14, max: 366 } as const;

const time = z.string().describe('ISO 8601');

export const StatsQuerySchema = z.strictObject({
  minutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(STATS_MINUTES.max)
    .default(STATS_MINUTES.default)
    .describe(`the window: this many one-minute buckets up to now (1–${STATS_MINUTES.max}, default ${STATS_MINUTES.default})`),
});
export type StatsQuery = z.infer<typeof StatsQuerySchema>;

export const BatchListQuerySchema = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(BATCH_LIST_LIMITS.max)
    .default(BATCH_LIST_LIMITS.default)
    .describe(`batch records per page (1–${BATCH_LIST_LIMITS.max}, default ${BATCH_LIST_LIMITS.default})`),
  before: z.iso.datetime({ offset: true }).optional().describe('only batches started before this time (ISO 8601): the previous page’s last startedAt'),
});
export type BatchListQuery = z.infer<typeof BatchListQuerySchema>;

export const UsageQuerySchema = z.strictObject({
  days: z.coerce
    .number()
    .int()
    .min(1)
    .max(USAGE_DAYS.max)
    .default(USAGE_DAYS.default)
    .describe(`days back, today (UTC) included (1–${USAGE_DAYS.max}, default ${USAGE_DAYS.default})`),
});
export type UsageQuery = z.infer<typeof UsageQuerySchema>;

/** A worker as its registry row says, judged against the API's served model and the staleness rule. */
export const WorkerViewSchema = z.object({
  id: z.string().describe('WORKER_ID'),
  host: z.string(),
  pid: z.number().int(),
  modelName: z.string(),
  modelVersion: z.string(),
  modelChecksum: z.string().describe('digest of the model files the worker loaded (libs/model modelChecksum)'),
  modelMatches: z.boolean().describe("the worker's model checksum equals that of the manifest this API serves"),
  executionProvider: z.string().describe('cpu, cuda, tensorrt or webgpu (EXECUTION_PROVIDERS in libs/runtime): what the engine runs on'),
  slots: z.number().int().describe('BATCH_SLOTS: jobs it holds at once'),
  runningJobs: z.number().int(),
  currentBatchId: z.string().nullable().describe('the batch the engine runs now (its record is written when it drains)'),
  jobsDone: z.number().int().describe('jobs it completed since it started'),
  jobsFailed: z.number().int().describe('jobs it recorded as failed since it started'),
  lastError: z.string().nullable().describe(`the last job error it saw: a code and one line, at most ${WORKER_LAST_ERROR_MAX} characters`),
  startedAt: time,
  heartbeatAt: time,
  stale: z.boolean().describe(`no heartbeat for ${WORKER_STALE_PERIODS} of its heartbeat periods: crashed, frozen or cut off`),
});
export type WorkerView = z.infer<typeof WorkerViewSchema>;
export const WorkerListSchema = z.object({ items: z.array(WorkerViewSchema) });
export type WorkerList = z.infer<typeof WorkerListSchema>;

/** Jobs per status, every status present (0 when none). */
export const StatusCountsSchema = z.object(
  Object.fromEntries(JOB_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof JOB_STATUSES)[number], z.ZodNumber>,
);
export type StatusCounts = z.infer<typeof StatusCountsSchema>;

const ms = z.number().nullable();
export const StatsSeriesPointSchema = z.object({
  t: time.describe('the minute the bucket starts'),
  succeeded: z.number().int().describe('jobs that succeeded in this minute'),
  failed: z.number().int().describe('jobs that failed in this minute'),
  waitP50Ms: ms.describe('of the jobs that ended (any terminal status) in this minute and had started: submit → start; null when none'),
  waitP95Ms: ms,
  runP50Ms: ms.describe('of the same jobs: start → end; null when none'),
  runP95Ms: ms,
});

export const AdminStatsSchema = z.object({
  generatedAt: time,
  minutes: z.number().int(),
  byStatus: StatusCountsSchema.describe('every queued and running job, and the jobs that reached another status inside the window'),
  byTeam: z.array(z.object({ teamId: z.uuid(), teamName: z.string(), byStatus: StatusCountsSchema })).describe('the same counts per team, by team name'),
  series: z.array(StatsSeriesPointSchema).describe('one bucket per minute of the window, oldest first; the last is the current minute'),
  batches: z
    .object({
      count: z.number().int().describe('batch records started inside the window'),
      meanSize: z.number().describe('sequences per step, over all their steps'),
      maxSize: z.number().int(),
      stepP50Ms: z.number().describe("the median of the batches' median step times"),
      stepP95Ms: z.number().describe("the 95th percentile of the batches' p95 step times"),
      cacheHitRatio: z.number().describe('1 − positions / fullPositions: the share ML-Cache served'),
      maxCacheBytes: z.number(),
      positions: z.number(),
      fullPositions: z.number(),
    })
    .describe('the batch records of the window (every figure 0 when count is 0)'),
  oldestWaiting: z
    .object({ id: z.uuid(), teamId: z.uuid(), createdAt: time, ageS: z.number().describe('seconds since its submit') })
    .nullable()
    .describe('the queued job submitted first; null when none waits'),
  failuresLastHour: z.number().int(),
  workers: z.object({ live: z.number().int(), stale: z.number().int() }),
  waitingNoWorker: z.boolean().describe('some job is queued and no live worker is registered'),
});
export type AdminStats = z.infer<typeof AdminStatsSchema>;

/** What a worker records for each batch it ran (apps/worker/src/batch-recorder.ts writes it). */
export const BatchRecordStatsSchema = z.object({
  steps: z.number().int(),
  jobs: z.number().int().describe('sequences that ran in it (a job of n images is n sequences)'),
  sizeOverTime: z.array(z.tuple([z.number(), z.number()])).describe('[ms since the batch started, sequences in the batch] at every change of size'),
  maxSize: z.number().int(),
  meanSize: z.number().describe('mean sequences per step'),
  modelCalls: z.number().int(),
  stepMs: z
    .object({ mean: z.number(), p50: z.number(), p95: z.number(), max: z.number() })
    .describe('wall time of a step (all its model calls plus host work)'),
  forwardMs: z.number().describe('time inside model calls, summed over the batch'),
  positions: z.number().describe('positions the transformer computed'),
  fullPositions: z.number().describe('what full steps of the same rows would have computed'),
  cacheHitRatio: z.number().describe('1 − positions / fullPositions: the share ML-Cache served from cache'),
  maxCacheBytes: z.number(),
  maxBatchCost: z.number(),
});
// a type alias (not an interface) so it is assignable to a JSON column
export type BatchRecordStats = z.infer<typeof BatchRecordStatsSchema>;

export const BatchViewSchema = z.object({
  id: z.uuid(),
  workerId: z.string(),
  startedAt: time,
  finishedAt: time.nullable(),
  jobIds: z.array(z.string()).describe('the jobs that ran in it'),
  stats: BatchRecordStatsSchema.nullable(),
});
export type BatchView = z.infer<typeof BatchViewSchema>;
export const BatchListSchema = z.object({ items: z.array(BatchViewSchema).describe('newest first') });
export type BatchList = z.infer<typeof BatchListSchema>;

export const UsageRowSchema = z.object({
  day: z.string().describe('YYYY-MM-DD (UTC): the day the jobs ended'),
  teamId: z.uuid(),
  teamName: z.string(),
  jobs: z.number().int().describe('jobs that ended that day (any terminal status)'),
  images: z.number().int().describe('images they made (a job of n images counts n)'),
  computeSeconds: z.number().describe('their run time, start → end, summed'),
});
export type UsageRow = z.infer<typeof UsageRowSchema>;
export const UsageSchema = z.object({ items: z.array(UsageRowSchema).describe('by day (oldest first), then team name; days without jobs are left out') });
export type Usage = z.infer<typeof UsageSchema>;

import { randomUUID } from 'node:crypto';
import type { JobEventType, JobTask } from '@dimoo/contracts';
import { AlreadyExists, NotFound, TransitionRejected } from './errors';
import { FOREIGN_KEY_VIOLATION, isUuid, type Job, type JobEvent, Prisma, type PrismaClient, prismaErrorCode, UNIQUE_VIOLATION } from './prisma';

export interface CreateJobInput {
  /** Pass an id to upload inputs under the job's key before the row exists; a random uuid otherwise. */
  id?: string;
  teamId: string;
  task: JobTask;
  params: Prisma.InputJsonValue;
  /** Object keys of the uploaded inputs (@dimoo/contracts StoredImagesSchema), e.g. `{ images: ['teams/…/inputs/image.bin'] }`. */
  inputs: Prisma.InputJsonValue;
  model: string;
  seed?: bigint | number | null;
  /**
   * The caller hands the job to Redis right after (the submit's hot path): enqueuedAt is set now, and the caller calls
   * `clearEnqueued` if that fails. A caller that dies in between leaves a row the outbox's full scan finds (it checks
   * Redis for every queued row enqueued a while ago).
   */
  handingToRedis?: boolean;
}

interface SucceedCommon {
  modelChecksum?: string | null;
  timings?: Prisma.InputJsonValue | null;
}

/** A result is an object in storage (images), a text (mmu answers), or both. */
export type SucceedInput = SucceedCommon & ({ resultKey: string; resultText?: string | null } | { resultKey?: string | null; resultText: string });

export interface JobFailure {
  code: string;
  message: string;
  details?: Prisma.InputJsonValue;
}

/** What `requestCancel` did: canceled a queued job at once, or flagged a running one for its worker. */
export type CancelOutcome = 'canceled' | 'cancelRequested';

/** A position in the jobs' creation order (created_at, id): where a paged scan resumes. */
export interface JobCursor {
  createdAt: Date;
  id: string;
}

const after = (cursor: JobCursor | undefined): Prisma.JobWhereInput =>
  cursor ? { OR: [{ createdAt: { gt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { gt: cursor.id } }] } : {};
const inCreationOrder = [{ createdAt: 'asc' as const }, { id: 'asc' as const }];

export interface EventsQuery {
  /** Only events with a larger id (for resuming a stream). */
  afterId?: bigint;
  /** @defaultValue 500 */
  limit?: number;
}

type Tx = Prisma.TransactionClient;

/**
 * Job state in Postgres, the record of every accepted job. Every transition is one conditional UPDATE (guarded by the
 * current status) plus its event, in one transaction; a transition that does not apply changes nothing and returns
 * false. Transitions on an id that does not exist throw `NotFound`.
 */
export class JobRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /**
   * Inserts the job (status queued, not yet enqueued: the outbox) and its 'queued' event, atomically. The submit's hot
   * path: one SQL statement (one round trip, atomic without an explicit transaction) rather than Prisma's
   * BEGIN / INSERT / INSERT / COMMIT.
   * @throws NotFound when the team does not exist
   * @throws AlreadyExists when a caller-chosen id is taken
   */
  public async create(input: CreateJobInput): Promise<Job> {
    if (!isUuid(input.teamId)) throw new NotFound('team', input.teamId);
    if (input.id !== undefined && !isUuid(input.id)) throw new TypeError(`job id must be a uuid, got ${input.id}`);
    const id = input.id ?? randomUUID();
    const seed = input.seed === undefined || input.seed === null ? null : BigInt(input.seed);
    const queued: JobEventType = 'queued';
    try {
      const rows = await this.prisma.$queryRaw<JobRow[]>`
        WITH j AS (
          INSERT INTO jobs (id, team_id, task, params, inputs, model, seed, enqueued_at)
          VALUES (${id}::uuid, ${input.teamId}::uuid, ${input.task}::job_task, ${JSON.stringify(input.params)}::jsonb,
                  ${JSON.stringify(input.inputs)}::jsonb, ${input.model}, ${seed}::bigint,
                  CASE WHEN ${input.handingToRedis === true} THEN now() END)
          RETURNING *
        ), e AS (INSERT INTO job_events (job_id, type) SELECT id, ${queued} FROM j)
        SELECT * FROM j`;
      return jobFromRow(rows[0]!);
    } catch (error) {
      const codes = [prismaErrorCode(error), sqlState(error)];
      if (codes.includes(FOREIGN_KEY_VIOLATION) || codes.includes('23503')) throw new NotFound('team', input.teamId);
      if (codes.includes(UNIQUE_VIOLATION) || codes.includes('23505')) throw new AlreadyExists('job', 'id', { cause: error });
      throw error;
    }
  }

  /** The hand-over to Redis announced at `create` failed: the job goes back to the outbox (enqueuedAt null). */
  public async clearEnqueued(id: string): Promise<void> {
    await this.prisma.job.updateMany({ where: { id, status: 'queued' }, data: { enqueuedAt: null } });
  }

  /**
   * Records that the job was handed to Redis. Applies only while queued; calling it again refreshes the time. One
   * statement: the UPDATE locks the row before the event is inserted (event ids in commit order, see addEvent).
   */
  public async markEnqueued(id: string): Promise<boolean> {
    if (!isUuid(id)) throw new NotFound('job', id);
    const enqueued: JobEventType = 'enqueued';
    const rows = await this.prisma.$queryRaw<{ job_id: string }[]>`
      WITH u AS (UPDATE jobs SET enqueued_at = now() WHERE id = ${id}::uuid AND status = 'queued' RETURNING id)
      INSERT INTO job_events (job_id, type) SELECT id, ${enqueued} FROM u RETURNING job_id`;
    if (rows.length > 0) return true;
    if ((await this.prisma.job.count({ where: { id } })) === 0) throw new NotFound('job', id);
    return false;
  }

  /**
   * Queued jobs to hand (again) to Redis, oldest first: those never enqueued, and with `olderThanMs` also those
   * enqueued longer ago than that (Redis keeps nothing on disk and may have lost them; re-adding a job that is still
   * there is a no-op because the BullMQ job id is the job id).
   */
  public async pendingEnqueue(limit: number, olderThanMs?: number, cursor?: JobCursor): Promise<Job[]> {
    const stale: Prisma.JobWhereInput[] = olderThanMs === undefined ? [] : [{ enqueuedAt: { lt: new Date(Date.now() - olderThanMs) } }];
    return this.prisma.job.findMany({
      where: { status: 'queued', AND: [{ OR: [{ enqueuedAt: null }, ...stale] }, after(cursor)] },
      orderBy: inCreationOrder,
      take: limit,
    });
  }

  /** Which of these job ids have a row (the orphan sweeper's check; jobs are never deleted). */
  public async existingIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.prisma.job.findMany({ where: { id: { in: [...ids] } }, select: { id: true } });
    return new Set(rows.map((r) => r.id));
  }

  /** Running jobs in creation order after `cursor` (the reaper's scan). */
  public async runningPage(limit: number, cursor?: JobCursor): Promise<Job[]> {
    return this.prisma.job.findMany({ where: { status: 'running', ...after(cursor) }, orderBy: inCreationOrder, take: limit });
  }

  /**
   * A running job whose worker went silent (no take or progress since `silentBefore`) and whose queue entry is gone goes
   * back to the queue for another worker: queued, not yet enqueued (the outbox hands it to Redis), its attempts kept.
   */
  public async requeueLost(id: string, silentBefore: Date, reason: string): Promise<boolean> {
    return this.transition(id, async (tx) => {
      const silent: Prisma.JobWhereInput = { OR: [{ heartbeatAt: { lt: silentBefore } }, { heartbeatAt: null, startedAt: { lt: silentBefore } }] };
      const { count } = await tx.job.updateMany({
        where: { id, status: 'running', ...silent },
        data: { status: 'queued', enqueuedAt: null, step: 0, progress: 0 },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'queued', { reason });
      return true;
    });
  }

  /**
   * A worker takes the job. Applies from queued ('started'), or from running when a stalled job is delivered again
   * ('retried' then 'started'; a stalled job whose cancel was requested is canceled instead, and this returns false).
   * Never applies to a finished job. Increments `attempts` each time it applies.
   */
  public async start(id: string, workerId: string, batchId?: string): Promise<boolean> {
    return (await this.take(id, workerId, batchId)) !== null;
  }

  /** `start`, returning the started row (a worker needs it anyway: one round trip fewer); null when it does not apply. */
  public async take(id: string, workerId: string, batchId?: string): Promise<Job | null> {
    const taken = await this.takeUnlessHeld(id, workerId, null, batchId);
    return taken === 'held' ? null : taken;
  }

  /**
   * `take`, except that a running job whose worker is still alive — its heartbeat newer than `aliveAfter` (null: no
   * such check) — is not taken
   * over: 'held'. A queue redelivers a job whose lock expired; under load that can be a slow worker, not a dead one, and
   * taking the job from it would sample the job twice.
   */
  public async takeUnlessHeld(id: string, workerId: string, aliveAfter: Date | null, batchId?: string): Promise<Job | null | 'held'> {
    let taken: Job | null | 'held' = null;
    await this.transition(id, async (tx) => {
      const data = {
        status: 'running',
        workerId,
        batchId: batchId ?? null,
        startedAt: new Date(),
        heartbeatAt: new Date(),
        attempts: { increment: 1 },
        step: 0,
        progress: 0,
      } satisfies Prisma.JobUpdateManyMutationInput;
      const fresh = await tx.job.updateManyAndReturn({ where: { id, status: 'queued' }, data });
      if (fresh[0]) {
        await addEvent(tx, id, 'started', { workerId, batchId: batchId ?? null, attempt: fresh[0].attempts });
        taken = fresh[0];
        return true;
      }
      const silent: Prisma.JobWhereInput = aliveAfter ? { OR: [{ heartbeatAt: null }, { heartbeatAt: { lt: aliveAfter } }] } : {};
      const retried = await tx.job.updateManyAndReturn({ where: { id, status: 'running', cancelRequested: false, ...silent }, data });
      if (retried[0]) {
        await addEvent(tx, id, 'retried', { workerId, attempt: retried[0].attempts });
        await addEvent(tx, id, 'started', { workerId, batchId: batchId ?? null, attempt: retried[0].attempts });
        taken = retried[0];
        return true;
      }
      if ((await tx.job.count({ where: { id, status: 'running', cancelRequested: false } })) > 0) {
        taken = 'held';
        return true;
      }
      await this.cancelRunning(tx, id, { reason: 'cancel requested before retry' });
      return false;
    });
    return taken;
  }

  /** The worker holding these running jobs is alive (no event: a liveness stamp the reaper and `takeUnlessHeld` read). */
  public async heartbeat(ids: readonly string[], workerId: string): Promise<number> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return 0;
    const { count } = await this.prisma.job.updateMany({ where: { id: { in: valid }, status: 'running', workerId }, data: { heartbeatAt: new Date() } });
    return count;
  }

  /** Step `step` of `steps` done. Applies only while running. */
  public async progress(id: string, step: number, steps: number): Promise<boolean> {
    return this.transition(id, async (tx) => {
      const { count } = await tx.job.updateMany({
        where: { id, status: 'running' },
        data: { step, steps, progress: steps > 0 ? Math.min(1, Math.max(0, step / steps)) : 0, heartbeatAt: new Date() },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'progress', { step, steps });
      return true;
    });
  }

  /** A preview image of step `step` was stored at `key`. Applies only while running. */
  public async preview(id: string, step: number, key: string): Promise<boolean> {
    return this.transition(id, async (tx) => {
      // an UPDATE, not a read: it takes the row lock every event of this job is written under (see addEvent)
      const { count } = await tx.job.updateMany({ where: { id, status: 'running' }, data: { heartbeatAt: new Date() } });
      if (count === 0) return false;
      await addEvent(tx, id, 'preview', { step, key });
      return true;
    });
  }

  /**
   * The job finished with a result. Applies only from running: a duplicate delivery returns false and neither adds a
   * second 'succeeded' event nor changes the stored result.
   */
  public async succeed(id: string, result: SucceedInput): Promise<boolean> {
    return this.transition(id, async (tx) => {
      const { count } = await tx.job.updateMany({
        where: { id, status: 'running' },
        data: {
          status: 'succeeded',
          resultKey: result.resultKey ?? null,
          resultText: result.resultText ?? null,
          ...(result.modelChecksum === undefined ? {} : { modelChecksum: result.modelChecksum }),
          timings: result.timings ?? Prisma.DbNull,
          progress: 1,
          finishedAt: new Date(),
        },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'succeeded', { resultKey: result.resultKey ?? null, resultText: result.resultText ?? null });
      return true;
    });
  }

  /** The job failed for good (no retry left, or invalid before it ran). Applies from queued or running. */
  public async fail(id: string, error: JobFailure): Promise<boolean> {
    return this.transition(id, async (tx) => {
      const failure = { ...error } satisfies Prisma.InputJsonObject;
      const { count } = await tx.job.updateMany({
        where: { id, status: { in: ['queued', 'running'] } },
        data: { status: 'failed', error: failure, finishedAt: new Date() },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'failed', failure);
      return true;
    });
  }

  /**
   * A team asks to cancel its job: a queued job is canceled at once ('canceled'); a running one is flagged
   * (`cancelRequested`) for its worker, which then calls `canceled`. Canceling a canceled job is a no-op.
   * @throws NotFound when the job does not exist or belongs to another team
   * @throws TransitionRejected when the job already succeeded or failed
   */
  public async requestCancel(id: string, teamId: string): Promise<CancelOutcome> {
    if (!isUuid(id)) throw new NotFound('job', id);
    const canceled = await this.prisma.$transaction(async (tx) => {
      const { count } = await tx.job.updateMany({
        where: { id, teamId, status: 'queued' },
        data: { status: 'canceled', cancelRequested: true, finishedAt: new Date() },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'canceled', { by: 'team' });
      return true;
    });
    if (canceled) return 'canceled';
    const { count } = await this.prisma.job.updateMany({
      where: { id, teamId, status: 'running' },
      data: { cancelRequested: true },
    });
    if (count === 1) return 'cancelRequested';
    const job = await this.prisma.job.findFirst({ where: { id, teamId }, select: { status: true } });
    if (!job) throw new NotFound('job', id);
    if (job.status === 'canceled') return 'canceled';
    throw new TransitionRejected(id, 'requestCancel', job.status);
  }

  /** Whether the job's team asked to cancel it (workers poll this between steps). */
  public async isCancelRequested(id: string): Promise<boolean> {
    if (!isUuid(id)) throw new NotFound('job', id);
    const job = await this.prisma.job.findUnique({ where: { id }, select: { cancelRequested: true } });
    if (!job) throw new NotFound('job', id);
    return job.cancelRequested;
  }

  /** The worker stopped the job on request. Applies only from running. */
  public async canceled(id: string): Promise<boolean> {
    return this.transition(id, (tx) => this.cancelRunning(tx, id, { by: 'worker' }));
  }

  /**
   * A draining worker gives a running job back before finishing it (graceful shutdown past its grace period): the job
   * is queued again for any worker, keeping its attempt count. Applies only while running on `workerId`.
   */
  public async handBack(id: string, workerId: string): Promise<boolean> {
    return this.transition(id, async (tx) => {
      const { count } = await tx.job.updateMany({
        where: { id, status: 'running', workerId },
        data: { status: 'queued', enqueuedAt: new Date(), step: 0, progress: 0 },
      });
      if (count === 0) return false;
      await addEvent(tx, id, 'queued', { reason: 'handed back by a draining worker', workerId });
      return true;
    });
  }

  /** The job if it belongs to `teamId`; null for unknown ids and other teams' jobs alike. */
  public async get(id: string, teamId: string): Promise<Job | null> {
    if (!isUuid(id) || !isUuid(teamId)) return null;
    // the API's most frequent read: raw SQL skips the ORM's query planning (a fraction of the CPU per call)
    const rows = await this.prisma.$queryRaw<JobRow[]>`SELECT * FROM jobs WHERE id = ${id}::uuid AND team_id = ${teamId}::uuid`;
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  /** The job whoever owns it: for workers and admin tools, never for team-facing reads. */
  public async getUnscoped(id: string): Promise<Job | null> {
    if (!isUuid(id)) return null;
    return this.prisma.job.findUnique({ where: { id } });
  }

  /** The job's events in order (empty for unknown ids and other teams' jobs). */
  public async events(jobId: string, teamId: string, query: EventsQuery = {}): Promise<JobEvent[]> {
    if (!isUuid(jobId)) return [];
    return this.prisma.jobEvent.findMany({
      where: { jobId, job: { teamId }, ...(query.afterId === undefined ? {} : { id: { gt: query.afterId } }) },
      orderBy: { id: 'asc' },
      take: query.limit ?? 500,
    });
  }

  /**
   * Events of any of `jobIds` after event id `afterId`, in order: one query for every open event stream of an API
   * instance. Unscoped — callers have checked ownership when the stream opened.
   */
  public async eventsOf(jobIds: readonly string[], afterId: bigint, limit = 1000): Promise<JobEvent[]> {
    const ids = jobIds.filter(isUuid);
    if (ids.length === 0) return [];
    return this.prisma.jobEvent.findMany({ where: { jobId: { in: ids }, id: { gt: afterId } }, orderBy: { id: 'asc' }, take: limit });
  }

  /**
   * Each job's events after its own cursor, in id order. Event ids follow commit order within a job (every event is
   * written under its job's row lock), not across jobs: a reader that kept one cursor for all jobs would skip an event
   * whose transaction committed after a later-numbered one of another job.
   */
  public async eventsAfter(cursors: ReadonlyMap<string, bigint>, limit = 1000): Promise<JobEvent[]> {
    const ids = [...cursors.keys()].filter(isUuid);
    if (ids.length === 0) return [];
    const lowest = ids.reduce((min, id) => (cursors.get(id)! < min ? cursors.get(id)! : min), cursors.get(ids[0]!)!);
    const events = await this.prisma.jobEvent.findMany({ where: { jobId: { in: ids }, id: { gt: lowest } }, orderBy: { id: 'asc' }, take: limit });
    return events.filter((e) => e.id > cursors.get(e.jobId)!);
  }

  /** The newest event id of a job (0 when it has none). */
  public async lastEventIdOf(jobId: string): Promise<bigint> {
    if (!isUuid(jobId)) return 0n;
    const last = await this.prisma.jobEvent.findFirst({ where: { jobId }, orderBy: { id: 'desc' }, select: { id: true } });
    return last?.id ?? 0n;
  }

  /** The newest event id (streams start polling after it). */
  public async lastEventId(): Promise<bigint> {
    const last = await this.prisma.jobEvent.findFirst({ orderBy: { id: 'desc' }, select: { id: true } });
    return last?.id ?? 0n;
  }

  private async cancelRunning(tx: Tx, id: string, data: Prisma.InputJsonObject): Promise<boolean> {
    const { count } = await tx.job.updateMany({
      where: { id, status: 'running' },
      data: { status: 'canceled', finishedAt: new Date() },
    });
    if (count === 0) return false;
    await addEvent(tx, id, 'canceled', data);
    return true;
  }

  /** Runs a guarded transition; when it does not apply, tells a missing job (NotFound) from a rejected one (false). */
  private async transition(id: string, apply: (tx: Tx) => Promise<boolean>): Promise<boolean> {
    if (!isUuid(id)) throw new NotFound('job', id);
    const applied = await this.prisma.$transaction(apply);
    if (!applied && (await this.prisma.job.count({ where: { id } })) === 0) throw new NotFound('job', id);
    return applied;
  }
}

/**
 * Adds an event inside a transaction that has already updated (so locked) the job's row, or created it: a job's event
 * ids are then allocated in the order its transactions commit, which is what readers following a job rely on.
 */
async function addEvent(tx: Tx, jobId: string, type: JobEventType, data?: Prisma.InputJsonObject): Promise<void> {
  await tx.jobEvent.create({ data: { jobId, type, ...(data === undefined ? {} : { data }) } });
}

/** A `jobs` row as raw SQL returns it (snake_case columns). */
type JobRow = {
  id: string;
  team_id: string;
  task: Job['task'];
  status: Job['status'];
  params: Job['params'];
  inputs: Job['inputs'];
  model: string;
  model_checksum: string | null;
  seed: bigint | null;
  progress: number;
  step: number;
  steps: number | null;
  result_key: string | null;
  result_text: string | null;
  error: Job['error'];
  attempts: number;
  worker_id: string | null;
  batch_id: string | null;
  enqueued_at: Date | null;
  cancel_requested: boolean;
  created_at: Date;
  started_at: Date | null;
  heartbeat_at: Date | null;
  finished_at: Date | null;
  timings: Job['timings'];
};

/** The Job Prisma would return for this row (held equal to Prisma's own read by job.repository.spec.ts). */
function jobFromRow(r: JobRow): Job {
  return {
    id: r.id,
    teamId: r.team_id,
    task: r.task,
    status: r.status,
    params: r.params,
    inputs: r.inputs,
    model: r.model,
    modelChecksum: r.model_checksum,
    seed: r.seed,
    progress: r.progress,
    step: r.step,
    steps: r.steps,
    resultKey: r.result_key,
    resultText: r.result_text,
    error: r.error,
    attempts: r.attempts,
    workerId: r.worker_id,
    batchId: r.batch_id,
    enqueuedAt: r.enqueued_at,
    cancelRequested: r.cancel_requested,
    createdAt: r.created_at,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    finishedAt: r.finished_at,
    timings: r.timings,
  };
}

/** The Postgres SQLSTATE of a raw query's error, however the driver adapter wrapped it. */
function sqlState(error: unknown): string | undefined {
  const e = error as { meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string } } }; code?: string; cause?: { code?: string } };
  return e?.meta?.driverAdapterError?.cause?.originalCode ?? e?.meta?.code ?? e?.cause?.code;
}

import { randomUUID } from 'node:crypto';
import type { JobEventType, JobStatus, JobTask } from '@dimoo/contracts';
import type { AuditActor } from './api-key.repository';
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
  /** The key that submitted it. */
  apiKeyId?: string | null;
  /** Where its webhooks go, and for which recorded event types. */
  webhook?: { url: string; events: readonly JobEventType[] } | null;
  /** Not started by then, the job ends `expired`. */
  deadlineAt?: Date | null;
  /** The submit's `Idempotency-Key`, reserved before (`reserveIdempotencyKey`): the job is recorded on it atomically. */
  idempotencyKey?: string;
  /** The failed, canceled or expired job this one retries (an admin's retry). */
  retryOf?: string | null;
  /** An admin action that made the job (a submit as a team, a retry): its audit entry is written in the same statement. */
  audit?: JobAudit;
}

/** The audit entry of an admin action that created a job: `targetType` job, `targetId` the new job unless given. */
export interface JobAudit {
  actor: AuditActor;
  action: string;
  targetId?: string;
  details: Prisma.InputJsonObject;
}

/**
 * Whose jobs a read may find: one team's (its id), or every team's (`EVERY_TEAM`: admin-scoped keys and tools). A
 * symbol rather than null, so that a missing team id can never widen a read.
 */
export const EVERY_TEAM = Symbol('every team');
export type TeamScope = string | typeof EVERY_TEAM;
const inScope = (scope: TeamScope) => scope === EVERY_TEAM || isUuid(scope);
const teamCondition = (scope: TeamScope) => (scope === EVERY_TEAM ? Prisma.sql`TRUE` : Prisma.sql`team_id = ${scope}::uuid`);

/** What `reserveIdempotencyKey` found: the key is this submit's now, or an earlier submit holds it. */
export type IdempotencyReservation = { reserved: true } | { reserved: false; requestHash: string; jobId: string | null };

/** How long an Idempotency-Key is kept, and how long a reservation without a job holds (an API died mid-submit). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;
export const IDEMPOTENCY_RESERVATION_MS = 60 * 1000;

/** A page of a team's jobs (`list`): newest first. */
export interface JobListQuery {
  /** @defaultValue 20 */
  limit?: number;
  /** only jobs after this one in the list (older): the previous page's last id */
  after?: string;
  status?: readonly Job['status'][];
  task?: readonly Job['task'][];
  createdFrom?: Date;
  createdBefore?: Date;
  /** a job id or the start of one, as written (lower-case, dashes in place) */
  idPrefix?: string;
}

const UUID_LOWEST = '00000000-0000-0000-0000-000000000000';
const UUID_HIGHEST = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/**
 * The ids that start with `prefix`, as a range (a uuid's text order is its byte order): the primary key's index finds
 * them, where `id::text LIKE 'prefix%'` would read every row.
 */
export function idPrefixRange(prefix: string): { gte: string; lte: string } {
  return { gte: prefix + UUID_LOWEST.slice(prefix.length), lte: prefix + UUID_HIGHEST.slice(prefix.length) };
}

interface SucceedCommon {
  modelChecksum?: string | null;
  timings?: Prisma.InputJsonValue | null;
  /** every image of the job (`n`), in order; `resultKey` is the first */
  resultKeys?: readonly string[];
  /** what ran: the job's `step` becomes the steps run, `steps` the steps planned (a job can finish early) */
  stepsRun?: number;
  stepsPlanned?: number;
}

/** A result is an object in storage (images), a text (mmu answers), or both. */
export type SucceedInput = SucceedCommon & ({ resultKey: string; resultText?: string | null } | { resultKey?: string | null; resultText: string });

export interface JobFailure {
  code: string;
  message: string;
  details?: Prisma.InputJsonValue;
}

/** One job's progress report (`progressMany`). */
export interface ProgressReport {
  id: string;
  step: number;
  steps: number;
}

/** Of the running jobs a worker reported on: those still running (updated) and those whose cancel was requested. */
export interface HeldJobs {
  alive: string[];
  cancelRequested: string[];
}

const held = (rows: readonly { id: string; cancel_requested: boolean }[]): HeldJobs => ({
  alive: rows.map((r) => r.id),
  cancelRequested: rows.filter((r) => r.cancel_requested).map((r) => r.id),
});

/** One status and team of `statusCounts`: its jobs, and the ages (seconds) that apply to the status, else null. */
export interface JobStatusCount {
  status: JobStatus;
  teamId: string;
  teamName: string;
  jobs: number;
  /** queued: how long the oldest has been waiting since its submit */
  oldestQueuedSeconds: number | null;
  /** running: how long ago the stalest one's worker last wrote a heartbeat */
  oldestHeartbeatSeconds: number | null;
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
    const { audit } = input;
    try {
      const rows = await this.prisma.$queryRaw<JobRow[]>`
        WITH j AS (
          INSERT INTO jobs (id, team_id, task, params, inputs, model, seed, enqueued_at, deadline_at, api_key_id, webhook_url, webhook_events, retry_of)
          VALUES (${id}::uuid, ${input.teamId}::uuid, ${input.task}::job_task, ${JSON.stringify(input.params)}::jsonb,
                  ${JSON.stringify(input.inputs)}::jsonb, ${input.model}, ${seed}::bigint,
                  CASE WHEN ${input.handingToRedis === true} THEN now() END, ${input.deadlineAt ?? null}::timestamptz,
                  ${input.apiKeyId ?? null}::uuid, ${input.webhook?.url ?? null}, ${[...(input.webhook?.events ?? [])]}::text[],
                  ${input.retryOf ?? null}::uuid)
          RETURNING *
        ), e AS (INSERT INTO job_events (job_id, type) SELECT id, ${queued} FROM j),
        k AS (
          UPDATE idempotency_keys SET job_id = (SELECT id FROM j)
          WHERE team_id = ${input.teamId}::uuid AND key = ${input.idempotencyKey ?? null}::text
        ), a AS (
          INSERT INTO audit_log (actor_key_id, actor, action, target_type, target_id, details)
          SELECT ${audit?.actor.keyId ?? null}::uuid, ${audit?.actor.label ?? null}, ${audit?.action ?? null}, 'job',
                 COALESCE(${audit?.targetId ?? null}::text, id::text), ${JSON.stringify(audit?.details ?? {})}::jsonb
          FROM j WHERE ${audit !== undefined}
        )
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

  /**
   * Which of these job ids have a row their team has not deleted: the orphan sweeper removes the objects of the others
   * (a row is never removed; a deleted job's objects whose removal failed at delete time are swept later).
   */
  public async keptIds(ids: readonly string[]): Promise<Set<string>> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return new Set();
    const rows = await this.prisma.job.findMany({ where: { id: { in: valid }, deletedAt: null }, select: { id: true } });
    return new Set(rows.map((r) => r.id));
  }

  /**
   * The jobs of `scope` (a team's, or every team's for admins), newest first (created_at, id descending), filtered;
   * `after` continues from a job of the previous page (a job out of scope, or deleted, matches none: an empty page).
   * Deleted jobs are not listed. One more row than asked is read to tell whether there is a next page.
   */
  public async list(scope: TeamScope, query: JobListQuery = {}): Promise<{ jobs: Job[]; hasMore: boolean }> {
    const limit = query.limit ?? 20;
    if (!inScope(scope) || (query.after !== undefined && !isUuid(query.after))) return { jobs: [], hasMore: false };
    const where = [teamCondition(scope), Prisma.sql`deleted_at IS NULL`];
    if (query.after !== undefined) {
      where.push(Prisma.sql`(created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ${query.after}::uuid AND ${teamCondition(scope)})`);
    }
    if (query.status?.length) where.push(Prisma.sql`status::text = ANY(${[...query.status]}::text[])`);
    if (query.task?.length) where.push(Prisma.sql`task::text = ANY(${[...query.task]}::text[])`);
    if (query.createdFrom) where.push(Prisma.sql`created_at >= ${query.createdFrom}`);
    if (query.createdBefore) where.push(Prisma.sql`created_at < ${query.createdBefore}`);
    if (query.idPrefix) {
      const { gte, lte } = idPrefixRange(query.idPrefix);
      where.push(Prisma.sql`id BETWEEN ${gte}::uuid AND ${lte}::uuid`);
    }
    const rows = await this.prisma.$queryRaw<JobRow[]>`
      SELECT * FROM jobs WHERE ${Prisma.join(where, ' AND ')} ORDER BY created_at DESC, id DESC LIMIT ${limit + 1}`;
    return { jobs: rows.slice(0, limit).map(jobFromRow), hasMore: rows.length > limit };
  }

  /**
   * The team deletes a finished job: the row is marked (it stays, an audit record) and returned, so the caller removes
   * its objects. Applies once, to a job that succeeded, failed or was canceled.
   * @throws NotFound when the job does not exist, is out of `teamId`'s scope or was deleted already
   * @throws TransitionRejected when the job is queued or running (cancel it first)
   */
  public async markDeleted(id: string, teamId: TeamScope): Promise<Job> {
    if (!isUuid(id) || !inScope(teamId)) throw new NotFound('job', id);
    const rows = await this.prisma.$queryRaw<JobRow[]>`
      UPDATE jobs SET deleted_at = now()
      WHERE id = ${id}::uuid AND ${teamCondition(teamId)} AND deleted_at IS NULL AND status IN ('succeeded', 'failed', 'canceled', 'expired')
      RETURNING *`;
    if (rows[0]) return jobFromRow(rows[0]);
    const job = await this.get(id, teamId);
    if (!job) throw new NotFound('job', id);
    throw new TransitionRejected(id, 'delete', job.status);
  }

  /**
   * Claims an `Idempotency-Key` for a submit with this request hash: a new key, one older than its 24 h, or a
   * reservation left without a job for longer than IDEMPOTENCY_RESERVATION_MS (its API died) becomes this submit's.
   * Otherwise returns what holds it (one statement when the key is new: an INSERT whose conflict waits for a concurrent
   * holder's commit).
   */
  public async reserveIdempotencyKey(teamId: string, key: string, requestHash: string): Promise<IdempotencyReservation> {
    const claimed = await this.prisma.$queryRaw<unknown[]>`
      INSERT INTO idempotency_keys (team_id, key, request_hash) VALUES (${teamId}::uuid, ${key}, ${requestHash})
      ON CONFLICT (team_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, job_id = NULL, created_at = now()
      WHERE idempotency_keys.created_at < now() - make_interval(secs => ${IDEMPOTENCY_KEY_TTL_MS / 1000})
         OR (idempotency_keys.job_id IS NULL AND idempotency_keys.created_at < now() - make_interval(secs => ${IDEMPOTENCY_RESERVATION_MS / 1000}))
      RETURNING 1`;
    if (claimed.length > 0) return { reserved: true };
    const held = await this.prisma.idempotencyKey.findUnique({ where: { teamId_key: { teamId, key } } });
    // released between the two statements: try again
    if (!held) return this.reserveIdempotencyKey(teamId, key, requestHash);
    return { reserved: false, requestHash: held.requestHash, jobId: held.jobId };
  }

  /**
   * Finished jobs whose images are due for removal (finished before `finishedBefore`, not yet swept, not deleted),
   * oldest first: the retention sweeper's page.
   */
  public async resultsDue(finishedBefore: Date, limit = 100): Promise<Job[]> {
    return this.prisma.job.findMany({
      where: { finishedAt: { lt: finishedBefore }, resultDeletedAt: null, deletedAt: null },
      orderBy: { finishedAt: 'asc' },
      take: limit,
    });
  }

  /** The retention sweeper removed the job's images: the status stays, the result is gone. */
  public async markResultDeleted(id: string): Promise<boolean> {
    const { count } = await this.prisma.job.updateMany({ where: { id, resultDeletedAt: null }, data: { resultDeletedAt: new Date() } });
    return count === 1;
  }

  /** The submit that reserved the key recorded no job (refused, or its row could not be written): the key is free. */
  public async releaseIdempotencyKey(teamId: string, key: string): Promise<void> {
    await this.prisma.idempotencyKey.deleteMany({ where: { teamId, key, jobId: null } });
  }

  /** Removes Idempotency-Keys older than their 24 h; returns how many. */
  public async sweepIdempotencyKeys(): Promise<number> {
    const { count } = await this.prisma.idempotencyKey.deleteMany({ where: { createdAt: { lt: new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS) } } });
    return count;
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
    if (!isUuid(id)) throw new NotFound('job', id);
    // the common case, a queued job: one statement (the row's UPDATE, then its event under the row lock)
    const started: JobEventType = 'started';
    const rows = await this.prisma.$queryRaw<JobRow[]>`
      WITH u AS (
        UPDATE jobs SET status = 'running', worker_id = ${workerId}, batch_id = ${batchId ?? null}, started_at = now(),
               heartbeat_at = now(), attempts = attempts + 1, step = 0, progress = 0
        WHERE id = ${id}::uuid AND status = 'queued' AND (deadline_at IS NULL OR deadline_at > now())
        RETURNING *
      ), e AS (
        INSERT INTO job_events (job_id, type, data)
        SELECT id, ${started}, jsonb_build_object('workerId', ${workerId}::text, 'batchId', ${batchId ?? null}::text, 'attempt', attempts) FROM u
      )
      SELECT * FROM u`;
    if (rows[0]) return jobFromRow(rows[0]);
    // queued past its deadline: it ends here, never started
    if (await this.expire(id)) return null;
    return this.takeOver(id, workerId, aliveAfter, batchId);
  }

  /** A queued job whose deadline has passed ends `expired` (it never ran). Applies only from queued, past the deadline. */
  public async expire(id: string): Promise<boolean> {
    return this.guarded(
      id,
      'expired',
      { reason: 'deadline passed before the job started' },
      Prisma.sql`status = 'expired', finished_at = now()`,
      Prisma.sql`status = 'queued' AND deadline_at <= now()`,
    );
  }

  /**
   * Every queued job past its deadline ends `expired`, at most `limit` of them, in one statement (the reaper's pass:
   * a job expires on time even when no worker takes it). Returns them (id, team) for the fair queue to drop.
   */
  public async expireOverdue(limit = 500): Promise<{ id: string; teamId: string }[]> {
    const type: JobEventType = 'expired';
    const rows = await this.prisma.$queryRaw<{ id: string; team_id: string }[]>`
      WITH due AS (
        SELECT id FROM jobs WHERE status = 'queued' AND deadline_at <= now() ORDER BY deadline_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
      ), u AS (
        UPDATE jobs j SET status = 'expired', finished_at = now() FROM due WHERE j.id = due.id AND j.status = 'queued'
        RETURNING j.id, j.team_id
      ), e AS (
        INSERT INTO job_events (job_id, type, data) SELECT id, ${type}, '{"reason":"deadline passed before the job started"}'::jsonb FROM u
      )
      SELECT id, team_id FROM u`;
    return rows.map((r) => ({ id: r.id, teamId: r.team_id }));
  }

  /** A redelivered running job (its worker died, or its lock expired): retried, held by a live worker, or canceled. */
  private async takeOver(id: string, workerId: string, aliveAfter: Date | null, batchId?: string): Promise<Job | null | 'held'> {
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

  /**
   * The worker holding these running jobs is alive (no event: a liveness stamp the reaper and `takeUnlessHeld` read).
   * Returns the ids among them whose cancel was requested (a job waiting for a batch slot reports no progress).
   */
  public async heartbeat(ids: readonly string[], workerId: string): Promise<HeldJobs> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return { alive: [], cancelRequested: [] };
    const rows = await this.prisma.$queryRaw<{ id: string; cancel_requested: boolean }[]>`
      UPDATE jobs SET heartbeat_at = now()
      WHERE id = ANY(${valid}::uuid[]) AND status = 'running' AND worker_id = ${workerId}
      RETURNING id, cancel_requested`;
    return held(rows);
  }

  /** Step `step` of `steps` done. Applies only while running. */
  public async progress(id: string, step: number, steps: number): Promise<boolean> {
    if (!isUuid(id)) throw new NotFound('job', id);
    return this.applied(id, (await this.progressMany([{ id, step, steps }])).alive);
  }

  /**
   * The progress of several running jobs (a worker's whole batch) in one statement: each row updated (and stamped
   * alive), then its 'progress' event under the row lock. Jobs no longer running are skipped. Returns the ids updated
   * and those whose cancel was requested (the worker's only cancel check: no read of its own).
   */
  public async progressMany(reports: readonly ProgressReport[]): Promise<HeldJobs> {
    const valid = reports.filter((r) => isUuid(r.id));
    if (valid.length === 0) return { alive: [], cancelRequested: [] };
    const type: JobEventType = 'progress';
    const rows = await this.prisma.$queryRaw<{ id: string; cancel_requested: boolean }[]>`
      WITH p AS (
        SELECT * FROM unnest(${valid.map((r) => r.id)}::uuid[], ${valid.map((r) => r.step)}::int[], ${valid.map((r) => r.steps)}::int[])
          AS p(id, step, steps)
      ), u AS (
        UPDATE jobs j SET step = p.step, steps = p.steps, heartbeat_at = now(),
               progress = CASE WHEN p.steps > 0 THEN LEAST(1, GREATEST(0, p.step::float8 / p.steps)) ELSE 0 END
        FROM p WHERE j.id = p.id AND j.status = 'running'
        RETURNING j.id, j.cancel_requested, p.step, p.steps
      ), e AS (
        INSERT INTO job_events (job_id, type, data) SELECT id, ${type}, jsonb_build_object('step', step, 'steps', steps) FROM u
      )
      SELECT id, cancel_requested FROM u`;
    return held(rows);
  }

  /** A preview image of step `step` was stored at `key`. Applies only while running. */
  public async preview(id: string, step: number, key: string): Promise<boolean> {
    // an UPDATE, not a read: it takes the row lock every event of this job is written under (see addEvent)
    return this.guarded(id, 'preview', { step, key }, Prisma.sql`heartbeat_at = now()`, Prisma.sql`status = 'running'`);
  }

  /**
   * The job finished with a result. Applies only from running: a duplicate delivery returns false and neither adds a
   * second 'succeeded' event nor changes the stored result.
   */
  public async succeed(id: string, result: SucceedInput): Promise<boolean> {
    const resultKey = result.resultKey ?? null;
    const resultText = result.resultText ?? null;
    const timings = result.timings === undefined || result.timings === null ? null : JSON.stringify(result.timings);
    const checksum = result.modelChecksum === undefined ? Prisma.sql`model_checksum` : Prisma.sql`${result.modelChecksum}::text`;
    return this.guarded(
      id,
      'succeeded',
      { resultKey, resultText },
      Prisma.sql`status = 'succeeded', result_key = ${resultKey}, result_text = ${resultText}, model_checksum = ${checksum},
                 result_keys = ${[...(result.resultKeys ?? (resultKey ? [resultKey] : []))]}::text[],
                 timings = ${timings}::jsonb, progress = 1, finished_at = now(),
                 step = COALESCE(${result.stepsRun ?? null}::int, step), steps = COALESCE(${result.stepsPlanned ?? null}::int, steps)`,
      Prisma.sql`status = 'running'`,
    );
  }

  /** The job failed for good (no retry left, or invalid before it ran). Applies from queued or running. */
  public async fail(id: string, error: JobFailure): Promise<boolean> {
    const failure = { ...error } satisfies Prisma.InputJsonObject;
    return this.guarded(
      id,
      'failed',
      failure,
      Prisma.sql`status = 'failed', error = ${JSON.stringify(failure)}::jsonb, finished_at = now()`,
      Prisma.sql`status IN ('queued', 'running')`,
    );
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
    const job = await this.prisma.job.findFirst({ where: { id, teamId, deletedAt: null }, select: { status: true } });
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
    return this.guarded(id, 'canceled', { by: 'worker' }, Prisma.sql`status = 'canceled', finished_at = now()`, Prisma.sql`status = 'running'`);
  }

  /**
   * A draining worker gives a running job back before finishing it (graceful shutdown past its grace period): the job
   * is queued again for any worker, keeping its attempt count. Applies only while running on `workerId`.
   */
  public async handBack(id: string, workerId: string): Promise<boolean> {
    return this.guarded(
      id,
      'queued',
      { reason: 'handed back by a draining worker', workerId },
      Prisma.sql`status = 'queued', enqueued_at = now(), step = 0, progress = 0`,
      Prisma.sql`status = 'running' AND worker_id = ${workerId}`,
    );
  }

  /** The job if it is in `teamId`'s scope (not deleted); null for unknown ids and other teams' jobs alike. */
  public async get(id: string, teamId: TeamScope): Promise<Job | null> {
    if (!isUuid(id) || !inScope(teamId)) return null;
    // the API's most frequent read: raw SQL skips the ORM's query planning (a fraction of the CPU per call)
    const rows = await this.prisma.$queryRaw<JobRow[]>`SELECT * FROM jobs WHERE id = ${id}::uuid AND ${teamCondition(teamId)} AND deleted_at IS NULL`;
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  /** Jobs started since `since`, all teams (the fleet's pace, for queue estimates). */
  public async startedSince(since: Date): Promise<number> {
    return this.prisma.job.count({ where: { startedAt: { gte: since } } });
  }

  /**
   * What the API's metrics report about the record (`dimoo_jobs`, `dimoo_queue_oldest_waiting_seconds`,
   * `dimoo_jobs_running_oldest_heartbeat_seconds`): jobs per status and team, and per group the age of its oldest queued
   * job and of its oldest running job's heartbeat, in seconds by the database's clock. One grouped statement (a scan of
   * jobs: the API caches it for a few seconds); deleted jobs still count (their rows stay).
   */
  public async statusCounts(): Promise<JobStatusCount[]> {
    const rows = await this.prisma.$queryRaw<
      { status: string; team_id: string; team_name: string; jobs: number; oldest_queued_s: number | null; oldest_heartbeat_s: number | null }[]
    >`
      SELECT j.status::text AS status, j.team_id::text AS team_id, t.name AS team_name, count(*)::int AS jobs,
             EXTRACT(EPOCH FROM now() - min(j.created_at) FILTER (WHERE j.status = 'queued'))::float8 AS oldest_queued_s,
             EXTRACT(EPOCH FROM now() - min(j.heartbeat_at) FILTER (WHERE j.status = 'running'))::float8 AS oldest_heartbeat_s
      FROM jobs j JOIN teams t ON t.id = j.team_id
      GROUP BY j.status, j.team_id, t.name`;
    return rows.map((r) => ({
      status: r.status as JobStatus,
      teamId: r.team_id,
      teamName: r.team_name,
      jobs: r.jobs,
      oldestQueuedSeconds: r.oldest_queued_s,
      oldestHeartbeatSeconds: r.oldest_heartbeat_s,
    }));
  }

  /** The job whoever owns it: for workers and admin tools, never for team-facing reads. */
  public async getUnscoped(id: string): Promise<Job | null> {
    if (!isUuid(id)) return null;
    return this.prisma.job.findUnique({ where: { id } });
  }

  /** The job's events in order (empty for unknown ids and jobs out of `teamId`'s scope). */
  public async events(jobId: string, teamId: TeamScope, query: EventsQuery = {}): Promise<JobEvent[]> {
    if (!isUuid(jobId) || !inScope(teamId)) return [];
    return this.prisma.jobEvent.findMany({
      where: {
        jobId,
        job: { ...(teamId === EVERY_TEAM ? {} : { teamId }), deletedAt: null },
        ...(query.afterId === undefined ? {} : { id: { gt: query.afterId } }),
      },
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
    // each job from its own cursor (an index range per job): a job followed since long ago does not make every read
    // fetch the other jobs' already delivered events again
    const rows = await this.prisma.$queryRaw<{ id: bigint; job_id: string; type: string; data: JobEvent['data']; created_at: Date }[]>`
      SELECT e.id, e.job_id, e.type, e.data, e.created_at
      FROM unnest(${ids}::uuid[], ${ids.map((id) => cursors.get(id)!.toString())}::bigint[]) AS c(job_id, after)
      CROSS JOIN LATERAL (
        SELECT * FROM job_events e WHERE e.job_id = c.job_id AND e.id > c.after ORDER BY e.id LIMIT ${limit}
      ) e
      ORDER BY e.id LIMIT ${limit}`;
    return rows.map((r) => ({ id: BigInt(r.id), jobId: r.job_id, type: r.type, data: r.data, createdAt: r.created_at }));
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

  /**
   * A guarded transition as one statement: `UPDATE jobs SET <set> WHERE id AND <where>`, then its event, inserted from
   * the UPDATE's result (so under the row lock: event ids in commit order, see addEvent) — one round trip, atomic
   * without an explicit transaction. When it does not apply, tells a missing job (NotFound) from a rejected one (false).
   */
  private async guarded(id: string, type: JobEventType, data: Prisma.InputJsonObject, set: Prisma.Sql, where: Prisma.Sql): Promise<boolean> {
    if (!isUuid(id)) throw new NotFound('job', id);
    const rows = await this.prisma.$queryRaw<{ job_id: string }[]>`
      WITH u AS (UPDATE jobs SET ${set} WHERE id = ${id}::uuid AND ${where} RETURNING id)
      INSERT INTO job_events (job_id, type, data) SELECT id, ${type}, ${JSON.stringify(data)}::jsonb FROM u RETURNING job_id`;
    return this.applied(
      id,
      rows.map((r) => r.job_id),
    );
  }

  /** Whether the statement changed `id` (its ids); when not, NotFound for a missing job, false for a rejected one. */
  private async applied(id: string, changed: readonly string[]): Promise<boolean> {
    if (changed.includes(id)) return true;
    if ((await this.prisma.job.count({ where: { id } })) === 0) throw new NotFound('job', id);
    return false;
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
  deadline_at: Date | null;
  result_deleted_at: Date | null;
  api_key_id: string | null;
  webhook_url: string | null;
  result_keys: string[] | null;
  webhook_events: string[] | null;
  deleted_at: Date | null;
  retry_of: string | null;
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
    deadlineAt: r.deadline_at,
    resultDeletedAt: r.result_deleted_at,
    apiKeyId: r.api_key_id,
    webhookUrl: r.webhook_url,
    resultKeys: r.result_keys ?? [],
    webhookEvents: r.webhook_events ?? [],
    deletedAt: r.deleted_at,
    retryOf: r.retry_of,
  };
}

/** The Postgres SQLSTATE of a raw query's error, however the driver adapter wrapped it. */
function sqlState(error: unknown): string | undefined {
  const e = error as { meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string } } }; code?: string; cause?: { code?: string } };
  return e?.meta?.driverAdapterError?.cause?.originalCode ?? e?.meta?.code ?? e?.cause?.code;
}

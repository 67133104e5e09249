import { WORKER_FORGET_AFTER_MS, WORKER_STALE_PERIODS } from '@dimoo/contracts';
import { isUuid, Prisma, type PrismaClient } from './prisma';

/** What a worker reports about itself (its registry row, less the times the database sets). */
export interface WorkerState {
  /** WORKER_ID */
  id: string;
  host: string;
  pid: number;
  modelName: string;
  modelVersion: string;
  modelChecksum: string;
  executionProvider: string;
  /** BATCH_SLOTS */
  slots: number;
  /** how often it writes its row (`workerHeartbeatMs`): it is stale after `WORKER_STALE_PERIODS` of them */
  heartbeatMs: number;
  runningJobs: number;
  currentBatchId: string | null;
  jobsDone: number;
  jobsFailed: number;
  lastError: string | null;
  startedAt: Date;
}

/** A registry row as readers see it: `stale` judged by the database's clock. */
export interface WorkerRecord extends WorkerState {
  heartbeatAt: Date;
  stale: boolean;
}

/** The staleness rule in SQL (`w`: a workers row), the database's clock against the row's own heartbeat period. */
export const workerStaleSql = (w = 'workers'): Prisma.Sql =>
  Prisma.sql`(${Prisma.raw(w)}.heartbeat_at < now() - make_interval(secs => ${WORKER_STALE_PERIODS} * ${Prisma.raw(w)}.heartbeat_ms / 1000.0))`;

type WorkerRow = {
  id: string;
  host: string;
  pid: number;
  model_name: string;
  model_version: string;
  model_checksum: string;
  execution_provider: string;
  slots: number;
  heartbeat_ms: number;
  running_jobs: number;
  current_batch_id: string | null;
  jobs_done: number;
  jobs_failed: number;
  last_error: string | null;
  started_at: Date;
  heartbeat_at: Date;
  stale: boolean;
};

/**
 * The worker registry (`workers`): each worker writes its own row — at its start (`register`), with each heartbeat
 * (`beat`: one statement, in the tick that writes its jobs' progress and heartbeats) — and removes it when it shuts
 * down gracefully (`remove`). A crashed worker's row stays and turns stale; the next worker to register deletes rows
 * stale for longer than `WORKER_FORGET_AFTER_MS`.
 */
export class WorkerRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /** The worker's row as of its start (a restarted worker under the same id starts afresh); long-gone rows go. */
  public async register(state: WorkerState): Promise<void> {
    await this.upsert(state, true);
  }

  /** One heartbeat: the row written whole (inserted again if it was lost), stamped with the database's clock. */
  public async beat(state: WorkerState): Promise<void> {
    await this.upsert(state, false);
  }

  /** A graceful shutdown: the worker leaves the registry. */
  public async remove(id: string): Promise<void> {
    await this.prisma.$executeRaw`DELETE FROM workers WHERE id = ${id}`;
  }

  /** Every registered worker, by id, with `stale` by the database's clock. */
  public async list(): Promise<WorkerRecord[]> {
    const rows = await this.prisma.$queryRaw<WorkerRow[]>`
      SELECT w.*, ${workerStaleSql('w')} AS stale FROM workers w ORDER BY w.id`;
    return rows.map((r) => ({
      id: r.id,
      host: r.host,
      pid: r.pid,
      modelName: r.model_name,
      modelVersion: r.model_version,
      modelChecksum: r.model_checksum,
      executionProvider: r.execution_provider,
      slots: r.slots,
      heartbeatMs: r.heartbeat_ms,
      runningJobs: r.running_jobs,
      currentBatchId: r.current_batch_id,
      jobsDone: r.jobs_done,
      jobsFailed: r.jobs_failed,
      lastError: r.last_error,
      startedAt: r.started_at,
      heartbeatAt: r.heartbeat_at,
      stale: r.stale,
    }));
  }

  private async upsert(s: WorkerState, forgetGone: boolean): Promise<void> {
    const batch = s.currentBatchId !== null && isUuid(s.currentBatchId) ? s.currentBatchId : null;
    // registering also deletes the rows of workers gone for a day, in the same statement
    const forget = forgetGone
      ? Prisma.sql`DELETE FROM workers WHERE id <> ${s.id} AND heartbeat_at < now() - make_interval(secs => ${WORKER_FORGET_AFTER_MS / 1000})`
      : Prisma.sql`SELECT 1`;
    await this.prisma.$executeRaw`
      WITH forget AS (${forget})
      INSERT INTO workers (id, host, pid, model_name, model_version, model_checksum, execution_provider, slots, heartbeat_ms,
                           running_jobs, current_batch_id, jobs_done, jobs_failed, last_error, started_at, heartbeat_at)
      VALUES (${s.id}, ${s.host}, ${s.pid}, ${s.modelName}, ${s.modelVersion}, ${s.modelChecksum}, ${s.executionProvider}, ${s.slots},
              ${s.heartbeatMs}, ${s.runningJobs}, ${batch}::uuid, ${s.jobsDone}, ${s.jobsFailed}, ${s.lastError}, ${s.startedAt}, now())
      ON CONFLICT (id) DO UPDATE SET
        host = EXCLUDED.host, pid = EXCLUDED.pid, model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version,
        model_checksum = EXCLUDED.model_checksum, execution_provider = EXCLUDED.execution_provider, slots = EXCLUDED.slots,
        heartbeat_ms = EXCLUDED.heartbeat_ms, running_jobs = EXCLUDED.running_jobs, current_batch_id = EXCLUDED.current_batch_id,
        jobs_done = EXCLUDED.jobs_done, jobs_failed = EXCLUDED.jobs_failed, last_error = EXCLUDED.last_error,
        started_at = EXCLUDED.started_at, heartbeat_at = now()`;
  }
}

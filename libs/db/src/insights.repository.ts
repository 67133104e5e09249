import type { AdminStats, BatchRecordStats, JobStatus, StatusCounts, UsageRow } from '@dimoo/contracts';
import { JOB_STATUSES, TERMINAL_STATUSES } from '@dimoo/contracts';
import type { Batch } from './prisma';
import { Prisma, type PrismaClient } from './prisma';
import { workerStaleSql } from './worker.repository';

/** One minute of `stats().series`: jobs that ended in it, and how long those waited and ran (ms; null when none). */
export interface StatsPoint {
  t: Date;
  succeeded: number;
  failed: number;
  waitP50Ms: number | null;
  waitP95Ms: number | null;
  runP50Ms: number | null;
  runP95Ms: number | null;
}

/** The batch records of a window, summed up (the wire shape has no dates to convert). */
export type BatchSummary = AdminStats['batches'];

/** What `GET /v1/admin/stats` shows, as the database computed it. */
export interface FleetStats {
  generatedAt: Date;
  minutes: number;
  byStatus: StatusCounts;
  byTeam: { teamId: string; teamName: string; byStatus: StatusCounts }[];
  series: StatsPoint[];
  batches: BatchSummary;
  oldestWaiting: { id: string; teamId: string; createdAt: Date; ageS: number } | null;
  failuresLastHour: number;
  workers: { live: number; stale: number };
  waitingNoWorker: boolean;
}

/** Jobs, images and run time of one team on one day (UTC): the wire row as it is. */
export type UsageDay = UsageRow;

/** A batch record with the jobs that ran in it. */
export type BatchPageItem = Pick<Batch, 'id' | 'workerId' | 'createdAt' | 'finishedAt' | 'jobIds'> & { stats: BatchRecordStats | null };

const zeroCounts = (): StatusCounts => Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as StatusCounts;
const terminal = Prisma.sql`(${Prisma.join(TERMINAL_STATUSES.map((s) => Prisma.sql`${s}::job_status`))})`;
const num = (v: number | string | null): number => (v === null ? 0 : Number(v));
const nullable = (v: number | string | null): number | null => (v === null ? null : Math.round(Number(v) * 10) / 10);

/**
 * The admins' read models over the record: the fleet's recent figures (`stats`), usage per team and day (`usage`) and
 * the batch records (`batches`). Every figure is computed by Postgres (counts, `percentile_cont`, minute buckets from
 * `generate_series`): no rows are loaded to be counted here. Deleted jobs count (their rows stay; the work was done).
 */
export class InsightsRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /**
   * The last `minutes` one-minute buckets up to now (the last one is the current minute). `byStatus`/`byTeam`: every
   * queued or running job plus those that ended inside the window; `series`: per minute the jobs that ended in it;
   * `batches`: the batch records started inside the window. One read-only transaction, so every figure has the same
   * `now()`.
   */
  public async stats(minutes: number): Promise<FleetStats> {
    const since = Prisma.sql`(date_trunc('minute', now()) - make_interval(mins => ${minutes - 1}))`;
    const [counts, series, batches, scalars] = await this.prisma.$transaction([
      this.prisma.$queryRaw<{ team_id: string; team_name: string; status: JobStatus; jobs: number }[]>`
        SELECT j.team_id::text AS team_id, t.name AS team_name, j.status::text AS status, count(*)::int AS jobs
        FROM jobs j JOIN teams t ON t.id = j.team_id
        WHERE j.status IN ('queued', 'running') OR (j.status IN ${terminal} AND j.finished_at >= ${since})
        GROUP BY j.team_id, t.name, j.status
        ORDER BY t.name, j.team_id`,
      this.prisma.$queryRaw<
        {
          t: Date;
          succeeded: number;
          failed: number;
          wait_p50: number | null;
          wait_p95: number | null;
          run_p50: number | null;
          run_p95: number | null;
        }[]
      >`
        WITH b AS (SELECT generate_series(${since}, date_trunc('minute', now()), interval '1 minute') AS t),
        ended AS (
          SELECT date_trunc('minute', finished_at) AS t, status,
                 EXTRACT(EPOCH FROM started_at - created_at) * 1000 AS wait_ms,
                 EXTRACT(EPOCH FROM finished_at - started_at) * 1000 AS run_ms
          FROM jobs WHERE status IN ${terminal} AND finished_at >= ${since}
        ),
        m AS (
          SELECT t, count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded, count(*) FILTER (WHERE status = 'failed')::int AS failed,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms) AS wait_p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) AS wait_p95,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY run_ms) AS run_p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY run_ms) AS run_p95
          FROM ended GROUP BY t
        )
        SELECT b.t, coalesce(m.succeeded, 0) AS succeeded, coalesce(m.failed, 0) AS failed,
               m.wait_p50::float8 AS wait_p50, m.wait_p95::float8 AS wait_p95, m.run_p50::float8 AS run_p50, m.run_p95::float8 AS run_p95
        FROM b LEFT JOIN m ON m.t = b.t ORDER BY b.t`,
      this.prisma.$queryRaw<
        {
          count: number;
          mean_size: number | null;
          max_size: number | null;
          step_p50: number | null;
          step_p95: number | null;
          positions: number | null;
          full_positions: number | null;
          max_cache_bytes: number | null;
        }[]
      >`
        SELECT count(*)::int AS count,
               (sum((stats->>'meanSize')::float8 * (stats->>'steps')::float8) / nullif(sum((stats->>'steps')::float8), 0))::float8 AS mean_size,
               max((stats->>'maxSize')::float8)::float8 AS max_size,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY (stats->'stepMs'->>'p50')::float8)::float8 AS step_p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY (stats->'stepMs'->>'p95')::float8)::float8 AS step_p95,
               sum((stats->>'positions')::float8)::float8 AS positions,
               sum((stats->>'fullPositions')::float8)::float8 AS full_positions,
               max((stats->>'maxCacheBytes')::float8)::float8 AS max_cache_bytes
        FROM batches WHERE created_at >= ${since} AND jsonb_typeof(stats) = 'object'`,
      this.prisma.$queryRaw<
        {
          now: Date;
          oldest_id: string | null;
          oldest_team: string | null;
          oldest_created: Date | null;
          oldest_age_s: number | null;
          failures: number;
          live: number;
          stale: number;
        }[]
      >`
        WITH oldest AS (SELECT id, team_id, created_at FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1),
        w AS (SELECT ${workerStaleSql('workers')} AS stale FROM workers)
        SELECT now() AS now,
               (SELECT id::text FROM oldest) AS oldest_id, (SELECT team_id::text FROM oldest) AS oldest_team,
               (SELECT created_at FROM oldest) AS oldest_created,
               (SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 FROM oldest) AS oldest_age_s,
               (SELECT count(*)::int FROM jobs WHERE status = 'failed' AND finished_at >= now() - interval '1 hour') AS failures,
               (SELECT count(*)::int FROM w WHERE NOT stale) AS live,
               (SELECT count(*)::int FROM w WHERE stale) AS stale`,
    ]);

    const byStatus = zeroCounts();
    const teams = new Map<string, { teamId: string; teamName: string; byStatus: StatusCounts }>();
    for (const r of counts) {
      byStatus[r.status] += r.jobs;
      const team = teams.get(r.team_id) ?? { teamId: r.team_id, teamName: r.team_name, byStatus: zeroCounts() };
      team.byStatus[r.status] += r.jobs;
      teams.set(r.team_id, team);
    }
    const b = batches[0]!;
    const s = scalars[0]!;
    const positions = num(b.positions);
    const fullPositions = num(b.full_positions);
    return {
      generatedAt: s.now,
      minutes,
      byStatus,
      byTeam: [...teams.values()],
      series: series.map((r) => ({
        t: r.t,
        succeeded: r.succeeded,
        failed: r.failed,
        waitP50Ms: nullable(r.wait_p50),
        waitP95Ms: nullable(r.wait_p95),
        runP50Ms: nullable(r.run_p50),
        runP95Ms: nullable(r.run_p95),
      })),
      batches: {
        count: b.count,
        meanSize: Math.round(num(b.mean_size) * 100) / 100,
        maxSize: num(b.max_size),
        stepP50Ms: nullable(b.step_p50) ?? 0,
        stepP95Ms: nullable(b.step_p95) ?? 0,
        cacheHitRatio: fullPositions > 0 ? Math.round((1 - positions / fullPositions) * 10000) / 10000 : 0,
        maxCacheBytes: num(b.max_cache_bytes),
        positions,
        fullPositions,
      },
      oldestWaiting:
        s.oldest_id === null
          ? null
          : { id: s.oldest_id, teamId: s.oldest_team!, createdAt: s.oldest_created!, ageS: Math.round(num(s.oldest_age_s) * 10) / 10 },
      failuresLastHour: s.failures,
      workers: { live: s.live, stale: s.stale },
      waitingNoWorker: byStatus.queued > 0 && s.live === 0,
    };
  }

  /**
   * Per day (UTC) and team, the jobs that ended that day, over the last `days` days (today included): how many, the
   * images they made (`resultKeys`: a job of n images made n; an answer none) and their run time (start → end).
   * Oldest day first, then team name; a day without jobs has no rows.
   */
  public async usage(days: number): Promise<UsageDay[]> {
    const rows = await this.prisma.$queryRaw<{ day: string; team_id: string; team_name: string; jobs: number; images: number; compute_s: number }[]>`
      SELECT to_char(date_trunc('day', j.finished_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, j.team_id::text AS team_id, t.name AS team_name,
             count(*)::int AS jobs,
             coalesce(sum(CASE WHEN j.status = 'succeeded' THEN greatest(cardinality(j.result_keys), (j.result_key IS NOT NULL)::int) ELSE 0 END), 0)::int AS images,
             coalesce(sum(EXTRACT(EPOCH FROM j.finished_at - j.started_at)), 0)::float8 AS compute_s
      FROM jobs j JOIN teams t ON t.id = j.team_id
      WHERE j.status IN ${terminal}
        AND j.finished_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => ${days - 1})) AT TIME ZONE 'UTC'
      GROUP BY 1, j.team_id, t.name
      ORDER BY 1, t.name, j.team_id`;
    return rows.map((r) => ({
      day: r.day,
      teamId: r.team_id,
      teamName: r.team_name,
      jobs: r.jobs,
      images: r.images,
      computeSeconds: Math.round(r.compute_s * 1000) / 1000,
    }));
  }

  /** Batch records, newest first: `limit` of them started before `before` (the previous page's last start). */
  public async batches(limit: number, before?: Date): Promise<BatchPageItem[]> {
    const rows = await this.prisma.batch.findMany({
      where: before ? { createdAt: { lt: before } } : {},
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      select: { id: true, workerId: true, createdAt: true, finishedAt: true, jobIds: true, stats: true },
    });
    return rows.map((r) => ({ ...r, stats: (r.stats as BatchRecordStats | null) ?? null }));
  }
}

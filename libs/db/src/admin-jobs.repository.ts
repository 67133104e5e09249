import type { JobStatus, JobTask } from '@dimoo/contracts';
import { isUuid, type Job, type JobEvent, Prisma, type PrismaClient } from './prisma';

/** A page of every team's jobs (`list`): newest first, filtered. */
export interface AdminJobListQuery {
  limit: number;
  /** the previous page's last job id: the page after it (older) */
  after?: string;
  teamId?: string;
  status?: readonly JobStatus[];
  task?: readonly JobTask[];
  /** created at or after */
  since?: Date;
  /** created before */
  until?: Date;
  /** a job id or the start of one, as written (lower-case, dashes in place) */
  idPrefix?: string;
}

/** A job with its team's name. */
export type JobOfTeam = Job & { teamName: string };

const UUID_LOWEST = '00000000-0000-0000-0000-000000000000';
const UUID_HIGHEST = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/**
 * The ids that start with `prefix`, as a range (a uuid's text order is its byte order): the primary key's index finds
 * them, where `id::text LIKE 'prefix%'` would read every row.
 */
export function idPrefixRange(prefix: string): { gte: string; lte: string } {
  return { gte: prefix + UUID_LOWEST.slice(prefix.length), lte: prefix + UUID_HIGHEST.slice(prefix.length) };
}

const withTeam = { team: { select: { name: true } } } as const;
const ofTeam = ({ team, ...job }: Job & { team: { name: string } }): JobOfTeam => ({ ...job, teamName: team.name });

/**
 * Every team's jobs, for admins (never for team-facing reads: there, JobRepository scopes each read to a team). Deleted
 * jobs are left out here too: their rows are a record, their objects are gone.
 */
export class AdminJobRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /** A page, newest first (created_at, id descending); one more row than asked tells whether another page follows. */
  public async list(query: AdminJobListQuery): Promise<{ jobs: JobOfTeam[]; hasMore: boolean }> {
    const where: Prisma.JobWhereInput[] = [{ deletedAt: null }];
    if (query.after !== undefined) {
      const cursor = isUuid(query.after) ? await this.prisma.job.findUnique({ where: { id: query.after }, select: { createdAt: true, id: true } }) : null;
      if (!cursor) return { jobs: [], hasMore: false };
      where.push({ OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] });
    }
    if (query.teamId !== undefined) where.push({ teamId: query.teamId });
    if (query.status?.length) where.push({ status: { in: [...query.status] } });
    if (query.task?.length) where.push({ task: { in: [...query.task] } });
    if (query.since) where.push({ createdAt: { gte: query.since } });
    if (query.until) where.push({ createdAt: { lt: query.until } });
    if (query.idPrefix) where.push({ id: idPrefixRange(query.idPrefix) });
    const rows = await this.prisma.job.findMany({
      where: { AND: where },
      include: withTeam,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: query.limit + 1,
    });
    return { jobs: rows.slice(0, query.limit).map(ofTeam), hasMore: rows.length > query.limit };
  }

  /** The job whichever its team (not deleted), or null. */
  public async get(id: string): Promise<JobOfTeam | null> {
    if (!isUuid(id)) return null;
    const row = await this.prisma.job.findFirst({ where: { id, deletedAt: null }, include: withTeam });
    return row ? ofTeam(row) : null;
  }

  /** Every recorded event of the job, oldest first (a job's history is bounded by its steps: progress is coalesced). */
  public async history(id: string): Promise<JobEvent[]> {
    if (!isUuid(id)) return [];
    return this.prisma.jobEvent.findMany({ where: { jobId: id }, orderBy: { id: 'asc' } });
  }
}

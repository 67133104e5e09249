import type { JobStatus, JobTask } from '@dimoo/contracts';
import { EVERY_TEAM, JobRepository } from './job.repository';
import { isUuid, type Job, type JobEvent, type PrismaClient } from './prisma';

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

/**
 * Every team's jobs, for admins (never for team-facing reads: there, JobRepository scopes each read to a team). Deleted
 * jobs are left out here too: their rows are a record, their objects are gone.
 */
export class AdminJobRepository {
  private readonly jobs: JobRepository;

  public constructor(private readonly prisma: PrismaClient) {
    this.jobs = new JobRepository(prisma);
  }

  /** A page, newest first: `JobRepository.list` over every team (or the one asked for), with team names. */
  public async list(query: AdminJobListQuery): Promise<{ jobs: JobOfTeam[]; hasMore: boolean }> {
    const { jobs, hasMore } = await this.jobs.list(query.teamId ?? EVERY_TEAM, {
      limit: query.limit,
      ...(query.after !== undefined ? { after: query.after } : {}),
      ...(query.status ? { status: query.status } : {}),
      ...(query.task ? { task: query.task } : {}),
      ...(query.since ? { createdFrom: query.since } : {}),
      ...(query.until ? { createdBefore: query.until } : {}),
      ...(query.idPrefix ? { idPrefix: query.idPrefix } : {}),
    });
    return { jobs: await this.withTeamNames(jobs), hasMore };
  }

  /** The job whichever its team (not deleted), or null. */
  public async get(id: string): Promise<JobOfTeam | null> {
    const job = await this.jobs.get(id, EVERY_TEAM);
    return job ? ((await this.withTeamNames([job]))[0] ?? null) : null;
  }

  /** One read of the teams a page names (a job's team row is never deleted while the job exists: a foreign key). */
  private async withTeamNames(jobs: Job[]): Promise<JobOfTeam[]> {
    const teams = await this.prisma.team.findMany({ where: { id: { in: [...new Set(jobs.map((j) => j.teamId))] } }, select: { id: true, name: true } });
    const names = new Map(teams.map((t) => [t.id, t.name]));
    return jobs.map((job) => ({ ...job, teamName: names.get(job.teamId) ?? '' }));
  }

  /** Every recorded event of the job, oldest first (a job's history is bounded by its steps: progress is coalesced). */
  public async history(id: string): Promise<JobEvent[]> {
    if (!isUuid(id)) return [];
    return this.prisma.jobEvent.findMany({ where: { jobId: id }, orderBy: { id: 'asc' } });
  }
}

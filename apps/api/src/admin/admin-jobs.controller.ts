/**
 * Admin: jobs of every team — a filtered list, one job with its whole recorded history and where its time went, and a
 * retry of a job that ended without a result (a new job, enqueued as any submit). Reading, canceling, deleting and
 * downloading a job go through the team routes (/v1/jobs/:id…), which admin-scoped keys may use on any team's job.
 */
import { Body, Controller, Get, HttpCode, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { AdminJob, AdminJobDetail, AdminJobPage } from '@dimoo/contracts';
import { AdminJobDetailSchema, AdminJobPageSchema, AdminJobQuerySchema, AdminJobSchema } from '@dimoo/contracts';
import type { JobEvent, JobOfTeam } from '@dimoo/db';
import { AdminJobRepository, toView } from '@dimoo/db';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { AdminOnly, ApiKeyGuard, CurrentCaller } from '../auth/api-key.guard';
import { EXAMPLE_IDS } from '../common/examples';
import { ApiJson, ApiJsonBody, ApiPathParam, ApiProblems, ApiZodQuery, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
import { invalidRequest, notFound } from '../common/problem';
import { JobsService, zodIssues } from '../jobs/jobs.service';
import { ADMIN_JOB_DETAIL, ADMIN_JOB_PAGE, ADMIN_JOBS } from './examples';

const RetryBody = z.strictObject({});
const admin = { scope: 'admin' };
const jobId = () => ApiPathParam('id', 'the job id', EXAMPLE_IDS.job);
const jobNotFound = PROBLEMS.notFound(`job ${EXAMPLE_IDS.job}`);

/** A job as admins see it: the team view plus its team, the key that submitted it and what it retried. */
export const adminJobView = (job: JobOfTeam): AdminJob => ({
  ...toView(job),
  teamId: job.teamId,
  teamName: job.teamName,
  apiKeyId: job.apiKeyId,
  retryOf: job.retryOf,
});

const between = (from: Date | null, to: Date | null) => (from && to ? to.getTime() - from.getTime() : null);
const eventRecord = (e: JobEvent) => ({
  seq: Number(e.id),
  type: e.type as AdminJobDetail['events'][number]['type'],
  at: e.createdAt.toISOString(),
  data: (e.data as Record<string, unknown> | null) ?? null,
});

@ApiTags('admin')
@Authenticated()
@Controller('v1/admin/jobs')
@UseGuards(ApiKeyGuard)
@AdminOnly()
export class AdminJobsController {
  constructor(
    private readonly adminJobs: AdminJobRepository,
    private readonly jobs: JobsService,
  ) {}

  @Get()
  @ApiOperation({ summary: "Every team's jobs, newest first, filtered (team, task, status, time, id prefix), with cursor pagination" })
  @ApiZodQuery(AdminJobQuerySchema, {
    teamId: EXAMPLE_IDS.team,
    task: 't2i,i2i',
    status: 'failed,canceled',
    since: '2026-11-30T00:00:00Z',
    until: '2026-12-01T00:00:00Z',
    q: '0b6f3c5e',
    limit: 20,
    after: EXAMPLE_IDS.job,
  })
  @ApiJson(200, 'A page of jobs, newest first; `next` is the URL of the next page (null on the last)', ['AdminJobPage', AdminJobPageSchema], ADMIN_JOB_PAGE)
  @ApiProblems({ 400: [PROBLEMS.invalid('q', 'must be a job id or the start of one'), PROBLEMS.invalid('sort', 'is not a known field')] }, admin)
  async list(@Query() query: Record<string, unknown>): Promise<AdminJobPage> {
    const parsed = AdminJobQuerySchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const q = parsed.data;
    const { jobs, hasMore } = await this.adminJobs.list({
      limit: q.limit,
      ...(q.after ? { after: q.after } : {}),
      ...(q.teamId ? { teamId: q.teamId } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.task ? { task: q.task } : {}),
      ...(q.since ? { since: new Date(q.since) } : {}),
      ...(q.until ? { until: new Date(q.until) } : {}),
      ...(q.q ? { idPrefix: q.q } : {}),
    });
    const next = new URLSearchParams(Object.entries(q).map(([k, v]): [string, string] => [k, Array.isArray(v) ? v.join(',') : String(v)]));
    const last = jobs.at(-1);
    if (last) next.set('after', last.id);
    return { items: jobs.map(adminJobView), hasMore, next: hasMore ? `/v1/admin/jobs?${next.toString()}` : null };
  }

  @Get(':id')
  @ApiOperation({ summary: 'A job of any team with its recorded history (bookkeeping events included) and its wait, run and total times' })
  @jobId()
  @ApiJson(200, 'The job', ['AdminJobDetail', AdminJobDetailSchema], ADMIN_JOB_DETAIL)
  @ApiProblems({ 404: jobNotFound }, admin)
  async get(@Param('id') id: string): Promise<AdminJobDetail> {
    const job = await this.adminJobs.get(id);
    if (!job) throw notFound(`job ${id}`);
    const events = await this.adminJobs.history(job.id);
    const view = adminJobView(job);
    return {
      ...view,
      params: (job.params as Record<string, unknown> | null) ?? null,
      events: events.map(eventRecord),
      timings: {
        ...view.timings,
        waitMs: between(job.createdAt, job.startedAt),
        runMs: between(job.startedAt, job.finishedAt),
        totalMs: between(job.createdAt, job.finishedAt),
      },
    };
  }

  @Post(':id/retry')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Retry a failed, canceled or expired job: a new job of the same team, same request and seed, its inputs copied; audited job.retry',
    description:
      'The new job is admitted and enqueued as any submit (the team’s quotas apply: 429), has no deadline, and keeps the original’s webhook. ' +
      '`retryOf` is the original’s id; Location is the new job.',
  })
  @jobId()
  @ApiJsonBody('RetryJob', RetryBody, { empty: { summary: 'No options', value: {} } }, false)
  @ApiJson(202, 'The new job, queued', ['AdminJob', AdminJobSchema], ADMIN_JOBS.retried, {
    Location: { description: 'the new job: /v1/jobs/{id}', schema: { type: 'string' } },
  })
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('seed', 'is not a known field'), ...BODY_PROBLEMS[400]],
      404: jobNotFound,
      409: PROBLEMS.of(409, 'not-retryable', 'Not retryable', `job ${EXAMPLE_IDS.job} is succeeded: only a failed, canceled or expired job can be retried`),
      429: PROBLEMS.of(429, 'team-queue-full', 'Too many jobs waiting', 'your team has 500 jobs waiting, its limit; retry when some have started'),
      503: [PROBLEMS.storageUnavailable, PROBLEMS.databaseUnavailable],
    },
    admin,
  )
  async retry(@CurrentCaller() caller: Caller, @Param('id') id: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response): Promise<AdminJob> {
    const parsed = RetryBody.safeParse(body ?? {});
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const original = await this.adminJobs.get(id);
    if (!original) throw notFound(`job ${id}`);
    const job = await this.jobs.retry(caller, original);
    res.setHeader('Location', `/v1/jobs/${job.id}`);
    return adminJobView({ ...job, teamName: original.teamName });
  }
}

/**
 * Admin: what the fleet is doing — the worker registry, the recent figures (jobs by status and team, a per-minute
 * series, batches, the oldest waiting job), the batch records and usage per team and day. Read models only: every
 * figure is computed by Postgres (`InsightsRepository`), the registry judged by `WorkerRegistry`.
 */
import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AdminStats, BatchList, Usage, WorkerList } from '@dimoo/contracts';
import {
  AdminStatsSchema,
  BATCH_LIST_LIMITS,
  BatchListQuerySchema,
  BatchListSchema,
  STATS_MINUTES,
  StatsQuerySchema,
  USAGE_DAYS,
  UsageQuerySchema,
  UsageSchema,
  WorkerListSchema,
} from '@dimoo/contracts';
import { InsightsRepository } from '@dimoo/db';
import { z } from 'zod';
import { ApiJson, ApiProblems, ApiZodQuery, Authenticated, PROBLEMS } from '../common/openapi';
import { invalidRequest } from '../common/problem';
import { zodIssues } from '../jobs/jobs.service';
import { AdminOnly, ApiKeyGuard } from '../auth/api-key.guard';
import { BATCHES, STATS, USAGE, WORKERS } from './insights.examples';
import { WorkerRegistry } from './worker-registry';

const admin = { scope: 'admin' };
/** `GET /v1/admin/workers` takes no parameter: any is refused, as everywhere */
const NoQuery = z.strictObject({});

/** The query, or 400 naming each refused parameter (unknown ones included). */
function queryOf<S extends z.ZodType>(schema: S, query: unknown): z.infer<S> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
  return parsed.data;
}

@ApiTags('admin')
@Authenticated()
@AdminOnly()
@Controller('v1/admin')
@UseGuards(ApiKeyGuard)
export class InsightsController {
  constructor(
    private readonly insights: InsightsRepository,
    private readonly registry: WorkerRegistry,
  ) {}

  @Get('workers')
  @ApiOperation({ summary: 'The registered workers: model, slots, running jobs, counts, last error; stale ones and model mismatches flagged' })
  @ApiJson(
    200,
    'Every registered worker, by id (a worker that shut down gracefully has left; a crashed one stays, stale)',
    ['WorkerList', WorkerListSchema],
    WORKERS,
  )
  @ApiProblems({ 400: PROBLEMS.invalid('stale', 'is not a known field') }, admin)
  async workers(@Query() query: Record<string, unknown>): Promise<WorkerList> {
    queryOf(NoQuery, query);
    return { items: await this.registry.list() };
  }

  @Get('stats')
  @ApiOperation({
    summary: 'The last minutes: jobs by status and team, a per-minute series (ends, wait and run percentiles), batches, the oldest waiting job, workers',
  })
  @ApiZodQuery(StatsQuerySchema, { minutes: STATS_MINUTES.default })
  @ApiJson(200, 'The figures of the window, as Postgres computed them', ['AdminStats', AdminStatsSchema], STATS)
  @ApiProblems({ 400: PROBLEMS.invalid('minutes', `Too big: expected number to be <=${STATS_MINUTES.max}`) }, admin)
  async stats(@Query() query: Record<string, unknown>): Promise<AdminStats> {
    const { minutes } = queryOf(StatsQuerySchema, query);
    const s = await this.insights.stats(minutes);
    return {
      ...s,
      generatedAt: s.generatedAt.toISOString(),
      series: s.series.map((p) => ({ ...p, t: p.t.toISOString() })),
      oldestWaiting: s.oldestWaiting && { ...s.oldestWaiting, createdAt: s.oldestWaiting.createdAt.toISOString() },
    };
  }

  @Get('batches')
  @ApiOperation({ summary: 'Batch records, newest first: which jobs ran together, batch size over time, step times, ML-Cache saving' })
  @ApiZodQuery(BatchListQuerySchema, { limit: BATCH_LIST_LIMITS.default, before: '2026-11-30T10:00:00.000Z' })
  @ApiJson(200, 'A page of batch records, newest first (the next page: before = the last startedAt)', ['BatchList', BatchListSchema], BATCHES)
  @ApiProblems({ 400: PROBLEMS.invalid('before', 'Invalid ISO datetime') }, admin)
  async batches(@Query() query: Record<string, unknown>): Promise<BatchList> {
    const { limit, before } = queryOf(BatchListQuerySchema, query);
    const items = await this.insights.batches(limit, before === undefined ? undefined : new Date(before));
    return {
      items: items.map((b) => ({
        id: b.id,
        workerId: b.workerId,
        startedAt: b.createdAt.toISOString(),
        finishedAt: b.finishedAt?.toISOString() ?? null,
        jobIds: b.jobIds,
        stats: b.stats,
      })),
    };
  }

  @Get('usage')
  @ApiOperation({ summary: 'Usage per day (UTC) and team: jobs that ended, images made, run time' })
  @ApiZodQuery(UsageQuerySchema, { days: USAGE_DAYS.default })
  @ApiJson(200, 'One row per day and team that had jobs end, oldest day first', ['Usage', UsageSchema], USAGE)
  @ApiProblems({ 400: PROBLEMS.invalid('days', 'Too small: expected number to be >=1') }, admin)
  async usage(@Query() query: Record<string, unknown>): Promise<Usage> {
    const { days } = queryOf(UsageQuerySchema, query);
    return { items: await this.insights.usage(days) };
  }
}

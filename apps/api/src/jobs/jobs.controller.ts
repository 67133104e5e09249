import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Logger, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOperation, ApiProduces, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { JobEvent } from '@dimoo/db';
import type { JobList, JobView } from '@dimoo/contracts';
import { isTerminalStreamEvent, JobListQuerySchema, JobListSchema, JobRequestSchema, JobViewSchema, TERMINAL_STATUSES } from '@dimoo/contracts';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, CurrentCaller, RequireScope } from '../auth/api-key.guard';
import { idempotencyKey, preferWait } from '../common/prefer';
import { invalidRequest } from '../common/problem';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';
import { JobEventsHub } from './job-events.service';
import { toStreamEvent, toView } from './job-view';
import { JobsService, zodIssues } from './jobs.service';

const ResultQuerySchema = z.strictObject({ stream: z.stringbool().optional() });

@ApiTags('jobs')
@ApiHeader({ name: 'Authorization', description: 'Bearer <API key>' })
@Controller('v1/jobs')
@UseGuards(ApiKeyGuard)
@RequireScope('read')
export class JobsController {
  private readonly logger = new Logger(JobsController.name);
  constructor(
    private readonly jobs: JobsService,
    private readonly hub: JobEventsHub,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  @Post()
  @HttpCode(202)
  @RequireScope('submit')
  @ApiOperation({
    summary: 'Submit a job; 202 with its id and a Location to poll',
    description:
      'With `Prefer: wait=N` (N ≤ 60 s) the answer waits for the job: 200 with the finished job, or 202 after N seconds. ' +
      'With `Idempotency-Key`, a retry with the same key and body answers the first job (200, `Idempotent-Replayed: true`); ' +
      'the same key with another body is 422; while the first request is in progress, 409. Keys are kept 24 h.',
  })
  @ApiHeader({ name: 'Prefer', required: false, description: 'wait=N: hold the answer up to N seconds for the job to finish' })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'a unique key per request (1–255 visible ASCII characters)' })
  @ApiBody({ schema: z.toJSONSchema(JobRequestSchema, { io: 'input', unrepresentable: 'any' }) as object })
  @ApiResponse({ status: 202, description: 'accepted', schema: z.toJSONSchema(JobViewSchema) as object })
  async submit(
    @CurrentCaller() caller: Caller,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Headers('idempotency-key') keyHeader: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JobView> {
    const wait = preferWait(prefer);
    const { view, headers, replayed } = await this.jobs.submit(caller, body, idempotencyKey(keyHeader));
    res.setHeader('Location', `/v1/jobs/${view.id}`);
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    if (replayed) res.status(200);
    if (wait === null) return view;
    res.setHeader('Preference-Applied', `wait=${wait}`);
    const settled = toView(await this.jobs.settle(caller, view.id, wait * 1000));
    if ((TERMINAL_STATUSES as readonly string[]).includes(settled.status)) res.status(200);
    return settled;
  }

  @Get()
  @ApiOperation({ summary: "The team's jobs, newest first, with cursor pagination (limit, after) and filters" })
  @ApiQuery({ name: 'query', required: false, schema: z.toJSONSchema(JobListQuerySchema, { io: 'input', unrepresentable: 'any' }) as object })
  @ApiResponse({ status: 200, schema: z.toJSONSchema(JobListSchema) as object })
  async list(@CurrentCaller() caller: Caller, @Query() query: Record<string, unknown>): Promise<JobList> {
    return this.jobs.list(caller, query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Status, progress, timings and result link of a job; `Prefer: wait=N` waits up to N s for it to finish' })
  @ApiHeader({ name: 'Prefer', required: false, description: 'wait=N: hold the answer up to N seconds for the job to finish' })
  async get(
    @CurrentCaller() caller: Caller,
    @Param('id') id: string,
    @Headers('prefer') prefer: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JobView> {
    const wait = preferWait(prefer);
    if (wait === null) return toView(await this.jobs.get(caller, id));
    res.setHeader('Preference-Applied', `wait=${wait}`);
    return toView(await this.jobs.settle(caller, id, wait * 1000));
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScope('submit')
  @ApiOperation({ summary: 'Delete a finished job: its images are removed, reads answer 404; a queued or running job is 409 (cancel it first)' })
  async remove(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<void> {
    await this.jobs.remove(caller, id);
  }

  @Get(':id/result')
  @ApiOperation({
    summary: 'The result: 303 to a presigned URL of the image (in the job outputFormat), or the answer text (understanding)',
    description:
      'Image results are not carried by the API: the 303 points at the object store, valid RESULT_URL_TTL_SECONDS (follow it ' +
      'without the Authorization header). `?stream=true` sends the image through the API instead. Removed by retention: 410.',
  })
  @ApiQuery({ name: 'stream', required: false, schema: { type: 'boolean' } })
  @ApiResponse({ status: 303, description: 'Location: a presigned URL of the image' })
  async result(@CurrentCaller() caller: Caller, @Param('id') id: string, @Query() query: Record<string, unknown>, @Res() res: Response): Promise<void> {
    const parsed = ResultQuerySchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const r = await this.jobs.result(caller, id, parsed.data.stream ?? false);
    if ('redirect' in r) {
      res.status(303).setHeader('Cache-Control', 'private, no-store').location(r.redirect).end();
      return;
    }
    res.status(200).type(r.contentType).send(r.body);
  }

  @Get(':id/previews/:step')
  @ApiOperation({ summary: 'A preview PNG of a running job (announced by a preview event)' })
  @ApiProduces('image/png')
  async preview(@CurrentCaller() caller: Caller, @Param('id') id: string, @Param('step') step: string, @Res() res: Response): Promise<void> {
    const png = await this.jobs.preview(caller, id, step);
    res.status(200).type('image/png').setHeader('Cache-Control', 'private, max-age=3600, immutable').send(png);
  }

  /**
   * Server-sent events: the job's history after `Last-Event-ID` (header, or `lastEventId` query for EventSource's
   * first connection), then live events until completed, failed or canceled.
   */
  @Get(':id/events')
  @ApiOperation({ summary: 'Event stream (SSE): queued, started, progress, preview, completed, failed, canceled; Last-Event-ID replay' })
  @ApiProduces('text/event-stream')
  async events(
    @CurrentCaller() caller: Caller,
    @Param('id') id: string,
    @Headers('last-event-id') lastEventHeader: string | undefined,
    @Query('lastEventId') lastEventQuery: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    await this.jobs.get(caller, id);
    const raw = lastEventHeader ?? lastEventQuery ?? '0';
    if (!/^\d{1,18}$/.test(raw)) {
      throw invalidRequest([{ field: lastEventHeader !== undefined ? 'Last-Event-ID' : 'lastEventId', reason: 'must be an event id' }]);
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');

    let lastSent = BigInt(raw);
    let ended = false;
    let replaying = true;
    const buffered: JobEvent[] = [];
    const send = (events: JobEvent[]) => {
      for (const e of events) {
        if (ended || e.id <= lastSent) continue;
        lastSent = e.id;
        const m = toStreamEvent(e);
        if (!m) continue;
        res.write(`id: ${e.id}\nevent: ${m.event}\ndata: ${JSON.stringify(m.data)}\n\n`);
        if (isTerminalStreamEvent(m.event)) end();
      }
    };
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), this.env.EVENTS_HEARTBEAT_MS);
    let unsubscribe = () => {};
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      unsubscribe();
      res.end();
    };
    req.on('close', end);
    try {
      // follow first, then replay: nothing committed in between is missed, and ids already sent are skipped
      unsubscribe = await this.hub.subscribe(id, (events) => (replaying ? buffered.push(...events) : send(events)), end);
      for (;;) {
        const page = await this.jobs.events(caller, id, lastSent);
        send(page);
        if (ended || page.length < 500) break;
      }
      replaying = false;
      send(buffered.splice(0));
      if (ended) unsubscribe();
    } catch (err) {
      // headers are out: close the stream; the client reconnects with Last-Event-ID
      this.logger.warn(`event stream of ${id}: ${String(err)}`);
      end();
    }
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @RequireScope('submit')
  @ApiOperation({ summary: 'Cancel: a queued job never starts; a running one leaves its batch at the next step' })
  async cancel(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<JobView> {
    return toView(await this.jobs.cancel(caller, id));
  }
}

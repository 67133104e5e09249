import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Logger,
  Param,
  Post,
  Query,
  Req,
  Res,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { AnyFilesInterceptor } from '@nestjs/platform-express';
import { memoryStorage } from 'multer';
import { ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { JobEvent } from '@dimoo/db';
import { toStreamEvent, toView } from '@dimoo/db';
import type { JobList, JobView } from '@dimoo/contracts';
import {
  isTerminalStreamEvent,
  JobListQuerySchema,
  JobListSchema,
  JobRequestSchema,
  JobStreamEventSchema,
  JobViewSchema,
  MAX_IMAGE_BYTES,
  MAX_IMAGES_PER_JOB,
  isTerminalStatus,
  SUBMIT_AS_HEADER,
} from '@dimoo/contracts';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, CurrentCaller, RequireScope } from '../auth/api-key.guard';
import { idempotencyKey, preferWait } from '../common/prefer';
import { EVENT_STREAM, EXAMPLE_IDS, JOB_LIST, JOB_REQUEST_EXAMPLES, JOB_VIEWS, MULTIPART_SUBMIT } from '../common/examples';
import {
  ApiAlsoConsumes,
  ApiJson,
  ApiJsonBody,
  ApiPathParam,
  ApiPreferWait,
  ApiProblems,
  ApiRequestHeader,
  ApiSubmitAs,
  ApiZodQuery,
  Authenticated,
  BODY_PROBLEMS,
  examplesOf,
  PROBLEMS,
  schemaRef,
} from '../common/openapi';
import { invalidRequest } from '../common/problem';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';
import { JobEventsHub } from './job-events.service';
import { JobsService, zodIssues } from './jobs.service';

const ResultQuerySchema = z.strictObject({
  stream: z.stringbool().optional().describe('true: the image through the API (200) instead of a 303'),
  index: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_IMAGES_PER_JOB - 1)
    .optional()
    .describe('which image of a job that made several (n), from 0'),
});

const jobId = () => ApiPathParam('id', 'the job id', EXAMPLE_IDS.job);
const jobView = ['JobView', JobViewSchema] as [string, z.ZodType];
const jobNotFound = PROBLEMS.notFound(`job ${EXAMPLE_IDS.job}`);
const binary = { schema: { type: 'string', format: 'binary' } };

@ApiTags('jobs')
@Authenticated()
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
  @ApiPreferWait()
  @ApiRequestHeader('Idempotency-Key', 'a unique key per request (1–255 visible ASCII characters); a retry with it answers the first job', 'order-42-render-1')
  @ApiSubmitAs()
  @ApiJsonBody('JobRequest', JobRequestSchema, JOB_REQUEST_EXAMPLES)
  @ApiAlsoConsumes({ 'multipart/form-data': MULTIPART_SUBMIT })
  @ApiJson(202, 'Accepted: the job is queued; follow its Location, its events or its webhook', jobView, JOB_VIEWS.queued, {
    Location: { description: 'the job: /v1/jobs/{id}', schema: { type: 'string' } },
    RateLimit: { description: 'with a team submission limit: what is left of it', schema: { type: 'string' } },
    'RateLimit-Policy': { description: 'with a team submission limit: the limit', schema: { type: 'string' } },
  })
  @ApiJson(
    200,
    'The job finished within `Prefer: wait`, or the replay of an earlier request with the same Idempotency-Key',
    jobView,
    examplesOf({
      finished: { summary: 'Finished within Prefer: wait', value: JOB_VIEWS.succeeded },
      replayed: { summary: 'Idempotency-Key replay', value: JOB_VIEWS.running },
    }),
    {
      'Idempotent-Replayed': { description: '`true` on a replay', schema: { type: 'string' } },
      'Preference-Applied': { description: 'the wait applied (`wait=N`)', schema: { type: 'string' } },
    },
  )
  @ApiProblems(
    {
      400: [
        PROBLEMS.invalid('prompt', 'must not be empty'),
        PROBLEMS.invalid('images.0', 'image is 4000×3000; the model takes 128×128 to 1024×1024'),
        ...BODY_PROBLEMS[400],
      ],
      403: [PROBLEMS.noTeam, PROBLEMS.submitAsForbidden],
      404: PROBLEMS.notFound(`team ${EXAMPLE_IDS.team}`),
      409: PROBLEMS.of(409, 'idempotency-in-progress', 'Request in progress', 'a request with this Idempotency-Key is still being processed; retry shortly', [
        { field: 'Idempotency-Key', reason: 'a request with it is in progress' },
      ]),
      413: BODY_PROBLEMS[413],
      422: PROBLEMS.of(
        422,
        'idempotency-key-reused',
        'Idempotency-Key reused',
        'this Idempotency-Key was sent with another request body; use a new key for a new request',
        [{ field: 'Idempotency-Key', reason: 'already used for another request' }],
      ),
      429: [
        PROBLEMS.of(429, 'rate-limited', 'Too many submissions', 'your team may submit 120 jobs per minute'),
        PROBLEMS.of(429, 'team-queue-full', 'Too many jobs waiting', 'your team has 500 jobs waiting, its limit; retry when some have started'),
      ],
      503: [
        PROBLEMS.of(503, 'queue-full', 'Queue full', 'the service has too many jobs waiting; retry later'),
        PROBLEMS.storageUnavailable,
        PROBLEMS.databaseUnavailable,
      ],
    },
    { scope: 'submit' },
  )
  // multipart: the JSON request in a `request` field, each image a part named after its field (image, mask, images.0,
  // images.1), held in memory up to the image limit (multer); a JSON body passes through untouched
  @UseInterceptors(
    AnyFilesInterceptor({ storage: memoryStorage(), limits: { fileSize: MAX_IMAGE_BYTES, files: 3, fields: 1, fieldSize: 1024 * 1024, parts: 4 } }),
  )
  async submit(
    @CurrentCaller() caller: Caller,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Headers('idempotency-key') keyHeader: string | undefined,
    @Headers(SUBMIT_AS_HEADER) asTeam: string | undefined,
    @Req() req: Request,
    @UploadedFiles() files: Express.Multer.File[] | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JobView> {
    const wait = preferWait(prefer);
    const parts = req.is('multipart/form-data') ? (files ?? []).map((f) => ({ fieldname: f.fieldname, buffer: f.buffer })) : undefined;
    const { view, headers, replayed } = await this.jobs.submit(caller, body, idempotencyKey(keyHeader), parts, asTeam);
    res.setHeader('Location', `/v1/jobs/${view.id}`);
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    if (replayed) res.status(200);
    if (wait === null) return view;
    res.setHeader('Preference-Applied', `wait=${wait}`);
    const settled = toView(await this.jobs.settle(caller, view.id, wait * 1000));
    if (isTerminalStatus(settled.status)) res.status(200);
    return settled;
  }

  @Get()
  @ApiOperation({ summary: "The team's jobs, newest first, with cursor pagination (limit, after) and filters" })
  @ApiZodQuery(JobListQuerySchema, {
    limit: 20,
    after: EXAMPLE_IDS.job,
    status: 'queued,running',
    task: 't2i,i2i',
    createdFrom: '2026-11-30T00:00:00Z',
    createdBefore: '2026-12-01T00:00:00Z',
  })
  @ApiJson(200, 'A page of jobs, newest first; `next` is the URL of the next page (null on the last)', ['JobList', JobListSchema], JOB_LIST)
  @ApiProblems(
    { 400: PROBLEMS.invalid('status', 'must be one or more of queued, running, succeeded, failed, canceled, expired, comma-separated'), 403: PROBLEMS.noTeam },
    { scope: 'read' },
  )
  async list(@CurrentCaller() caller: Caller, @Query() query: Record<string, unknown>): Promise<JobList> {
    return this.jobs.list(caller, query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Status, progress, timings and result link of a job; `Prefer: wait=N` waits up to N s for it to finish' })
  @jobId()
  @ApiPreferWait()
  @ApiJson(
    200,
    'The job (with `Prefer: wait`: once finished, or as it is when the wait ends; `Preference-Applied` says the wait applied)',
    jobView,
    examplesOf({
      running: { summary: 'Running', value: JOB_VIEWS.running },
      succeeded: { summary: 'An image result', value: JOB_VIEWS.succeeded },
      answered: { summary: 'An answer (mmu)', value: JOB_VIEWS.answered },
    }),
  )
  @ApiProblems({ 400: PROBLEMS.invalid('Prefer', 'wait must be a whole number of seconds'), 403: PROBLEMS.noTeam, 404: jobNotFound }, { scope: 'read' })
  async get(
    @CurrentCaller() caller: Caller,
    @Param('id') id: string,
    @Headers('prefer') prefer: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JobView> {
    const wait = preferWait(prefer);
    if (wait === null) return this.jobs.view(caller, id);
    res.setHeader('Preference-Applied', `wait=${wait}`);
    return toView(await this.jobs.settle(caller, id, wait * 1000));
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScope('submit')
  @ApiOperation({ summary: 'Delete a finished job: its images are removed, reads answer 404; a queued or running job is 409 (cancel it first)' })
  @jobId()
  @ApiResponse({ status: 204, description: 'Deleted' })
  @ApiProblems(
    { 403: PROBLEMS.noTeam, 404: jobNotFound, 409: PROBLEMS.conflict(`job ${EXAMPLE_IDS.job} is running: delete does not apply`) },
    { scope: 'submit' },
  )
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
  @jobId()
  @ApiZodQuery(ResultQuerySchema, { stream: 'true' })
  @ApiResponse({
    status: 303,
    description: 'An image: Location is a presigned URL of it on the object store (follow it without the Authorization header)',
    headers: { Location: { description: 'the presigned URL', schema: { type: 'string', format: 'uri' } } },
  })
  @ApiResponse({
    status: 200,
    description: 'An answer (mmu) as text; with `?stream=true`, the image itself',
    content: {
      'text/plain': { schema: { type: 'string' }, example: 'The shape is red.' },
      'image/png': binary,
      'image/webp': binary,
      'image/jpeg': binary,
    },
  })
  @ApiProblems(
    {
      400: PROBLEMS.invalid('stream', 'Invalid input: expected a boolean string'),
      403: PROBLEMS.noTeam,
      404: jobNotFound,
      409: PROBLEMS.of(409, 'not-ready', 'Result not ready', `job ${EXAMPLE_IDS.job} is running`),
      410: PROBLEMS.of(410, 'result-expired', 'Result expired', `the images of job ${EXAMPLE_IDS.job} were removed on 2026-12-30T10:00:02.480Z (retention)`),
      503: [PROBLEMS.storageUnavailable, PROBLEMS.databaseUnavailable],
    },
    { scope: 'read' },
  )
  async result(@CurrentCaller() caller: Caller, @Param('id') id: string, @Query() query: Record<string, unknown>, @Res() res: Response): Promise<void> {
    const parsed = ResultQuerySchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const r = await this.jobs.result(caller, id, parsed.data.stream ?? false, parsed.data.index ?? 0);
    if ('redirect' in r) {
      res.status(303).setHeader('Cache-Control', 'private, no-store').location(r.redirect).end();
      return;
    }
    res.status(200).type(r.contentType).send(r.body);
  }

  @Get(':id/previews/:step')
  @ApiOperation({ summary: 'A preview PNG of a running job (announced by a preview event)' })
  @jobId()
  @ApiPathParam('step', 'the step of the preview (a preview event’s step)', 8, { type: 'integer', minimum: 0 })
  @ApiResponse({ status: 200, description: 'The preview image', content: { 'image/png': binary } })
  @ApiProblems(
    {
      400: PROBLEMS.invalid('step', 'must be a step number'),
      403: PROBLEMS.noTeam,
      404: PROBLEMS.notFound(`preview 8 of job ${EXAMPLE_IDS.job}`),
      503: [PROBLEMS.storageUnavailable, PROBLEMS.databaseUnavailable],
    },
    { scope: 'read' },
  )
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
  @jobId()
  @ApiRequestHeader('Last-Event-ID', 'resume after this event id (what the last message’s `id:` said)', '104')
  @ApiQuery({
    name: 'lastEventId',
    required: false,
    schema: { type: 'string', pattern: '^\\d{1,18}$', examples: ['104'] },
    description: 'the same, for EventSource’s first connection (it cannot set headers)',
  })
  @ApiResponse({
    status: 200,
    description:
      'Server-sent events, each `id:`, `event:` and `data:` (JSON): one JobStreamEvent (see the schema of that name). History after ' +
      'Last-Event-ID first, then live events; the stream ends after completed, failed, canceled or expired.',
    content: {
      'text/event-stream': {
        schema: { type: 'string', description: `messages: ${schemaRef('JobStreamEvent', JobStreamEventSchema).$ref}` },
        example: EVENT_STREAM,
      },
    },
  })
  @ApiProblems({ 400: PROBLEMS.invalid('Last-Event-ID', 'must be an event id'), 403: PROBLEMS.noTeam, 404: jobNotFound }, { scope: 'read' })
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
      // a finished job whose terminal event the client already had (it reconnected after it): nothing more will come
      if (!ended && isTerminalStatus((await this.jobs.get(caller, id)).status)) {
        send(await this.jobs.events(caller, id, lastSent));
        end();
      }
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
  @jobId()
  @ApiJson(202, 'Canceled (a running job: the cancel is requested, the job leaves its batch at the next step)', jobView, JOB_VIEWS.canceled)
  @ApiProblems(
    { 403: PROBLEMS.noTeam, 404: jobNotFound, 409: PROBLEMS.conflict(`job ${EXAMPLE_IDS.job} is succeeded: cancel does not apply`) },
    { scope: 'submit' },
  )
  async cancel(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<JobView> {
    return toView(await this.jobs.cancel(caller, id));
  }
}

/**
 * Admin: the BullMQ queues the API feeds (the generation queue) — their counts, pausing and resuming them (workers
 * take no new job while paused; running ones finish), and a one-time link to the read-only queue board (board.ts).
 */
import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, UseGuards } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Queue } from 'bullmq';
import type { QueueItem } from '@dimoo/contracts';
import { BoardSessionSchema, QueueItemSchema, QueueListSchema } from '@dimoo/contracts';
import { ApiKeyRepository } from '@dimoo/db';
import { QUEUE_NAMES } from '@dimoo/queue';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { AdminOnly, ApiKeyGuard, auditActor, CurrentCaller } from '../auth/api-key.guard';
import { ApiJson, ApiJsonBody, ApiPathParam, ApiProblems, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
import { invalidRequest, notFound, ProblemError, RETRY_AFTER_SECONDS } from '../common/problem';
import { zodIssues } from '../jobs/jobs.service';
import { BoardSessions } from './board';
import { QUEUE, QUEUES } from './examples';

const NoOptions = z.strictObject({});
const noOptions = { empty: { summary: 'No options', value: {} } };
const admin = { scope: 'admin' };

const queueUnavailable = () =>
  new ProblemError(
    HttpStatus.SERVICE_UNAVAILABLE,
    'queue-unavailable',
    'Queue unavailable',
    'Redis cannot be reached now; retry later',
    undefined,
    RETRY_AFTER_SECONDS,
  );
const queueName = () => ApiPathParam('name', 'the queue name (GET /v1/admin/queues)', QUEUE_NAMES.generation, { type: 'string' });
const queueNotFound = PROBLEMS.notFound('queue dimoo-other');

/** A body-less POST may send nothing or `{}`; anything else is refused by name. */
function noBody(body: unknown): void {
  const parsed = NoOptions.safeParse(body ?? {});
  if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
}

@ApiTags('admin')
@Authenticated()
@Controller('v1/admin')
@UseGuards(ApiKeyGuard)
@AdminOnly()
export class QueuesController {
  private readonly queues: ReadonlyMap<string, Queue>;

  constructor(
    @InjectQueue(QUEUE_NAMES.generation) generation: Queue,
    private readonly keys: ApiKeyRepository,
    private readonly board: BoardSessions,
  ) {
    this.queues = new Map([[generation.name, generation]]);
  }

  @Get('queues')
  @ApiOperation({ summary: 'The queues: paused or not, and their jobs by state (jobs wait in the fair queue before they enter BullMQ)' })
  @ApiJson(200, 'The queues', ['QueueList', QueueListSchema], QUEUES)
  @ApiProblems({ 503: queueUnavailable() }, admin)
  async list(): Promise<{ items: QueueItem[] }> {
    return { items: await Promise.all([...this.queues.values()].map((q) => this.item(q))) };
  }

  @Post('queues/:name/pause')
  @HttpCode(200)
  @ApiOperation({ summary: 'Pause a queue: workers take no new job (running ones finish); audited queue.pause' })
  @queueName()
  @ApiJsonBody('NoOptions', NoOptions, noOptions, false)
  @ApiJson(200, 'The queue, paused', ['QueueItem', QueueItemSchema], { ...QUEUE, paused: true })
  @ApiProblems({ 400: [PROBLEMS.invalid('force', 'is not a known field'), ...BODY_PROBLEMS[400]], 404: queueNotFound, 503: queueUnavailable() }, admin)
  async pause(@CurrentCaller() caller: Caller, @Param('name') name: string, @Body() body: unknown): Promise<QueueItem> {
    return this.setPaused(caller, name, body, true);
  }

  @Post('queues/:name/resume')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume a paused queue; audited queue.resume' })
  @queueName()
  @ApiJsonBody('NoOptions', NoOptions, noOptions, false)
  @ApiJson(200, 'The queue, running', ['QueueItem', QueueItemSchema], QUEUE)
  @ApiProblems({ 400: [PROBLEMS.invalid('force', 'is not a known field'), ...BODY_PROBLEMS[400]], 404: queueNotFound, 503: queueUnavailable() }, admin)
  async resume(@CurrentCaller() caller: Caller, @Param('name') name: string, @Body() body: unknown): Promise<QueueItem> {
    return this.setPaused(caller, name, body, false);
  }

  @Post('board-session')
  @HttpCode(201)
  @ApiOperation({
    summary: 'A one-time URL (60 s) that opens the read-only queue board (bull-board) in a browser',
    description:
      'Opening it sets an HttpOnly, SameSite=Strict cookie for /admin/queues/board (one hour, ended early when the key that asked is revoked) and redirects to the board. ' +
      'The board also takes an admin key in the Authorization header.',
  })
  @ApiJsonBody('NoOptions', NoOptions, noOptions, false)
  @ApiJson(201, 'The URL, relative to the API', ['BoardSession', BoardSessionSchema], {
    url: '/admin/queues/board/session?token=Vq3w0cX8b1T2yK9rZ4mN6pL5sA7dF0gH2jJ4kL6zX8c',
  })
  @ApiProblems({ 400: [PROBLEMS.invalid('ttl', 'is not a known field'), ...BODY_PROBLEMS[400]], 503: queueUnavailable() }, admin)
  async boardSession(@CurrentCaller() caller: Caller, @Body() body: unknown): Promise<{ url: string }> {
    noBody(body);
    return { url: await this.redis(() => this.board.open(caller.keyId)) };
  }

  private async setPaused(caller: Caller, name: string, body: unknown, paused: boolean): Promise<QueueItem> {
    noBody(body);
    const queue = this.queues.get(name);
    if (!queue) throw notFound(`queue ${name}`);
    await this.redis(() => (paused ? queue.pause() : queue.resume()));
    await this.keys.recordAudit(auditActor(caller), paused ? 'queue.pause' : 'queue.resume', 'queue', name);
    return this.item(queue);
  }

  private async item(queue: Queue): Promise<QueueItem> {
    return this.redis(async () => {
      const [paused, c] = await Promise.all([queue.isPaused(), queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed')]);
      const n = (state: string) => c[state] ?? 0;
      return {
        name: queue.name,
        paused,
        counts: {
          waiting: n('waiting'),
          prioritized: n('prioritized'),
          active: n('active'),
          delayed: n('delayed'),
          completed: n('completed'),
          failed: n('failed'),
        },
      };
    });
  }

  /** A Redis call; Redis down is a 503 (with Retry-After), not a 500. */
  private async redis<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof ProblemError) throw err;
      throw queueUnavailable();
    }
  }
}

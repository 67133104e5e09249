import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { Response } from 'express';
import { PrismaClient } from '@dimoo/db';
import { QUEUE_NAMES } from '@dimoo/queue';
import { ObjectStore } from '@dimoo/storage';
import { z } from 'zod';
import { ApiJson, examplesOf } from '../common/openapi';

const HealthSchema = z.object({ status: z.literal('ok') });
const ReadinessSchema = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.record(z.string(), z.string()).describe('redis, postgres, storage: `up` or `down: <why>`'),
});

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms))]);

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly store: ObjectStore,
    @InjectQueue(QUEUE_NAMES.generation) private readonly queue: Queue,
  ) {}

  /** The process is alive. */
  @Get('healthz')
  @ApiOperation({ summary: 'Liveness: the process answers (no dependency is checked)' })
  @ApiJson(200, 'Alive', ['Health', HealthSchema], { status: 'ok' })
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Redis, Postgres and object storage all answer. */
  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: Redis, Postgres and object storage all answer within a second' })
  @ApiJson(200, 'Ready', ['Readiness', ReadinessSchema], { status: 'ready', checks: { redis: 'up', postgres: 'up', storage: 'up' } })
  @ApiJson(
    503,
    'Not ready: a dependency does not answer',
    ['Readiness', ReadinessSchema],
    examplesOf({
      redisDown: {
        summary: 'Redis down',
        value: { status: 'not ready', checks: { redis: 'down: Error: no answer in 1000 ms', postgres: 'up', storage: 'up' } },
      },
    }),
  )
  async readyz(@Res() res: Response): Promise<void> {
    const checks = {
      redis: within(this.queue.count(), 1000),
      postgres: within(this.prisma.$queryRaw`SELECT 1`, 1000),
      storage: within(this.store.ping(), 1000),
    };
    const results = await Promise.allSettled(Object.values(checks));
    const status = Object.fromEntries(
      Object.keys(checks).map((k, i) => [k, results[i]!.status === 'fulfilled' ? 'up' : `down: ${String((results[i] as PromiseRejectedResult).reason)}`]),
    );
    const ok = results.every((r) => r.status === 'fulfilled');
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE).json({ status: ok ? 'ready' : 'not ready', checks: status });
  }
}

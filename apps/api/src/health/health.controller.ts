import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { Response } from 'express';
import { PrismaClient } from '@dimoo/db';
import { QUEUE_NAMES } from '@dimoo/queue';
import { ObjectStore } from '@dimoo/storage';

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
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Redis, Postgres and object storage all answer. */
  @Get('readyz')
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

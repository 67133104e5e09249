/**
 * The outbox reconciler: Postgres is the record, Redis the transport. Jobs recorded but never handed to Redis
 * (enqueuedAt null) are enqueued; queued jobs whose Redis entry vanished (this Redis keeps nothing on disk) are
 * enqueued again. BullMQ's jobId = the database id makes a second add of a live job a no-op, so nothing runs twice.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { QueuePayload } from '@dimoo/queue';
import { QUEUE_NAMES } from '@dimoo/queue';
import { JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';
import { JobsService } from './jobs.service';

@Injectable()
export class OutboxService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OutboxService.name);
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly jobs: JobRepository,
    private readonly service: JobsService,
    @InjectQueue(QUEUE_NAMES.generation) private readonly queue: Queue<QueuePayload>,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.reconcile(), this.env.OUTBOX_INTERVAL_MS);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass; returns how many jobs were (re-)enqueued. */
  async reconcile(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let count = 0;
    try {
      for (const job of await this.jobs.pendingEnqueue(100, this.env.OUTBOX_INTERVAL_MS * 5)) {
        // a queued job that Redis still knows is fine; one it lost (or never got) goes in again
        if (job.enqueuedAt && (await this.queue.getJob(job.id))) continue;
        if (await this.service.enqueue(job.id, job.teamId)) count++;
      }
    } catch (err) {
      this.logger.warn(`outbox pass failed: ${String(err)}`);
    } finally {
      this.running = false;
    }
    if (count > 0) this.logger.log(`enqueued ${count} job(s) from the outbox`);
    return count;
  }
}

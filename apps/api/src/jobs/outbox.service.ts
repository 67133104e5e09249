/**
 * The outbox reconciler: Postgres is the record, Redis the transport. Jobs recorded but never handed to Redis
 * (enqueuedAt null) are enqueued; queued jobs whose Redis entry vanished (this Redis keeps nothing on disk) are
 * enqueued again. BullMQ's jobId = the database id makes a second add of a live job a no-op, so nothing runs twice.
 * It pages through the queued jobs by cursor (creation order), a bounded number of pages per pass, resuming where the
 * last pass stopped: after a Redis loss with thousands queued, every lost job is reached within a few passes. Every
 * pass looks at jobs never handed over; a full scan (every queued job, checked against Redis) runs when Redis lost its
 * data (`FairQueue.wasReset`) and every OUTBOX_FULL_SCAN_MS, so its cost does not grow with the queue on every pass.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { FairQueue, QueuePayload } from '@dimoo/queue';
import { QUEUE_NAMES } from '@dimoo/queue';
import type { JobCursor } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';
import { DispatchService } from './dispatch.service';
import { JobsService } from './jobs.service';

/** Pages one pass reads at most (the scan resumes at the next pass). */
const PAGES_PER_PASS = 10;

/** Which of `ids` Redis holds a job for: waiting in the fair queue or in BullMQ (lookups 200 at a time). */
export async function inRedis(queue: Queue, fair: FairQueue, ids: string[]): Promise<Set<string>> {
  const present = await fair.waitingOf(ids);
  for (let i = 0; i < ids.length; i += 200) {
    const chunk = ids.slice(i, i + 200);
    const states = await Promise.all(chunk.map((id) => queue.getJobState(id)));
    chunk.forEach((id, j) => states[j] !== 'unknown' && present.add(id));
  }
  return present;
}

@Injectable()
export class OutboxService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OutboxService.name);
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private cursor: JobCursor | undefined;
  /** the scan in progress looks at stale enqueued jobs too */
  private full = false;
  private lastFull = 0;

  constructor(
    private readonly jobs: JobRepository,
    private readonly service: JobsService,
    private readonly dispatch: DispatchService,
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
      const size = this.env.OUTBOX_PAGE_SIZE;
      if (!this.cursor) {
        const reset = await this.dispatch.fair.wasReset().catch(() => false);
        this.full = reset || Date.now() - this.lastFull >= this.env.OUTBOX_FULL_SCAN_MS;
        if (this.full) this.lastFull = Date.now();
      }
      for (let pages = 0; pages < PAGES_PER_PASS; pages++) {
        const page = await this.jobs.pendingEnqueue(size, this.full ? this.env.OUTBOX_INTERVAL_MS * 5 : undefined, this.cursor);
        // a queued job that Redis still knows is fine; one it lost (or never got) goes in again
        const present = await inRedis(
          this.queue,
          this.dispatch.fair,
          page.filter((j) => j.enqueuedAt).map((j) => j.id),
        );
        for (const job of page) {
          if (present.has(job.id)) continue;
          if (await this.service.enqueue(job)) count++;
        }
        const last = page.at(-1);
        this.cursor = page.length < size || !last ? undefined : { createdAt: last.createdAt, id: last.id };
        if (!this.cursor) break;
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

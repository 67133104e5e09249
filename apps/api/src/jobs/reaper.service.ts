/**
 * The reaper: reconciles running jobs in Postgres with BullMQ, paging through them by cursor. A job BullMQ failed
 * without the worker's handler (stalled more often than it allows, or a handler that could not record the failure)
 * ends failed with BullMQ's reason; a job Redis no longer has whose worker went silent (no progress for
 * REAPER_STALE_MS) goes back to the queue (the outbox hands it to Redis); queued jobs past their `deadline` end
 * expired and leave the fair queue. Each change is one guarded transition, so several API replicas reaping at once
 * change a job once.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { QueuePayload } from '@dimoo/queue';
import { QUEUE_NAMES } from '@dimoo/queue';
import type { JobCursor } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';
import { DispatchService } from './dispatch.service';

const PAGES_PER_PASS = 10;

export interface ReaperPass {
  failed: number;
  requeued: number;
  expired: number;
}

@Injectable()
export class ReaperService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ReaperService.name);
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private cursor: JobCursor | undefined;

  constructor(
    private readonly jobs: JobRepository,
    private readonly dispatch: DispatchService,
    @InjectQueue(QUEUE_NAMES.generation) private readonly queue: Queue<QueuePayload>,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.reap(), this.env.REAPER_INTERVAL_MS);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async reap(): Promise<ReaperPass> {
    const pass = { failed: 0, requeued: 0, expired: 0 };
    if (this.running) return pass;
    this.running = true;
    try {
      const expired = await this.jobs.expireOverdue();
      pass.expired = expired.length;
      // a job BullMQ already holds is dropped by its worker's take (the row says expired)
      for (const job of expired) await this.dispatch.fair.remove(job.teamId, job.id).catch(() => undefined);
      const size = this.env.OUTBOX_PAGE_SIZE;
      for (let pages = 0; pages < PAGES_PER_PASS; pages++) {
        const page = await this.jobs.runningPage(size, this.cursor);
        for (const row of page) {
          const state = await this.queue.getJobState(row.id);
          if (state === 'failed') {
            const reason = (await this.queue.getJob(row.id))?.failedReason ?? 'unknown';
            if (await this.jobs.fail(row.id, { code: 'queue-failed', message: `the queue gave up on the job: ${reason}` })) pass.failed++;
          } else if (state === 'unknown') {
            const silentBefore = new Date(Date.now() - this.env.REAPER_STALE_MS);
            if (await this.jobs.requeueLost(row.id, silentBefore, 'its worker went silent and the queue lost it')) pass.requeued++;
          }
        }
        const last = page.at(-1);
        this.cursor = page.length < size || !last ? undefined : { createdAt: last.createdAt, id: last.id };
        if (!this.cursor) break;
      }
    } catch (err) {
      this.logger.warn(`reaper pass failed: ${String(err)}`);
    } finally {
      this.running = false;
    }
    if (pass.failed + pass.requeued > 0) this.logger.warn(`reaper: ${pass.failed} job(s) failed, ${pass.requeued} requeued`);
    if (pass.expired > 0) this.logger.log(`reaper: ${pass.expired} job(s) expired (deadline passed before they started)`);
    return pass;
  }
}

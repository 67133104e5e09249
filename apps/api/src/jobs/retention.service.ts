/**
 * Retention: a finished job's images (inputs, previews, result) are removed RESULT_TTL_DAYS after it finished, and the
 * row says when (`resultDeletedAt`); the status, timings and any text answer stay. Each pass removes up to a page of
 * jobs, oldest first. Removing is idempotent and the mark is guarded, so API replicas sweeping at once do no harm.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { JobRepository } from '@dimoo/db';
import { jobObjectsPrefix, ObjectStore } from '@dimoo/storage';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

const DAY_MS = 24 * 60 * 60 * 1000;
const JOBS_PER_PASS = 100;

@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RetentionService.name);
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  onApplicationBootstrap(): void {
    if (this.env.RESULT_TTL_DAYS > 0) this.timer = setInterval(() => void this.sweep(), this.env.RETENTION_SWEEP_INTERVAL_MS);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass; returns how many jobs' images were removed. */
  async sweep(): Promise<number> {
    if (this.running || this.env.RESULT_TTL_DAYS <= 0) return 0;
    this.running = true;
    let removed = 0;
    try {
      const due = await this.jobs.resultsDue(new Date(Date.now() - this.env.RESULT_TTL_DAYS * DAY_MS), JOBS_PER_PASS);
      for (const job of due) {
        await this.store.removeAll(jobObjectsPrefix(job.teamId, job.id));
        if (await this.jobs.markResultDeleted(job.id)) removed++;
      }
    } catch (err) {
      this.logger.warn(`retention sweep failed: ${String(err)}`);
    } finally {
      this.running = false;
    }
    if (removed > 0) this.logger.log(`retention: removed the images of ${removed} job(s) older than ${this.env.RESULT_TTL_DAYS} day(s)`);
    return removed;
  }
}

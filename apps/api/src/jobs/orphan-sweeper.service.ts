/**
 * The orphan sweeper: a submit uploads its inputs before it writes the job row, and removes them again when the row
 * cannot be written; an API killed in between leaves objects no row points at. Each pass reads one page of job
 * objects (in key order, resuming after the last page) and removes those older than ORPHAN_MIN_AGE_MS whose job has no
 * row, or whose team deleted it (a delete whose object removal failed). Removing is idempotent, so API replicas
 * sweeping at once do no harm. Each pass also drops Idempotency-Keys older than their 24 h.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { JobRepository } from '@dimoo/db';
import { isUploadKey, jobOfKey, ObjectStore, TEAMS_PREFIX, UPLOAD_TTL_MS } from '@dimoo/storage';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

const KEYS_PER_PASS = 1000;

export interface SweepPass {
  scanned: number;
  removed: number;
}

@Injectable()
export class OrphanSweeperService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OrphanSweeperService.name);
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private cursor: string | undefined;

  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), this.env.ORPHAN_SWEEP_INTERVAL_MS);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sweep(): Promise<SweepPass> {
    const pass = { scanned: 0, removed: 0 };
    if (this.running) return pass;
    this.running = true;
    try {
      const page = await this.store.list(TEAMS_PREFIX, { ...(this.cursor ? { startAfter: this.cursor } : {}), limit: KEYS_PER_PASS });
      pass.scanned = page.length;
      this.cursor = page.length < KEYS_PER_PASS ? undefined : page.at(-1)?.key;
      const oldEnough = Date.now() - this.env.ORPHAN_MIN_AGE_MS;
      const byJob = new Map<string, string[]>();
      for (const o of page) {
        // an upload no job used within its time
        if (isUploadKey(o.key)) {
          if (o.lastModified.getTime() < Date.now() - UPLOAD_TTL_MS) {
            await this.store.remove(o.key);
            pass.removed++;
          }
          continue;
        }
        const job = jobOfKey(o.key);
        if (!job || o.lastModified.getTime() > oldEnough) continue;
        byJob.set(job.jobId, [...(byJob.get(job.jobId) ?? []), o.key]);
      }
      const known = await this.jobs.keptIds([...byJob.keys()]);
      for (const [jobId, keys] of byJob) {
        if (known.has(jobId)) continue;
        for (const key of keys) await this.store.remove(key);
        pass.removed += keys.length;
      }
      await this.jobs.sweepIdempotencyKeys();
    } catch (err) {
      this.logger.warn(`orphan sweep failed: ${String(err)}`);
    } finally {
      this.running = false;
    }
    if (pass.removed > 0) this.logger.warn(`orphan sweeper: removed ${pass.removed} object(s) no job points at`);
    return pass;
  }
}

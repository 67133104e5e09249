/**
 * Live job events for the SSE streams of this API instance. Postgres is the event log (workers write every transition
 * there), so a stream replays from it after `Last-Event-ID` and then follows it: one shared poll per interval fetches
 * the new events of every job that has an open stream, whatever the number of streams.
 */
import type { OnModuleDestroy } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { JobEvent } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

type Listener = (events: JobEvent[]) => void;

@Injectable()
export class JobEventsHub implements OnModuleDestroy {
  private readonly logger = new Logger(JobEventsHub.name);
  private readonly listeners = new Map<string, Set<Listener>>();
  private cursor: bigint | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(
    private readonly jobs: JobRepository,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  /**
   * Follows `jobId`'s new events (those committed after this resolves, and possibly some before: callers drop ids
   * they already sent). Returns the unsubscribe function.
   */
  async subscribe(jobId: string, listener: Listener): Promise<() => void> {
    this.cursor ??= await this.jobs.lastEventId();
    const set = this.listeners.get(jobId) ?? new Set<Listener>();
    set.add(listener);
    this.listeners.set(jobId, set);
    this.timer ??= setInterval(() => void this.poll(), this.env.EVENTS_POLL_MS);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
        this.cursor = null;
      }
    };
  }

  private async poll(): Promise<void> {
    if (this.polling || this.cursor === null || this.listeners.size === 0) return;
    this.polling = true;
    try {
      const events = await this.jobs.eventsOf([...this.listeners.keys()], this.cursor);
      if (events.length === 0) return;
      this.cursor = events.at(-1)!.id;
      const byJob = new Map<string, JobEvent[]>();
      for (const e of events) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
      for (const [jobId, list] of byJob) for (const l of this.listeners.get(jobId) ?? []) l(list);
    } catch (err) {
      this.logger.warn(`event poll: ${String(err)}`);
    } finally {
      this.polling = false;
    }
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

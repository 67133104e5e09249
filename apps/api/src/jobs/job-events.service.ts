/**
 * Live job events for the SSE streams of this API instance. Postgres is the event log (workers write every transition
 * there), so a stream replays from it after `Last-Event-ID` and then follows it: one shared poll per interval fetches
 * the new events of every job that has an open stream, whatever the number of streams. The poll keeps a cursor per
 * job: event ids follow commit order within a job, not across jobs (JobRepository.eventsAfter).
 */
import type { OnModuleDestroy } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { JobEvent } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

type Listener = (events: JobEvent[]) => void;

interface Subscription {
  listener: Listener;
  /** ends the stream (the API is shutting down: the client reconnects, with Last-Event-ID, to another instance) */
  end: () => void;
}

@Injectable()
export class JobEventsHub implements OnModuleDestroy {
  private readonly logger = new Logger(JobEventsHub.name);
  private readonly listeners = new Map<string, Set<Subscription>>();
  /** per followed job: the newest event id delivered */
  private readonly cursors = new Map<string, bigint>();
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
  async subscribe(jobId: string, listener: Listener, end: () => void): Promise<() => void> {
    if (!this.cursors.has(jobId)) this.cursors.set(jobId, await this.jobs.lastEventIdOf(jobId));
    const set = this.listeners.get(jobId) ?? new Set<Subscription>();
    const subscription = { listener, end };
    set.add(subscription);
    this.listeners.set(jobId, set);
    this.timer ??= setInterval(() => void this.poll(), this.env.EVENTS_POLL_MS);
    return () => {
      set.delete(subscription);
      if (set.size === 0) {
        this.listeners.delete(jobId);
        this.cursors.delete(jobId);
      }
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  private async poll(): Promise<void> {
    if (this.polling || this.listeners.size === 0) return;
    this.polling = true;
    try {
      const events = await this.jobs.eventsAfter(this.cursors);
      if (events.length === 0) return;
      for (const e of events) if (this.cursors.has(e.jobId)) this.cursors.set(e.jobId, e.id);
      const byJob = new Map<string, JobEvent[]>();
      for (const e of events) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
      for (const [jobId, list] of byJob) for (const s of this.listeners.get(jobId) ?? []) s.listener(list);
    } catch (err) {
      this.logger.warn(`event poll: ${String(err)}`);
    } finally {
      this.polling = false;
    }
  }

  /** Shutting down: every open stream ends (an open stream would keep the HTTP server from closing). */
  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const set of [...this.listeners.values()]) for (const s of [...set]) s.end();
  }
}

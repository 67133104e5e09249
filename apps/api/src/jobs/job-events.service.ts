/**
 * Live job events for the SSE streams of this API instance. Postgres is the event log (workers write every transition
 * there), so a stream replays from it after `Last-Event-ID` and then follows it. Events are pushed: each committed
 * event row notifies this process (LISTEN on one connection, `JobEventListener`), and a notification for a followed
 * job reads the new events of every followed job at once (one query, coalesced while one runs). A slow poll
 * (EVENTS_POLL_MS) covers notifications lost while the listening connection was down. Reads keep a cursor per job:
 * event ids follow commit order within a job, not across jobs (JobRepository.eventsAfter).
 */
import type { OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { JobEvent } from '@dimoo/db';
import { JobEventListener, JobRepository } from '@dimoo/db';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

type Listener = (events: JobEvent[]) => void;

interface Subscription {
  listener: Listener;
  /** ends the stream (the API is shutting down: the client reconnects, with Last-Event-ID, to another instance) */
  end: () => void;
}

@Injectable()
export class JobEventsHub implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(JobEventsHub.name);
  private readonly listeners = new Map<string, Set<Subscription>>();
  /** per followed job: the newest event id delivered */
  private readonly cursors = new Map<string, bigint>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private again = false;
  private readonly listener: JobEventListener;
  /** reads started by a notification (tests and metrics: proves the push path ran) */
  public pushed = 0;

  constructor(
    private readonly jobs: JobRepository,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {
    let warned = 0;
    this.listener = new JobEventListener(env.DATABASE_URL, {
      onEvent: (jobId) => {
        if (!this.cursors.has(jobId)) return;
        this.pushed++;
        void this.poll();
      },
      onConnected: () => void this.poll(),
      onError: (err) => {
        if (Date.now() - warned > 10_000) this.logger.warn(`event notifications: ${String(err)} (reconnecting; streams fall back to polling)`);
        warned = Date.now();
      },
    });
  }

  async onModuleInit(): Promise<void> {
    // not awaited past the first try: an API that starts while Postgres is down serves, and listens once it can
    await this.listener.start();
  }

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
    if (this.listeners.size === 0) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.again = false;
        const events = await this.jobs.eventsAfter(this.cursors);
        for (const e of events) if (this.cursors.has(e.jobId)) this.cursors.set(e.jobId, e.id);
        const byJob = new Map<string, JobEvent[]>();
        for (const e of events) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
        for (const [jobId, list] of byJob) for (const s of this.listeners.get(jobId) ?? []) s.listener(list);
      } while (this.again && this.listeners.size > 0);
    } catch (err) {
      this.logger.warn(`event read: ${String(err)}`);
    } finally {
      this.polling = false;
    }
  }

  /** Shutting down: every open stream ends (an open stream would keep the HTTP server from closing). */
  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const set of [...this.listeners.values()]) for (const s of [...set]) s.end();
    await this.listener.close();
  }
}

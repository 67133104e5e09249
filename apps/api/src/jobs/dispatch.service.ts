/**
 * The API's side of the fair queue (`@dimoo/queue` FairQueue): admission checks at submit, a recorded job put in its
 * team's queue, and a dispatcher nudged after each so BullMQ gets the next jobs in fair order at once.
 */
import type { OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Admission, FairJob, QueuePayload, TeamShare } from '@dimoo/queue';
import { bullTarget, currentTraceparent, Dispatcher, FairQueue, QUEUE_NAMES, redisOptions } from '@dimoo/queue';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

/** A dispatcher pass even without a nudge (a nudge lost to a Redis blip). */
const DISPATCH_INTERVAL_MS = 1000;

@Injectable()
export class DispatchService implements OnApplicationShutdown {
  private readonly logger = new Logger(DispatchService.name);
  private readonly redis: Redis;
  readonly fair: FairQueue;
  private readonly dispatcher: Dispatcher;

  constructor(
    @InjectQueue(QUEUE_NAMES.generation) queue: Queue<QueuePayload>,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {
    // no offline queue: while Redis is down a call fails at once (the outbox hands the job over later); concurrent
    // submits' commands leave in one write (auto-pipelining: socket writes are most of a submit's cost)
    this.redis = new Redis({ ...redisOptions(env.REDIS_URL, { offlineQueue: false }), enableAutoPipelining: true });
    this.redis.on('error', () => undefined);
    this.fair = new FairQueue(this.redis, env.QUEUE_PREFIX, env.DISPATCH_AHEAD);
    this.dispatcher = new Dispatcher(this.fair, bullTarget(queue), DISPATCH_INTERVAL_MS, (err) => this.logger.warn(`dispatch: ${String(err)}`));
  }

  admit(teamId: string, share: TeamShare): Promise<Admission> {
    return this.fair.admit(teamId, share, this.env.MAX_QUEUED_JOBS);
  }

  /** Puts a recorded job in its team's queue (with the submit's trace context) and nudges the dispatcher. */
  async push(job: FairJob, share: TeamShare): Promise<void> {
    const traceparent = currentTraceparent();
    await this.fair.push(traceparent ? { ...job, traceparent } : job, share);
    this.dispatcher.nudge();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.dispatcher.close();
    this.redis.disconnect();
  }
}

/** The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): the policy and what is left of it. */
export function rateLimitHeaders(rate: { limit: number; remaining: number; resetMs: number }): Record<string, string> {
  return {
    'RateLimit-Policy': `"submits";q=${rate.limit};w=60`,
    RateLimit: `"submits";r=${rate.remaining};t=${Math.max(0, Math.ceil(rate.resetMs / 1000))}`,
  };
}

/**
 * Webhook deliveries, from their own process (so network egress can be limited to it). The job event log in Postgres
 * is the source: each pass (on every event notification, and every NOTIFIER_SCAN_MS) records a delivery for each new
 * event a job's webhook asked for (one row per event: a second pass or a second notifier adds none) and hands it to
 * the `webhooks` BullMQ queue; a delivery whose hand-over was lost is handed over again. Each try signs the payload
 * with every active secret of the job's team (Standard Webhooks; two signatures while a rotation's grace runs),
 * resolves and checks the target and posts to the checked address. A failed try is retried with exponential backoff
 * up to WEBHOOK_ATTEMPTS; every try is logged on the delivery (`GET /v1/jobs/:id/webhooks`).
 */
import type { BlockList } from 'node:net';
import { Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import type { PrismaClient } from '@dimoo/db';
import { JobEventListener, WebhookRepository } from '@dimoo/db';
import { tracingEnabled } from '@dimoo/config';
import { QUEUE_NAMES, queueTelemetry, redisConnection } from '@dimoo/queue';
import { allowList, resolveTarget, WebhookTargetRefused } from './address';
import type { NotifierEnv } from './config';
import { post } from './deliver';
import { NotifierMetrics } from './metrics';

interface DeliveryPayload {
  deliveryId: string;
}

/** A delivery left pending this long without a try is handed to the queue again (its first hand-over was lost). */
const REHAND_AFTER_MS = 30_000;

export class Notifier {
  private readonly logger = new Logger('notifier');
  private readonly webhooks: WebhookRepository;
  private readonly allowed: BlockList;
  private queue: Queue<DeliveryPayload> | null = null;
  private worker: Worker<DeliveryPayload> | null = null;
  private listener: JobEventListener | null = null;
  private timer: NodeJS.Timeout | null = null;
  private scanning = false;
  private again = false;

  constructor(
    private readonly env: NotifierEnv,
    prisma: PrismaClient,
    private readonly metrics: NotifierMetrics = new NotifierMetrics(),
  ) {
    this.webhooks = new WebhookRepository(prisma);
    this.allowed = allowList(env.WEBHOOK_ALLOW);
  }

  async start(): Promise<void> {
    const connection = { prefix: this.env.QUEUE_PREFIX, telemetry: queueTelemetry(tracingEnabled()) };
    this.queue = new Queue<DeliveryPayload>(QUEUE_NAMES.webhooks, { ...connection, connection: redisConnection(this.env.REDIS_URL, { offlineQueue: false }) });
    this.queue.on('error', () => undefined);
    this.worker = new Worker<DeliveryPayload>(QUEUE_NAMES.webhooks, (job) => this.deliver(job), {
      ...connection,
      connection: redisConnection(this.env.REDIS_URL, { offlineQueue: true }),
      concurrency: this.env.WEBHOOK_CONCURRENCY,
    });
    this.worker.on('error', (err) => this.logger.warn(`queue: ${err.message}`));
    this.listener = new JobEventListener(this.env.DATABASE_URL, {
      onEvent: () => void this.scan(),
      onConnected: () => void this.scan(),
      onError: (err) => this.logger.warn(`event notifications: ${String(err)}`),
    });
    await this.listener.start();
    this.timer = setInterval(() => void this.scan(), this.env.NOTIFIER_SCAN_MS);
    await this.scan();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.listener?.close();
    await this.worker?.close();
    await this.queue?.close();
  }

  /** Records the deliveries new events call for and hands them (and any lost hand-over) to the queue. */
  async scan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.again = false;
        const created = await this.webhooks.scan();
        const stale = await this.webhooks.pendingSince(new Date(Date.now() - REHAND_AFTER_MS));
        for (const id of new Set([...created, ...stale])) await this.hand(id);
      } while (this.again);
    } catch (err) {
      this.logger.warn(`scan: ${String(err)}`);
    } finally {
      this.scanning = false;
    }
  }

  private async hand(deliveryId: string): Promise<void> {
    // the delivery id is the BullMQ job id: handing it over twice adds it once
    await this.queue!.add(
      'deliver',
      { deliveryId },
      {
        jobId: deliveryId,
        attempts: this.env.WEBHOOK_ATTEMPTS,
        backoff: { type: 'exponential', delay: this.env.WEBHOOK_BACKOFF_MS },
        removeOnComplete: { age: 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    );
    await this.webhooks.touch(deliveryId);
  }

  /** One try of one delivery. Throws to have BullMQ retry it. */
  async deliver(job: Job<DeliveryPayload>): Promise<void> {
    const d = await this.webhooks.delivery(job.data.deliveryId);
    if (!d || d.status !== 'pending') return;
    const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    let target;
    try {
      target = await resolveTarget(d.url, this.allowed);
    } catch (err) {
      if (!(err instanceof WebhookTargetRefused)) throw err;
      await this.webhooks.attempt(d.id, { at: new Date().toISOString(), status: null, error: err.message, ms: 0 }, 'failed');
      this.metrics.delivery('failed', null);
      throw new UnrecoverableError(err.message);
    }
    const secrets = await this.webhooks.secretsOf(d.teamId);
    const timestamp = new Date();
    const body = JSON.stringify({ type: `job.${d.eventType}`, timestamp: timestamp.toISOString(), data: d.data });
    const signature = secrets.map((s) => new Webhook(s).sign(d.id, timestamp, body)).join(' ');
    const headers = { 'webhook-id': d.id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': signature };
    const attempt = await post(target, body, headers, this.env.WEBHOOK_TIMEOUT_MS);
    const entry = { at: timestamp.toISOString(), status: attempt.status, error: attempt.error, ms: attempt.ms, address: target.address };
    const outcome = attempt.ok ? 'delivered' : last ? 'failed' : 'retry';
    await this.webhooks.attempt(d.id, entry, outcome);
    this.metrics.delivery(outcome, attempt.ms);
    if (!attempt.ok) throw new Error(`webhook ${d.id} to ${target.url.host}: ${attempt.error ?? attempt.status}`);
  }
}

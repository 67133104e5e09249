/**
 * Runs generation jobs. Every job this worker holds is handed to the engine thread, which batches all of them step by
 * step — BullMQ's concurrency is the number of batch slots. The event loop here only moves bytes and records state,
 * so lock renewal is never starved. The BullMQ Worker is built here from the validated config (concurrency, lock
 * duration, stalled-job checks) rather than from decorator options fixed at import time.
 * Jobs reach BullMQ through the fair queue (`@dimoo/queue` FairQueue): each job this worker takes or finishes nudges the
 * dispatcher, which moves the next jobs in fair order into BullMQ's short waiting list.
 */
import { AsyncResource } from 'node:async_hooks';
import { hostname } from 'node:os';
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { DelayedError, Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseStoredJob, StoredImagesSchema, workerHeartbeatMs } from '@dimoo/contracts';
import type { Job as JobRecord, WorkerState } from '@dimoo/db';
import { BatchRepository, isDatabaseUnavailable, JobRepository, NotFound, WorkerRepository } from '@dimoo/db';
import type { RgbImage } from '@dimoo/model';
import { decodeImage } from '@dimoo/model';
import type { QueuePayload } from '@dimoo/queue';
import {
  bullTarget,
  Dispatcher,
  FairQueue,
  jobAttributes,
  QUEUE_NAMES,
  QueuePayloadSchema,
  queueTelemetry,
  redisConnection,
  redisOptions,
  retryTransient,
} from '@dimoo/queue';
import { inSpan, startSpan, tracingEnabled, withLogFields } from '@dimoo/config';
import type { EngineSubmission } from '@dimoo/runtime';
import { EngineHost, EngineJobError, JobCanceledError } from '@dimoo/runtime';
import { ObjectStore, previewKey, resultKey, StorageUnavailable } from '@dimoo/storage';
import { BatchRecorder } from './batch-recorder';
import type { WorkerEnv } from './config';
import type { FinishedStatus } from './metrics';
import { WorkerMetrics } from './metrics';
import { shortError } from './registry';
import { ENGINE, WORKER_ENV } from './tokens';

/** How long a job waits in the queue when the store it needs first is down (no attempt used). */
const OUTAGE_DELAY_MS = 5000;
/** A dispatcher pass even without a nudge (jobs submitted while no API could nudge, a lock left by a dead process). */
const DISPATCH_INTERVAL_MS = 500;

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n').filter(Boolean).at(-1) ?? '';

@Injectable()
export class GenerationProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(GenerationProcessor.name);
  private worker: Worker<QueuePayload> | null = null;
  private queue: Queue<QueuePayload> | null = null;
  private redis: Redis | null = null;
  private fair: FairQueue | null = null;
  private dispatcher: Dispatcher | null = null;
  /** jobs this worker holds (handed to the engine or on their way), by id → team */
  private readonly running = new Map<string, string>();
  /** the engine runs of each held job (one per image) */
  private readonly engineIds = new Map<string, string[]>();
  /** the newest step of each held job not yet written (written for all of them at once, see `tick`) */
  private readonly progress = new Map<string, { step: number; steps: number }>();
  private ticker: NodeJS.Timeout | null = null;
  private ticking = false;
  private tickAgain = false;
  /** the tick in progress: a shutdown waits for it before the worker leaves the registry */
  private ticked: Promise<void> = Promise.resolve();
  private lastBeat = 0;
  /** this worker's registry row (`workers`): what it counted since it started, written with its heartbeats */
  private readonly startedAt = new Date();
  private jobsDone = 0;
  private jobsFailed = 0;
  private lastError: string | null = null;
  /** the row changed (a job came or went): written at the next tick rather than a heartbeat period later */
  private registryDirty = false;
  private lastRegistryBeat = 0;
  private closing = false;
  /** set when the shutdown grace period ran out: canceled engine runs go back to the queue */
  private handingBack = false;
  private readonly recorder: BatchRecorder;

  constructor(
    private readonly jobs: JobRepository,
    private readonly batches: BatchRepository,
    private readonly workers: WorkerRepository,
    private readonly store: ObjectStore,
    private readonly metrics: WorkerMetrics,
    @Inject(ENGINE) private readonly engine: EngineHost,
    @Inject(WORKER_ENV) private readonly env: WorkerEnv,
  ) {
    this.recorder = new BatchRecorder((r) => this.batches.record({ workerId: env.WORKER_ID, ...r }).then(() => undefined), env.BATCH_RECORD_MAX_STEPS);
  }

  private get heartbeatMs(): number {
    return workerHeartbeatMs(this.env.LOCK_DURATION_MS);
  }

  onApplicationBootstrap(): void {
    this.engine.addStepListener((stats) => void this.recorder.onStep(stats)?.catch((err: unknown) => this.logger.warn(`batch record: ${String(err)}`)));
    this.engine.addStepListener((stats) => this.metrics.onStep(stats));
    this.metrics.beat();
    // into the registry (a restart under the same id starts its row afresh); with Postgres down, the first tick that
    // reaches it inserts the row
    this.lastRegistryBeat = Date.now();
    this.workers.register(this.registryRow()).catch((err: unknown) => {
      this.registryDirty = true;
      this.logger.warn(`worker registry: ${firstLine(err)}`);
    });
    this.worker = new Worker<QueuePayload>(QUEUE_NAMES.generation, (job, token) => this.process(job, token), {
      connection: redisConnection(this.env.REDIS_URL, { offlineQueue: true }),
      prefix: this.env.QUEUE_PREFIX,
      // a job's `process` span continues the trace its submit began (@dimoo/queue telemetry)
      telemetry: queueTelemetry(tracingEnabled()),
      concurrency: this.env.BATCH_SLOTS,
      lockDuration: this.env.LOCK_DURATION_MS,
      stalledInterval: this.env.LOCK_DURATION_MS,
      maxStalledCount: this.env.MAX_STALLED_COUNT,
    });
    this.worker.on('error', (err) => this.logger.warn(`queue: ${err.message}`));
    this.redis = new Redis(redisOptions(this.env.REDIS_URL, { offlineQueue: false }));
    this.redis.on('error', () => undefined);
    this.queue = new Queue<QueuePayload>(QUEUE_NAMES.generation, {
      connection: redisConnection(this.env.REDIS_URL, { offlineQueue: false }),
      prefix: this.env.QUEUE_PREFIX,
      telemetry: queueTelemetry(tracingEnabled()),
    });
    this.queue.on('error', () => undefined);
    this.fair = new FairQueue(this.redis, this.env.QUEUE_PREFIX, this.env.DISPATCH_AHEAD);
    this.dispatcher = new Dispatcher(this.fair, bullTarget(this.queue), DISPATCH_INTERVAL_MS, (err) => this.logger.warn(`dispatch: ${String(err)}`));
    // a job taken from BullMQ's waiting list leaves room for the next in fair order
    this.worker.on('active', () => this.dispatcher?.nudge());
    this.dispatcher.nudge();
    this.ticker = setInterval(() => void this.tick(), Math.min(this.env.PROGRESS_INTERVAL_MS, this.heartbeatMs));
  }

  /**
   * The worker's periodic writes, one after the other (two multi-row UPDATEs at once could deadlock each other):
   * - progress, coalesced: the newest step of every job that moved, for the whole batch in one statement;
   * - every third of a lock period (`workerHeartbeatMs`), a heartbeat for every job held, also those waiting for a
   *   batch slot: the reaper and a redelivery leave them alone (they would be sampled twice), and their team's running
   *   lease is renewed;
   * - the worker's registry row, one upsert: every heartbeat period (busy or idle: a row left unwritten for three of
   *   them is stale), and at the next tick after a job came or went.
   * The first two return the jobs whose cancel was requested: the worker's only cancel check.
   */
  private async tick(): Promise<void> {
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    this.tickAgain = false;
    let done = () => {};
    this.ticked = new Promise<void>((r) => (done = r));
    try {
      if (this.progress.size > 0) {
        const reports = [...this.progress].map(([id, p]) => ({ id, ...p }));
        this.progress.clear();
        this.cancel((await this.jobs.progressMany(reports)).cancelRequested);
      }
      const now = Date.now();
      if (this.running.size > 0 && now - this.lastBeat >= this.heartbeatMs) {
        this.lastBeat = now;
        this.cancel((await this.jobs.heartbeat([...this.running.keys()], this.env.WORKER_ID)).cancelRequested);
        await this.fair?.touch([...this.running].map(([jobId, teamId]) => ({ jobId, teamId })));
      }
      if (!this.closing && (this.registryDirty || now - this.lastRegistryBeat >= this.heartbeatMs)) {
        this.registryDirty = false;
        this.lastRegistryBeat = now;
        await this.workers.beat(this.registryRow());
      }
      this.metrics.beat();
    } catch (err) {
      this.logger.warn(`progress and heartbeat: ${firstLine(err)}`);
    } finally {
      this.ticking = false;
      done();
      if (this.tickAgain) setImmediate(() => void this.tick());
    }
  }

  /** This worker as the registry shows it (GET /v1/admin/workers). */
  private registryRow(): WorkerState {
    return {
      id: this.env.WORKER_ID,
      host: hostname(),
      pid: process.pid,
      modelName: this.engine.model.name,
      modelVersion: this.engine.model.version,
      modelChecksum: this.engine.model.checksum,
      executionProvider: this.engine.provider,
      slots: this.env.BATCH_SLOTS,
      heartbeatMs: this.heartbeatMs,
      runningJobs: this.running.size,
      currentBatchId: this.recorder.currentId,
      jobsDone: this.jobsDone,
      jobsFailed: this.jobsFailed,
      lastError: this.lastError,
      startedAt: this.startedAt,
    };
  }

  /** A job error this worker met (recorded as the job's failure, or retried): the registry shows the last one. */
  private sawError(code: string, message: string): void {
    this.lastError = shortError(code, message);
    this.registryDirty = true;
  }

  private cancel(ids: readonly string[]): void {
    for (const id of ids) if (this.running.has(id)) for (const run of this.engineIds.get(id) ?? [id]) this.engine.cancel(run);
  }

  /**
   * SIGTERM: stop taking jobs and let the running ones finish within SHUTDOWN_GRACE_MS; past it, drop them from the
   * batch at the next step and hand them back to the queue (another worker starts them afresh). Nothing is lost, and
   * nothing completes twice: a job only completes on the worker that holds its row as running.
   */
  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.worker) {
      const closing = this.worker.close();
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'grace-over'>((r) => (timer = setTimeout(() => r('grace-over'), this.env.SHUTDOWN_GRACE_MS)));
      if ((await Promise.race([closing, graceOver])) === 'grace-over') {
        this.logger.warn(`grace period over: handing ${this.running.size} running job(s) back to the queue`);
        this.handingBack = true;
        this.cancel([...this.running.keys()]);
        await closing;
      }
      clearTimeout(timer);
    }
    await this.dispatcher?.close();
    await this.queue?.close().catch(() => undefined);
    this.redis?.disconnect();
    await this.recorder.flush()?.catch((err: unknown) => this.logger.warn(`batch record: ${String(err)}`));
    // out of the registry (a crashed worker's row stays, and turns stale); a beat already sent lands first
    await this.ticked;
    await this.workers.remove(this.env.WORKER_ID).catch((err: unknown) => this.logger.warn(`worker registry: ${firstLine(err)}`));
    await this.engine.close();
  }

  async process(job: Job<QueuePayload>, token?: string): Promise<void> {
    const { jobId, teamId } = QueuePayloadSchema.parse(job.data);
    this.running.set(jobId, teamId);
    this.metrics.held(this.running.size);
    this.registryDirty = true;
    try {
      // every line logged for the job names it, and its work is one span of the job's trace
      await withLogFields({ jobId, teamId }, () => inSpan('generation.job', jobAttributes(jobId, teamId), () => this.runJob(job, jobId, token)));
    } finally {
      this.running.delete(jobId);
      this.metrics.held(this.running.size);
      this.registryDirty = true;
      this.progress.delete(jobId);
      this.engineIds.delete(jobId);
      // no longer counts against its team's running limit; its slot goes to the next job in fair order
      await this.fair?.finished(teamId, jobId).catch(() => undefined);
      this.dispatcher?.nudge();
    }
  }

  private async runJob(job: Job<QueuePayload>, jobId: string, token: string | undefined): Promise<void> {
    // start it (one guarded UPDATE): a duplicate delivery of a finished job, or a redelivered job whose cancel was
    // requested (canceled by take), does not apply. Postgres down: the job waits in Redis, no attempt used.
    // A redelivery whose first worker is still alive (its lock expired under load, its heartbeat is fresh) is not taken
    // over: sampling the job twice helps nobody; it is looked at again later.
    let taken: JobRecord | null | 'held';
    try {
      const aliveAfter = new Date(Date.now() - this.env.LOCK_DURATION_MS / 2);
      taken = await this.db(() => this.jobs.takeUnlessHeld(jobId, this.env.WORKER_ID, aliveAfter));
    } catch (err) {
      if (err instanceof NotFound) throw new UnrecoverableError(`job ${jobId} has no record`);
      if (isDatabaseUnavailable(err)) return this.later(job, token, `job ${jobId} waits for the database: ${String(err)}`);
      throw err;
    }
    if (taken === 'held') return this.later(job, token, `job ${jobId} is still held by a live worker`);
    if (!taken) return;
    const record = taken;
    this.metrics.taken(record);
    const startedAt = performance.now();
    // this worker recorded the job's end (the transition applied): counted, with its run time
    const ended = (status: FinishedStatus) => (applied: boolean) => {
      if (!applied) return;
      this.metrics.ended(record.task, status, performance.now() - startedAt);
      if (status === 'succeeded') this.jobsDone++;
      if (status === 'failed') this.jobsFailed++;
    };

    // the job as the API resolved and stored it; a row that does not parse (or an unknown schema version) fails here
    const stored = parseStoredJob(record.params);
    if (!stored.ok) {
      this.sawError('unreadable-job', stored.reason);
      await this.db(() => this.jobs.fail(jobId, { code: 'unreadable-job', message: stored.reason })).then(ended('failed'));
      throw new UnrecoverableError(stored.reason);
    }
    let submission: EngineSubmission;
    try {
      submission = { job: stored.job, images: await this.imagesOf(record), team: record.teamId };
    } catch (err) {
      // a storage outage longer than the retries: the queue tries again later (its backoff); a missing or
      // undecodable input can never succeed
      if (err instanceof StorageUnavailable) return this.retryOrFail(job, jobId, err, ended('failed'));
      this.sawError('invalid-input', String(err));
      await this.db(() => this.jobs.fail(jobId, { code: 'invalid-input', message: String(err) })).then(ended('failed'));
      throw new UnrecoverableError(String(err));
    }

    let previewing = false;
    let firstStep = true;
    let planned: number | undefined;
    // n images: image i is its own sequence with seed + i, run side by side in the batch; the job's step is the
    // slowest image's, its previews image 0's
    const runs = engineRuns(jobId, submission);
    const stepOf = runs.map(() => 0);
    this.engineIds.set(
      jobId,
      runs.map((r) => r.id),
    );
    const sampling = startSpan('generation.engine', { 'dimoo.images': runs.length });
    try {
      const results = await Promise.all(
        runs.map((run, i) =>
          this.engine.run(run.id, run.submission, {
            // written with the batch's other jobs at the next tick (a job finished by then needs none: its row says
            // done); a job's first step is written at once: the client sees it start sampling without waiting an interval
            onProgress: (step, steps) => {
              planned = steps;
              stepOf[i] = step;
              this.progress.set(jobId, { step: Math.min(...stepOf), steps });
              if (firstStep) setImmediate(() => void this.tick());
              firstStep = false;
            },
            // one preview upload at a time per job: a slow store skips previews rather than queueing them
            // called from the engine thread's messages: bound to the job's log fields and trace
            onPreview: AsyncResource.bind((step: number, _steps: number, png: Uint8Array) => {
              if (previewing || i > 0) return;
              previewing = true;
              void this.storePreview(record.teamId, jobId, step, png).finally(() => (previewing = false));
            }),
          }),
        ),
      ).catch((err: unknown) => {
        // one image failed or was canceled: the others stop too
        for (const id of runs.map((r) => r.id)) this.engine.cancel(id);
        sampling.end(err);
        throw err;
      });
      const { output, timings } = results[0]!;
      sampling.setAttributes({ 'dimoo.steps': timings.steps });
      sampling.end();
      // one line per sampling and per stored result: what the reliability runs count (no job is sampled twice without need)
      this.logger.log(`sampled ${jobId} (${timings.steps} steps, ${timings.samplingMs.toFixed(0)} ms)`);
      // the image is made: short outages of storage or Postgres are waited out here, not paid for with a new sampling
      const t0 = performance.now();
      const ran = { stepsRun: Math.max(...results.map((r) => r.timings.steps)), ...(planned === undefined ? {} : { stepsPlanned: planned }) };
      if (output.kind === 'image') {
        const keys = await Promise.all(
          results.map(async ({ output: o }, i) => {
            if (o.kind !== 'image') throw new Error('an image job answered text');
            const key = resultKey(record.teamId, jobId, o.extension, i);
            await this.storage(() => this.store.put(key, Buffer.from(o.bytes), o.contentType));
            return key;
          }),
        );
        this.logger.log(`stored the result of ${jobId}`);
        const uploadMs = performance.now() - t0;
        await this.db(() =>
          this.jobs.succeed(jobId, {
            resultKey: keys[0]!,
            resultKeys: keys,
            modelChecksum: this.engine.model.checksum,
            timings: { ...timings, uploadMs },
            ...ran,
          }),
        ).then(ended('succeeded'));
      } else {
        await this.db(() =>
          this.jobs.succeed(jobId, { resultText: output.text, modelChecksum: this.engine.model.checksum, timings: { ...timings, uploadMs: 0 }, ...ran }),
        ).then(ended('succeeded'));
      }
    } catch (err) {
      if (err instanceof JobCanceledError) {
        if (this.handingBack && !(await this.db(() => this.jobs.isCancelRequested(jobId)))) {
          await this.db(() => this.jobs.handBack(jobId, this.env.WORKER_ID));
          // back to the queue without using up an attempt
          await job.moveToDelayed(Date.now(), token);
          throw new DelayedError(`job ${jobId} handed back at shutdown`);
        }
        await this.db(() => this.jobs.canceled(jobId)).then(ended('canceled'));
        return;
      }
      if (err instanceof EngineJobError && !err.retryable) {
        this.sawError(err.name, err.message);
        await this.db(() => this.jobs.fail(jobId, { code: err.name, message: err.message, ...(err.field ? { details: { field: err.field } } : {}) })).then(
          ended('failed'),
        );
        throw new UnrecoverableError(err.message);
      }
      return this.retryOrFail(job, jobId, err, ended('failed'));
    }
  }

  /** A transient failure: the queue retries the job (with its backoff) unless this was the last attempt. */
  private async retryOrFail(job: Job<QueuePayload>, jobId: string, err: unknown, failed: (applied: boolean) => void): Promise<never> {
    this.sawError(err instanceof Error ? err.name : 'Error', err instanceof Error ? err.message : String(err));
    const attempts = job.opts.attempts ?? 1;
    if (job.attemptsMade + 1 >= attempts) {
      failed(await this.db(() => this.jobs.fail(jobId, { code: err instanceof Error ? err.name : 'Error', message: String(err) })));
    }
    throw err;
  }

  /** Back to the queue for a later try without using an attempt (the store it needs is down). */
  private async later(job: Job<QueuePayload>, token: string | undefined, why: string): Promise<never> {
    this.logger.warn(why);
    await job.moveToDelayed(Date.now() + OUTAGE_DELAY_MS, token);
    throw new DelayedError(why);
  }

  private db<T>(op: () => Promise<T>): Promise<T> {
    return retryTransient(op, {
      isTransient: isDatabaseUnavailable,
      onRetry: (e, n, ms) => this.logger.warn(`database unavailable (try ${n}, again in ${ms} ms): ${firstLine(e)}`),
    });
  }

  private storage<T>(op: () => Promise<T>): Promise<T> {
    return retryTransient(op, {
      isTransient: (e) => e instanceof StorageUnavailable,
      onRetry: (e, n, ms) => this.logger.warn(`storage unavailable (try ${n}, again in ${ms} ms): ${firstLine(e)}`),
    });
  }

  private async storePreview(teamId: string, jobId: string, step: number, png: Uint8Array): Promise<void> {
    try {
      const key = previewKey(teamId, jobId, step);
      await this.store.put(key, Buffer.from(png), 'image/png');
      await this.jobs.preview(jobId, step, key);
    } catch (err) {
      this.logger.warn(`preview of ${jobId}: ${String(err)}`);
    }
  }

  /** The job's input images from storage (outages retried), decoded off the event loop, in the engine's order. */
  private async imagesOf(record: JobRecord): Promise<RgbImage[]> {
    const { images } = StoredImagesSchema.parse(record.inputs);
    return Promise.all(images.map(async (key) => decodeImage(await this.storage(() => this.store.get(key)))));
  }
}

/** The engine runs of a job: one per image (`n`), image i with seed + i; image 0 keeps the job's id. */
function engineRuns(jobId: string, submission: EngineSubmission): { id: string; submission: EngineSubmission }[] {
  const job = submission.job;
  const n = job.task === 'mmu' ? 1 : job.n;
  return Array.from({ length: n }, (_, i) => ({
    id: i === 0 ? jobId : `${jobId}#${i}`,
    submission: i === 0 ? submission : { ...submission, job: { ...job, seed: job.seed + i } },
  }));
}

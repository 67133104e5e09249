/**
 * Runs generation jobs. Every job this worker holds is handed to the engine thread, which batches all of them step by
 * step — BullMQ's concurrency is the number of batch slots. The event loop here only moves bytes and records state,
 * so lock renewal is never starved. The BullMQ Worker is built here from the validated config (concurrency, lock
 * duration, stalled-job checks) rather than from decorator options fixed at import time.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { UnrecoverableError, Worker } from 'bullmq';
import type { JobRequest, QueuePayload } from '@dimoo/contracts';
import { QUEUE_NAMES, QueuePayloadSchema } from '@dimoo/contracts';
import type { Job as JobRecord } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import { redisConnection } from '@dimoo/queue';
import type { TaskRequest } from '@dimoo/runtime';
import { decodeImage, EngineHost, EngineJobError, JobCanceledError } from '@dimoo/runtime';
import { ObjectStore, resultKey } from '@dimoo/storage';
import type { WorkerEnv } from './config';
import { ENGINE, WORKER_ENV } from './tokens';

@Injectable()
export class GenerationProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(GenerationProcessor.name);
  private worker: Worker<QueuePayload> | null = null;

  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
    @Inject(ENGINE) private readonly engine: EngineHost,
    @Inject(WORKER_ENV) private readonly env: WorkerEnv,
  ) {}

  onApplicationBootstrap(): void {
    this.worker = new Worker<QueuePayload>(QUEUE_NAMES.generation, (job) => this.process(job), {
      connection: redisConnection(this.env.REDIS_URL, { offlineQueue: true }),
      prefix: this.env.QUEUE_PREFIX,
      concurrency: this.env.BATCH_SLOTS,
      lockDuration: this.env.LOCK_DURATION_MS,
      stalledInterval: this.env.LOCK_DURATION_MS,
      maxStalledCount: 2,
    });
    this.worker.on('error', (err) => this.logger.warn(`queue: ${err.message}`));
  }

  /** Stops taking jobs, lets running ones finish, then stops the engine. */
  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    await this.engine.close();
  }

  async process(job: Job<QueuePayload>): Promise<void> {
    const { jobId } = QueuePayloadSchema.parse(job.data);
    const record = await this.jobs.getUnscoped(jobId);
    if (!record) throw new UnrecoverableError(`job ${jobId} has no record`);
    if (record.status === 'succeeded' || record.status === 'failed' || record.status === 'canceled') return; // duplicate delivery
    if (record.cancelRequested) {
      await this.jobs.canceled(jobId);
      return;
    }
    if (!(await this.jobs.start(jobId, this.env.WORKER_ID))) return;

    let request: TaskRequest;
    try {
      request = await this.requestOf(record);
    } catch (err) {
      await this.jobs.fail(jobId, { code: 'invalid-input', message: String(err) });
      throw new UnrecoverableError(String(err));
    }

    let lastReport = 0;
    try {
      const { output, timings } = await this.engine.run(jobId, request, (step, steps) => {
        const now = Date.now();
        if (now - lastReport < this.env.PROGRESS_INTERVAL_MS && step < steps) return;
        lastReport = now;
        void this.reportProgress(job, jobId, step, steps);
      });
      const t0 = performance.now();
      if (output.kind === 'image') {
        const key = resultKey(record.teamId, jobId, 'png');
        await this.store.put(key, Buffer.from(output.png), 'image/png');
        await this.jobs.succeed(jobId, { resultKey: key, modelChecksum: this.engine.model.checksum, timings: { ...timings, uploadMs: performance.now() - t0 } });
      } else {
        await this.jobs.succeed(jobId, { resultText: output.text, modelChecksum: this.engine.model.checksum, timings: { ...timings, uploadMs: 0 } });
      }
    } catch (err) {
      if (err instanceof JobCanceledError) {
        await this.jobs.canceled(jobId);
        return;
      }
      if (err instanceof EngineJobError && !err.retryable) {
        await this.jobs.fail(jobId, { code: err.name, message: err.message, ...(err.field ? { details: { field: err.field } } : {}) });
        throw new UnrecoverableError(err.message);
      }
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade + 1 >= attempts) await this.jobs.fail(jobId, { code: err instanceof Error ? err.name : 'Error', message: String(err) });
      throw err;
    }
  }

  private async reportProgress(job: Job<QueuePayload>, jobId: string, step: number, steps: number): Promise<void> {
    try {
      await job.updateProgress(step / steps);
      await this.jobs.progress(jobId, step, steps);
      if (await this.jobs.isCancelRequested(jobId)) this.engine.cancel(jobId);
    } catch (err) {
      this.logger.warn(`progress of ${jobId}: ${String(err)}`);
    }
  }

  /** The engine request: the recorded parameters plus the input images from storage, decoded off the event loop. */
  private async requestOf(record: JobRecord): Promise<TaskRequest> {
    const p = record.params as unknown as JobRequest & { seed: number };
    const inputs = record.inputs as Record<string, string | string[]>;
    const image = async (key: string) => decodeImage(await this.store.get(key));
    const cache = p.cache === true ? true : p.cache ? p.cache : null;
    const common = { seed: p.seed, cache, ...(p.steps !== undefined ? { steps: p.steps } : {}), ...(p.temperature !== undefined ? { temperature: p.temperature } : {}) };
    switch (p.task) {
      case 't2i':
        return { task: 't2i', prompt: p.prompt, ...common, ...opt({ height: p.height, width: p.width, cfg: p.cfg }) };
      case 'paint': {
        const img = await image(inputs['image'] as string);
        const maskImg = await image(inputs['mask'] as string);
        const mask = new Uint8Array(maskImg.width * maskImg.height);
        for (let i = 0; i < mask.length; i++) {
          const o = i * 3;
          mask[i] = maskImg.data[o]! + maskImg.data[o + 1]! + maskImg.data[o + 2]! > 3 * 127.5 ? 1 : 0;
        }
        return { task: 'paint', prompt: p.prompt, image: img, mask, ...common, ...opt({ cfg: p.cfg }) };
      }
      case 'i2i':
        return {
          task: 'i2i',
          prompt: p.prompt,
          kind: p.editType,
          images: await Promise.all((inputs['images'] as string[]).map(image)),
          ...common,
          ...opt({ cfg: p.cfg, cfgImage: p.cfgImage }),
        };
      case 'mmu':
        return { task: 'mmu', question: p.question, image: await image(inputs['image'] as string), ...common, ...opt({ genLength: p.genLength, blockLength: p.blockLength, cfg: p.cfg }) };
    }
  }
}

function opt<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Accepting a job: validate (shape, then the served model's limits, then the input images), store the inputs, commit
 * the job row — from then on it is accepted (202) — and hand it to Redis. If Redis is down the row stays in the outbox
 * (enqueuedAt null) and the reconciler enqueues it later; 503 only when the record cannot be written.
 */
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { randomInt } from 'node:crypto';
import type { FieldIssue, JobRequest, JobView, ModelManifest, QueuePayload } from '@dimoo/contracts';
import { checkAgainstManifest, JobRequestSchema, QUEUE_NAMES } from '@dimoo/contracts';
import type { Job, JobEvent, Prisma } from '@dimoo/db';
import { isUuid, JobRepository } from '@dimoo/db';
import { decodeImage } from '@dimoo/runtime';
import { GENERATION_JOB_OPTIONS } from '@dimoo/queue';
import { inputKey, ObjectNotFound, ObjectStore, previewKey } from '@dimoo/storage';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { Caller } from '../auth/api-key.guard';
import { invalidRequest, notFound, ProblemError } from '../common/problem';
import { MODEL_MANIFEST } from '../tokens';
import { toView } from './job-view';

type Inputs = Record<string, string | string[]>;

export function zodIssues(error: { issues: { path: PropertyKey[]; message: string }[] }): FieldIssue[] {
  return error.issues.map((i) => ({ field: i.path.map(String).join('.') || '(body)', reason: i.message }));
}

@Injectable()
export class JobsService {
  private readonly logger = new Logger(JobsService.name);

  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
    @InjectQueue(QUEUE_NAMES.generation) private readonly queue: Queue<QueuePayload>,
    @Inject(MODEL_MANIFEST) private readonly manifest: ModelManifest,
  ) {}

  async submit(caller: Caller, body: unknown): Promise<JobView> {
    const teamId = this.teamOf(caller);
    const parsed = JobRequestSchema.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const req = parsed.data;
    const issues = checkAgainstManifest(req, this.manifest);
    const images = await this.checkImages(req, issues);
    if (issues.length > 0) throw invalidRequest(issues);

    const jobId = crypto.randomUUID();
    const inputs: Inputs = {};
    try {
      for (const [name, bytes] of images) {
        const key = inputKey(teamId, jobId, `${name}.bin`);
        await this.store.put(key, bytes, 'application/octet-stream');
        const base = name.replace(/\.\d+$/, '');
        if (name.includes('.')) inputs[base] = [...((inputs[base] as string[] | undefined) ?? []), key];
        else inputs[name] = key;
      }
    } catch (err) {
      this.logger.warn(`cannot store inputs of ${jobId}: ${String(err)}`);
      throw new ProblemError(HttpStatus.SERVICE_UNAVAILABLE, 'storage-unavailable', 'Storage unavailable', 'input images could not be stored; retry later');
    }
    const { params, seed } = this.paramsOf(req);
    let job: Job;
    try {
      job = await this.jobs.create({ id: jobId, teamId, task: req.task, params: params as Prisma.InputJsonObject, inputs, model: this.manifest.name, seed });
    } catch (err) {
      this.logger.error(`cannot record job: ${String(err)}`);
      throw new ProblemError(HttpStatus.SERVICE_UNAVAILABLE, 'database-unavailable', 'Database unavailable', 'the job could not be recorded; retry later');
    }
    await this.enqueue(job.id, teamId);
    return toView(job);
  }

  /** Hands a recorded job to Redis; failures are left to the outbox reconciler. */
  async enqueue(jobId: string, teamId: string): Promise<boolean> {
    try {
      await this.queue.add(QUEUE_NAMES.generation, { jobId, teamId }, { ...GENERATION_JOB_OPTIONS, jobId });
      await this.jobs.markEnqueued(jobId);
      return true;
    } catch (err) {
      this.logger.warn(`job ${jobId} stays in the outbox: ${String(err)}`);
      return false;
    }
  }

  async get(caller: Caller, id: string): Promise<Job> {
    const job = isUuid(id) ? await this.jobs.get(id, this.teamOf(caller)) : null;
    if (!job) throw notFound(`job ${id}`);
    return job;
  }

  async result(caller: Caller, id: string): Promise<{ contentType: string; body: Buffer | string }> {
    const job = await this.get(caller, id);
    if (job.status !== 'succeeded') {
      throw new ProblemError(HttpStatus.CONFLICT, 'not-ready', 'Result not ready', `job ${id} is ${job.status}`);
    }
    if (job.resultText !== null) return { contentType: 'text/plain; charset=utf-8', body: job.resultText };
    if (!job.resultKey) throw notFound(`result of job ${id}`);
    return { contentType: 'image/png', body: await this.store.get(job.resultKey) };
  }

  /** The job's events after `afterId`, in order (a page of at most `limit`). */
  async events(caller: Caller, id: string, afterId: bigint, limit = 500): Promise<JobEvent[]> {
    return this.jobs.events(id, this.teamOf(caller), { afterId, limit });
  }

  /** A preview PNG the worker stored at step `step`. */
  async preview(caller: Caller, id: string, step: string): Promise<Buffer> {
    const job = await this.get(caller, id);
    if (!/^\d{1,6}$/.test(step)) throw invalidRequest([{ field: 'step', reason: 'must be a step number' }]);
    try {
      return await this.store.get(previewKey(job.teamId, job.id, Number(step)));
    } catch (err) {
      if (err instanceof ObjectNotFound) throw notFound(`preview ${step} of job ${id}`);
      throw err;
    }
  }

  async cancel(caller: Caller, id: string): Promise<Job> {
    const job = await this.get(caller, id);
    await this.jobs.requestCancel(job.id, job.teamId);
    return this.get(caller, id);
  }

  private teamOf(caller: Caller): string {
    if (!caller.teamId) throw new ProblemError(HttpStatus.FORBIDDEN, 'no-team', 'No team', 'this key belongs to no team; use a team key');
    return caller.teamId;
  }

  private paramsOf(req: JobRequest): { params: Record<string, unknown>; seed: number } {
    const seed = req.seed ?? randomInt(0, 2 ** 47);
    const params: Record<string, unknown> = { ...req, seed };
    for (const k of ['image', 'images', 'mask']) delete params[k];
    return { params, seed };
  }

  /** Decodes every input image (off the event loop) and checks its size against the model; returns the raw bytes. */
  private async checkImages(req: JobRequest, issues: FieldIssue[]): Promise<[string, Buffer][]> {
    const named: [string, string][] = [];
    switch (req.task) {
      case 't2i':
        break;
      case 'paint':
        named.push(['image', req.image], ['mask', req.mask]);
        break;
      case 'i2i':
        req.images.forEach((img, i) => named.push([`images.${i}`, img]));
        break;
      case 'mmu':
        named.push(['image', req.image]);
        break;
    }
    const out: [string, Buffer][] = [];
    const sizes = new Map<string, string>();
    for (const [field, b64] of named) {
      const bytes = Buffer.from(b64, 'base64');
      try {
        const img = await decodeImage(bytes);
        sizes.set(field, `${img.width}x${img.height}`);
        const { gridFactor, minSize, maxSize } = this.manifest.image;
        for (const v of [img.width, img.height]) {
          if (v % gridFactor !== 0 || v < minSize || v > maxSize) {
            issues.push({ field, reason: `image is ${img.width}×${img.height}; sides must be multiples of ${gridFactor} between ${minSize} and ${maxSize}` });
            break;
          }
        }
        out.push([field, bytes]);
      } catch {
        issues.push({ field, reason: 'is not a decodable PNG, JPEG or WebP image' });
      }
    }
    if (sizes.has('mask') && sizes.get('mask') !== sizes.get('image')) issues.push({ field: 'mask', reason: 'must have the same size as image' });
    return out;
  }
}

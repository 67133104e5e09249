/**
 * Accepting a job: validate its shape, decode its input images (off the event loop), resolve it against the served
 * model's manifest (@dimoo/contracts resolveJob: every default and limit, so a 202 is never followed by a failure the
 * manifest could predict), store the inputs, commit the job row with the resolved job — from then on it is accepted
 * (202) — and hand it to Redis. If Redis is down the row stays in the outbox (enqueuedAt null) and the reconciler
 * enqueues it later; 503 only when the record cannot be written.
 */
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FieldIssue, JobImages, JobView, ModelManifest } from '@dimoo/contracts';
import { drawSeed, inputField, JobRequestSchema, requestImages, resolveJob } from '@dimoo/contracts';
import type { Job, JobEvent, Prisma } from '@dimoo/db';
import { isUuid, JobRepository } from '@dimoo/db';
import { inspectJobImages } from '@dimoo/model';
import type { QueuePayload } from '@dimoo/queue';
import { GENERATION_JOB_OPTIONS, QUEUE_NAMES } from '@dimoo/queue';
import { inputKey, ObjectNotFound, ObjectStore, previewKey, StorageError } from '@dimoo/storage';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { Caller } from '../auth/api-key.guard';
import { invalidRequest, notFound, ProblemError, storageUnavailable } from '../common/problem';
import { MODEL_MANIFEST } from '../tokens';
import { resultContentType, toView } from './job-view';

/** zod's issues as problem+json field errors; an unknown field is named itself. */
export function zodIssues(error: { issues: { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[] }): FieldIssue[] {
  const field = (path: PropertyKey[]) => path.map(String).join('.') || '(body)';
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys' && i.keys
      ? i.keys.map((k) => ({ field: field([...i.path, k]), reason: 'is not a known field' }))
      : [{ field: field(i.path), reason: i.message }],
  );
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
    const b64 = requestImages(req);
    const bytes: JobImages<Buffer> = { images: b64.images.map((s) => Buffer.from(s, 'base64')) };
    if (b64.mask !== undefined) bytes.mask = Buffer.from(b64.mask, 'base64');
    // headers and container structure only: a hostile image is refused before any decoder allocates for it
    const { facts, reasons } = await inspectJobImages(bytes, this.manifest);
    const resolved = resolveJob(req, this.manifest, { ...facts, seed: drawSeed() });
    if (!resolved.ok) {
      const why = (field: string) => (field === 'mask' ? reasons.mask : reasons.images.find((_, i) => inputField(req, i) === field));
      throw invalidRequest(resolved.issues.map((i) => ({ field: i.field, reason: why(i.field) ?? i.reason })));
    }
    const { job: params } = resolved;

    // inputs first, then the row that points at them: a row never refers to a missing object. If the row cannot be
    // written, the inputs are removed again (an API killed in between leaves them to the orphan sweeper)
    const jobId = randomUUID();
    const inputs: JobImages<string> = { images: [] };
    const uploaded: string[] = [];
    const put = async (key: string, data: Buffer) => {
      await this.store.put(key, data, 'application/octet-stream');
      uploaded.push(key);
      return key;
    };
    let job: Job;
    try {
      try {
        for (const [i, image] of bytes.images.entries()) inputs.images.push(await put(inputKey(teamId, jobId, `${inputField(req, i)}.bin`), image));
        if (bytes.mask) inputs.mask = await put(inputKey(teamId, jobId, 'mask.bin'), bytes.mask);
      } catch (err) {
        throw err instanceof StorageError ? storageUnavailable('input images could not be stored') : err;
      }
      job = await this.jobs.create({
        id: jobId,
        teamId,
        task: params.task,
        params: params,
        inputs: inputs as unknown as Prisma.InputJsonObject,
        model: this.manifest.name,
        seed: params.seed,
      });
    } catch (err) {
      await this.removeInputs(jobId, uploaded);
      throw err;
    }
    await this.enqueue(job.id, teamId);
    return toView(job);
  }

  /** Removes the inputs of a job that was not recorded; what cannot be removed now is left to the orphan sweeper. */
  private async removeInputs(jobId: string, keys: string[]): Promise<void> {
    const results = await Promise.allSettled(keys.map((k) => this.store.remove(k)));
    const left = results.filter((r) => r.status === 'rejected').length;
    if (left > 0) this.logger.warn(`job ${jobId} was not recorded; ${left} of its input object(s) stay for the sweeper`);
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
    return { contentType: resultContentType(job), body: await this.store.get(job.resultKey) };
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
}

/**
 * Accepting a job: validate its shape, decode its input images (off the event loop), resolve it against the served
 * model's manifest (@dimoo/contracts resolveJob: every default and limit, so a 202 is never followed by a failure the
 * manifest could predict), store the inputs, commit the job row with the resolved job — from then on it is accepted
 * (202) — and put it in its team's fair queue in Redis. Before anything is stored, the team's quotas and the global
 * queue cap are checked in Redis (429 / 503 with Retry-After). If Redis is down the quotas are not checked (Postgres is
 * the record) and the row stays in the outbox (enqueuedAt null) for the reconciler; 503 only when the record cannot
 * be written.
 */
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FieldIssue, JobEventType, JobImages, JobList, JobView, ModelManifest, ResolvedJob } from '@dimoo/contracts';
import {
  DEFAULT_PRIORITY,
  DEFAULT_WEBHOOK_EVENTS,
  eventTypeOfWebhook,
  drawSeed,
  inputField,
  JobListQuerySchema,
  JobRequestSchema,
  parseStoredJob,
  requestImages,
  resolveJob,
  isTerminalStatus,
  isRetryableStatus,
  StoredImagesSchema,
} from '@dimoo/contracts';
import type { Job, JobAudit, JobEvent, Prisma } from '@dimoo/db';
import { isUuid, JobRepository, resultContentType, toView } from '@dimoo/db';
import { inspectJobImages } from '@dimoo/model';
import type { Admission, FairJob, TeamShare } from '@dimoo/queue';
import { jobAttributes } from '@dimoo/queue';
import { trace } from '@opentelemetry/api';
import { inputKey, jobObjectsPrefix, ObjectNotFound, ObjectStore, previewKey, StorageError } from '@dimoo/storage';
import type { Caller } from '../auth/api-key.guard';
import { auditActor, jobScopeOf, submitTeamOf, teamOf } from '../auth/api-key.guard';
import { TeamShares } from '../auth/caches';
import { assignLogFields } from '../common/logging';
import { invalidRequest, notFound, ProblemError, storageUnavailable } from '../common/problem';
import { DispatchService, rateLimitHeaders } from './dispatch.service';
import { JobEventsHub } from './job-events.service';
import { fingerprint, fromMultipart, InputImages, type UploadedPart } from './inputs';
import type { ApiEnv } from '../config';
import { API_ENV, MODEL_MANIFEST } from '../tokens';

/** zod's issues as problem+json field errors; an unknown field is named itself. */
export function zodIssues(error: { issues: { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[] }): FieldIssue[] {
  const field = (path: PropertyKey[]) => path.map(String).join('.') || '(body)';
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys' && i.keys
      ? i.keys.map((k) => ({ field: field([...i.path, k]), reason: 'is not a known field' }))
      : [{ field: field(i.path), reason: i.message }],
  );
}

/** A stored job's cost and priority; an unreadable row still goes through the queue (its worker fails it, saying why). */
function fairOf(job: Job): Pick<FairJob, 'cost' | 'priority'> {
  const stored = parseStoredJob(job.params);
  return stored.ok ? { cost: stored.job.cost.units, priority: stored.job.priority } : { cost: 1, priority: DEFAULT_PRIORITY };
}

/** A new job as `accept` records it: its resolved request, its input images and the rest of its row. */
interface NewJob {
  teamId: string;
  apiKeyId: string | null;
  params: ResolvedJob;
  /** each input image's object name under the job's inputs (`image.bin`, `images.0.bin`, …) and its bytes */
  images: { name: string; bytes: Buffer }[];
  mask?: Buffer;
  idempotencyKey?: string;
  deadlineAt?: Date;
  webhook?: { url: string; events: JobEventType[] };
  retryOf?: string;
  /** the admin action that made it, audited with the row (its id is known only then) */
  audit?: (jobId: string) => JobAudit;
}

type Accepted = { view: JobView; headers: Record<string, string>; replayed: boolean };

@Injectable()
export class JobsService {
  private readonly logger = new Logger(JobsService.name);

  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
    private readonly dispatch: DispatchService,
    private readonly shares: TeamShares,
    private readonly hub: JobEventsHub,
    private readonly inputs: InputImages,
    @Inject(API_ENV) private readonly env: ApiEnv,
    @Inject(MODEL_MANIFEST) private readonly manifest: ModelManifest,
  ) {}

  /**
   * With an `Idempotency-Key`, the same key and body answer the job the first submit recorded (`replayed`, 200, no
   * quota used); the key with another body is 422; while the first submit is still in progress, 409. `asTeam` (the
   * X-Dimoo-Team header): an admin-scoped key submits for that team, audited `job.submit_as`.
   */
  async submit(caller: Caller, body: unknown, idempotencyKey?: string, parts?: readonly UploadedPart[], asTeam?: string): Promise<Accepted> {
    const { teamId, as } = await this.submitTeam(caller, asTeam);
    const { request, files } = parts ? fromMultipart(body, parts) : { request: body, files: new Map<string, Buffer>() };
    const parsed = JobRequestSchema.safeParse(request);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const req = parsed.data;
    if (req.webhookEvents && req.webhook === undefined) throw invalidRequest([{ field: 'webhookEvents', reason: 'needs a webhook URL' }]);
    const given = requestImages(req);
    const bytes: JobImages<Buffer> = {
      images: await Promise.all(given.images.map((input, i) => this.inputs.bytesOf(teamId, inputField(req, i), input, files))),
    };
    if (given.mask !== undefined) bytes.mask = await this.inputs.bytesOf(teamId, 'mask', given.mask, files);
    // headers and container structure only: a hostile image is refused before any decoder allocates for it
    const { facts, reasons } = await inspectJobImages(bytes, this.manifest);
    const resolved = resolveJob(req, this.manifest, { ...facts, seed: drawSeed() });
    if (!resolved.ok) {
      const why = (field: string) => (field === 'mask' ? reasons.mask : reasons.images.find((_, i) => inputField(req, i) === field));
      throw invalidRequest(resolved.issues.map((i) => ({ field: i.field, reason: why(i.field) ?? i.reason })));
    }
    const { job: params } = resolved;
    if (idempotencyKey !== undefined) {
      const replay = await this.claimIdempotencyKey(teamId, idempotencyKey, fingerprint(request, files));
      if (replay) return { view: toView(replay), headers: { 'Idempotent-Replayed': 'true' }, replayed: true };
    }
    try {
      const { job, headers } = await this.accept({
        teamId,
        apiKeyId: caller.keyId,
        params,
        images: bytes.images.map((image, i) => ({ name: `${inputField(req, i)}.bin`, bytes: image })),
        ...(bytes.mask ? { mask: bytes.mask } : {}),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        ...(req.deadline === undefined ? {} : { deadlineAt: new Date(req.deadline) }),
        ...(req.webhook === undefined ? {} : { webhook: { url: req.webhook, events: (req.webhookEvents ?? DEFAULT_WEBHOOK_EVENTS).map(eventTypeOfWebhook) } }),
        ...(as ? { audit: (jobId) => ({ actor: auditActor(caller), action: 'job.submit_as', details: { teamId, jobId } }) } : {}),
      });
      return { view: toView(job), headers, replayed: false };
    } catch (err) {
      // nothing recorded: the key is free for a retry of this request
      if (idempotencyKey !== undefined) await this.jobs.releaseIdempotencyKey(teamId, idempotencyKey).catch(() => undefined);
      throw err;
    }
  }

  /** The job an earlier submit with this key recorded, or null once the key is this submit's. */
  private async claimIdempotencyKey(teamId: string, key: string, hash: string): Promise<Job | null> {
    const held = await this.jobs.reserveIdempotencyKey(teamId, key, hash);
    if (held.reserved) return null;
    if (held.requestHash !== hash) {
      throw new ProblemError(
        HttpStatus.UNPROCESSABLE_ENTITY,
        'idempotency-key-reused',
        'Idempotency-Key reused',
        'this Idempotency-Key was sent with another request body; use a new key for a new request',
        [{ field: 'Idempotency-Key', reason: 'already used for another request' }],
      );
    }
    if (held.jobId === null) {
      throw new ProblemError(
        HttpStatus.CONFLICT,
        'idempotency-in-progress',
        'Request in progress',
        'a request with this Idempotency-Key is still being processed; retry shortly',
        [{ field: 'Idempotency-Key', reason: 'a request with it is in progress' }],
        1,
      );
    }
    const job = await this.jobs.get(held.jobId, teamId);
    if (!job) throw notFound(`job ${held.jobId} (recorded for this Idempotency-Key)`);
    return job;
  }

  /**
   * The team a submit is for (`submitTeamOf`): the caller's, or the existing team an admin-scoped key names (404 for
   * an unknown one).
   */
  async submitTeam(caller: Caller, asTeam: string | undefined): Promise<{ teamId: string; as: boolean }> {
    const target = submitTeamOf(caller, asTeam);
    if (target.as) await this.shares.get(target.teamId);
    return target;
  }

  /**
   * An admin retries a failed, canceled or expired job: a new job of the same team with the same resolved request
   * (seed included) and webhook, its input images copied under the new job, admitted and enqueued as any submit;
   * `retryOf` points at the original. No deadline: the original's has likely passed. Other states: 409 not-retryable.
   */
  async retry(caller: Caller, original: Job): Promise<Job> {
    const refuse = (why: string) => new ProblemError(HttpStatus.CONFLICT, 'not-retryable', 'Not retryable', `job ${original.id} ${why}`);
    if (!isRetryableStatus(original.status)) {
      throw refuse(`is ${original.status}: only a failed, canceled or expired job can be retried`);
    }
    const stored = parseStoredJob(original.params);
    if (!stored.ok) throw refuse(`cannot be read by this version: ${stored.reason}`);
    const inputs = StoredImagesSchema.safeParse(original.inputs);
    if (!inputs.success) throw refuse('has no readable record of its input images');
    const read = async (key: string) => {
      try {
        return await this.store.get(key);
      } catch (err) {
        if (err instanceof ObjectNotFound) throw refuse('has lost its input images (deleted or swept)');
        throw err instanceof StorageError ? storageUnavailable('input images could not be read') : err;
      }
    };
    const { job } = await this.accept({
      teamId: original.teamId,
      apiKeyId: caller.keyId,
      params: stored.job,
      images: await Promise.all(inputs.data.images.map(async (key) => ({ name: key.slice(key.lastIndexOf('/') + 1), bytes: await read(key) }))),
      ...(inputs.data.mask === undefined ? {} : { mask: await read(inputs.data.mask) }),
      ...(original.webhookUrl ? { webhook: { url: original.webhookUrl, events: original.webhookEvents as JobEventType[] } } : {}),
      retryOf: original.id,
      audit: (jobId) => ({
        actor: auditActor(caller),
        action: 'job.retry',
        targetId: original.id,
        details: { teamId: original.teamId, jobId, retryOf: original.id },
      }),
    });
    return job;
  }

  /**
   * Records a new job: its inputs stored, its row (with its audit entry, if any) committed, then put in the fair
   * queue. Every way a job is made goes through here (a submit, an admin's retry).
   */
  private async accept(job: NewJob): Promise<{ job: Job; headers: Record<string, string> }> {
    const { teamId, params } = job;
    const share = await this.shares.get(teamId);
    const admission = await this.admit(teamId, share);

    // inputs first, then the row that points at them: a row never refers to a missing object. If the row cannot be
    // written, the inputs are removed again (an API killed in between leaves them to the orphan sweeper)
    const jobId = randomUUID();
    // from here the request's log lines and its span name the job (common/logging.ts; the trace: @dimoo/queue telemetry)
    assignLogFields({ jobId, teamId });
    trace.getActiveSpan()?.setAttributes(jobAttributes(jobId, teamId));
    const inputs: JobImages<string> = { images: [] };
    const uploaded: string[] = [];
    const put = async (key: string, data: Buffer) => {
      await this.store.put(key, data, 'application/octet-stream');
      uploaded.push(key);
      return key;
    };
    let recorded: Job;
    try {
      try {
        for (const image of job.images) inputs.images.push(await put(inputKey(teamId, jobId, image.name), image.bytes));
        if (job.mask) inputs.mask = await put(inputKey(teamId, jobId, 'mask.bin'), job.mask);
      } catch (err) {
        throw err instanceof StorageError ? storageUnavailable('input images could not be stored') : err;
      }
      recorded = await this.jobs.create({
        id: jobId,
        teamId,
        task: params.task,
        params: params,
        inputs: inputs as unknown as Prisma.InputJsonObject,
        model: this.manifest.name,
        seed: params.seed,
        handingToRedis: true,
        apiKeyId: job.apiKeyId,
        ...(job.idempotencyKey === undefined ? {} : { idempotencyKey: job.idempotencyKey }),
        ...(job.deadlineAt === undefined ? {} : { deadlineAt: job.deadlineAt }),
        ...(job.webhook === undefined ? {} : { webhook: job.webhook }),
        ...(job.retryOf === undefined ? {} : { retryOf: job.retryOf }),
        ...(job.audit === undefined ? {} : { audit: job.audit(jobId) }),
      });
    } catch (err) {
      await this.removeInputs(jobId, uploaded);
      throw err;
    }
    await this.enqueue(recorded, { recorded: true, fair: { cost: params.cost.units, priority: params.priority }, share });
    return { job: recorded, headers: admission.ok && admission.rate ? rateLimitHeaders(admission.rate) : {} };
  }

  /** The team's quotas and the global queue cap; refused: 429 or 503 with Retry-After. Redis down: admitted. */
  private async admit(teamId: string, share: TeamShare): Promise<Admission> {
    let admission: Admission;
    try {
      admission = await this.dispatch.admit(teamId, share);
    } catch (err) {
      this.logger.warn(`quotas not checked (Redis): ${String(err)}`);
      return { ok: true, rate: null };
    }
    if (admission.ok) return admission;
    const retryAfter = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
    if (admission.reason === 'rate') {
      throw new ProblemError(
        HttpStatus.TOO_MANY_REQUESTS,
        'rate-limited',
        'Too many submissions',
        `your team may submit ${share.submitsPerMinute} jobs per minute`,
        undefined,
        retryAfter,
        rateLimitHeaders(admission.rate),
      );
    }
    if (admission.reason === 'queue-full') {
      throw new ProblemError(
        HttpStatus.SERVICE_UNAVAILABLE,
        'queue-full',
        'Queue full',
        'the service has too many jobs waiting; retry later',
        undefined,
        retryAfter,
      );
    }
    throw new ProblemError(
      HttpStatus.TOO_MANY_REQUESTS,
      'team-queue-full',
      'Too many jobs waiting',
      `your team has ${share.maxQueued} jobs waiting, its limit; retry when some have started`,
      undefined,
      retryAfter,
    );
  }

  /** Removes the inputs of a job that was not recorded; what cannot be removed now is left to the orphan sweeper. */
  private async removeInputs(jobId: string, keys: string[]): Promise<void> {
    const results = await Promise.allSettled(keys.map((k) => this.store.remove(k)));
    const left = results.filter((r) => r.status === 'rejected').length;
    if (left > 0) this.logger.warn(`job ${jobId} was not recorded; ${left} of its input object(s) stay for the sweeper`);
  }

  /**
   * Puts a recorded job in its team's fair queue in Redis; failures are left to the outbox reconciler. At submit the
   * row already says enqueued (`recorded`: no second write on the hot path) and is put back in the outbox on failure;
   * the outbox records each hand-over it makes (an 'enqueued' event). The submit passes what it already has (the
   * resolved job's cost and priority, the team's share); the outbox's rows are read back.
   */
  async enqueue(
    job: Job,
    { recorded = false, fair, share }: { recorded?: boolean; fair?: Pick<FairJob, 'cost' | 'priority'>; share?: TeamShare } = {},
  ): Promise<boolean> {
    try {
      const { cost, priority } = fair ?? fairOf(job);
      await this.dispatch.push({ jobId: job.id, teamId: job.teamId, cost, priority }, share ?? (await this.shares.get(job.teamId)));
      if (!recorded) await this.jobs.markEnqueued(job.id);
      return true;
    } catch (err) {
      this.logger.warn({ jobId: job.id, teamId: job.teamId, msg: `job ${job.id} stays in the outbox: ${String(err)}` });
      if (recorded) await this.jobs.clearEnqueued(job.id).catch(() => undefined);
      return false;
    }
  }

  /**
   * The job's view; while it is queued, where it stands: its team's jobs ahead (exact), an estimate of all the jobs
   * ahead (its team's times the teams waiting, the round robin's turns, plus the jobs already handed to BullMQ) and of
   * the wait (that over the fleet's starts per second in the last 5 minutes).
   */
  async view(caller: Caller, id: string): Promise<JobView> {
    const job = await this.get(caller, id);
    const view = toView(job);
    if (job.status !== 'queued') return view;
    try {
      const place = await this.dispatch.fair.placeOf(job.teamId, job.id);
      const teamAhead = place.teamAhead ?? 0;
      const ahead = place.teamAhead === null ? 0 : teamAhead * Math.max(1, place.teamsWaiting) + this.env.DISPATCH_AHEAD;
      const rate = await this.startsPerSecond();
      return { ...view, queue: { teamAhead, ahead, etaSeconds: rate > 0 ? Math.round((ahead + 1) / rate) : null } };
    } catch {
      return view; // Redis down: no estimate
    }
  }

  private pace: { at: number; perSecond: number } | null = null;
  /** The fleet's starts per second over the last 5 minutes, read at most every 10 s. */
  private async startsPerSecond(): Promise<number> {
    if (this.pace && Date.now() - this.pace.at < 10_000) return this.pace.perSecond;
    const perSecond = (await this.jobs.startedSince(new Date(Date.now() - 300_000))) / 300;
    this.pace = { at: Date.now(), perSecond };
    return perSecond;
  }

  async get(caller: Caller, id: string): Promise<Job> {
    const job = isUuid(id) ? await this.jobs.get(id, jobScopeOf(caller)) : null;
    if (!job) throw notFound(`job ${id}`);
    return job;
  }

  /**
   * The result: an answer's text; an image by a presigned URL on the store (the API does not carry the bytes) or,
   * with `stream`, through the API. Removed by retention: 410.
   */
  async result(caller: Caller, id: string, stream: boolean, index = 0): Promise<{ redirect: string } | { contentType: string; body: Buffer | string }> {
    const job = await this.get(caller, id);
    if (job.status !== 'succeeded') {
      throw new ProblemError(HttpStatus.CONFLICT, 'not-ready', 'Result not ready', `job ${id} is ${job.status}`);
    }
    if (job.resultText !== null) return { contentType: 'text/plain; charset=utf-8', body: job.resultText };
    if (job.resultDeletedAt) {
      throw new ProblemError(
        HttpStatus.GONE,
        'result-expired',
        'Result expired',
        `the images of job ${id} were removed on ${job.resultDeletedAt.toISOString()} (retention)`,
      );
    }
    const key = index === 0 ? (job.resultKeys[0] ?? job.resultKey) : job.resultKeys[index];
    if (!key) throw notFound(index === 0 ? `result of job ${id}` : `image ${index} of job ${id} (it made ${job.resultKeys.length})`);
    if (!stream) return { redirect: await this.store.presignedGet(key, this.env.RESULT_URL_TTL_SECONDS) };
    return { contentType: resultContentType(job), body: await this.store.get(key) };
  }

  /** The job's events after `afterId`, in order (a page of at most `limit`). */
  async events(caller: Caller, id: string, afterId: bigint, limit = 500): Promise<JobEvent[]> {
    return this.jobs.events(id, jobScopeOf(caller), { afterId, limit });
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

  /** A page of the team's jobs, newest first, filtered (`JobListQuerySchema`). */
  async list(caller: Caller, query: unknown): Promise<JobList> {
    const teamId = teamOf(caller);
    const parsed = JobListQuerySchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const q = parsed.data;
    const { jobs, hasMore } = await this.jobs.list(teamId, {
      limit: q.limit,
      ...(q.after ? { after: q.after } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.task ? { task: q.task } : {}),
      ...(q.createdFrom ? { createdFrom: new Date(q.createdFrom) } : {}),
      ...(q.createdBefore ? { createdBefore: new Date(q.createdBefore) } : {}),
    });
    const last = jobs.at(-1);
    const next = new URLSearchParams(Object.entries(q).map(([k, v]): [string, string] => [k, Array.isArray(v) ? v.join(',') : String(v)]));
    if (last) next.set('after', last.id);
    return { data: jobs.map(toView), hasMore, next: hasMore ? `/v1/jobs?${next.toString()}` : null };
  }

  /**
   * Deletes a finished job: its row is marked (team reads no longer see it; the row stays as the record) and its
   * objects (inputs, previews, result) are removed; what cannot be removed now the orphan sweeper removes later.
   */
  async remove(caller: Caller, id: string): Promise<void> {
    const job = await this.jobs.markDeleted(id, jobScopeOf(caller));
    try {
      await this.store.removeAll(jobObjectsPrefix(job.teamId, job.id));
    } catch (err) {
      this.logger.warn(`objects of deleted job ${id} stay for the sweeper: ${String(err)}`);
    }
  }

  /**
   * The job once it has finished, or as it is after `ms` (`Prefer: wait`): follows its events by push (the same
   * subscription as the event streams), so the answer leaves as soon as the terminal event is committed.
   */
  async settle(caller: Caller, id: string, ms: number): Promise<Job> {
    const job = await this.get(caller, id);
    if (isFinished(job) || ms <= 0) return job;
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    try {
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        void this.hub
          .subscribe(id, (events) => events.some((e) => isTerminalStatus(e.type)) && resolve(), resolve)
          .then(async (off) => {
            unsubscribe = off;
            // finished between the first read and the subscription: no event will come
            if (isFinished(await this.get(caller, id))) resolve();
          })
          .catch(() => resolve());
      });
    } finally {
      clearTimeout(timer);
      unsubscribe();
    }
    return this.get(caller, id);
  }

  async cancel(caller: Caller, id: string): Promise<Job> {
    const job = await this.get(caller, id);
    // a canceled job that was waiting leaves the fair queue (else a worker would take it only to find it canceled)
    if ((await this.jobs.requestCancel(job.id, job.teamId)) === 'canceled') await this.dispatch.fair.remove(job.teamId, job.id).catch(() => undefined);
    return this.get(caller, id);
  }
}

const isFinished = (job: Job) => isTerminalStatus(job.status);

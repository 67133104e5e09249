/**
 * A typed client of the DiMOO Serve API. The types come from docs/openapi.json (generated: `npm run sdk:generate`),
 * the requests are made by openapi-fetch; on top: waiting for a job (`Prefer: wait` in a loop), its event stream as
 * an async iterator that reconnects with Last-Event-ID, and result downloads that follow the 303 to the object store
 * without sending the API key there.
 */
import createClient from 'openapi-fetch';
import type { Client } from 'openapi-fetch';
import { readEventStream } from './events';
import type { ImageSource } from './images';
import { imageBytes } from './images';
import type { components, paths } from './generated/openapi';

type Schemas = components['schemas'];
export type JobRequest = Schemas['JobRequest'];
export type JobView = Schemas['JobView'];
export type JobList = Schemas['JobList'];
export type JobStatus = JobView['status'];
export type JobListQuery = NonNullable<paths['/v1/jobs']['get']['parameters']['query']>;
export type JobStreamEvent = Schemas['JobStreamEvent'];
export type JobStreamEventType = JobStreamEvent['event'];
export type Problem = Schemas['Problem'];
export type Team = Schemas['Team'];
export type TeamShare = Schemas['TeamShare'];
export type CreatedTeam = Schemas['CreatedTeam'];
export type CreateKey = Schemas['CreateKey'];
export type CreatedKey = Schemas['CreatedKey'];
export type KeyList = Schemas['KeyList'];
export type RotatedKey = Schemas['RotatedKey'];
export type AuditPage = Schemas['AuditPage'];
export type AuditQuery = NonNullable<paths['/v1/audit']['get']['parameters']['query']>;
export type WebhookDeliveries = Schemas['WebhookDeliveries'];
export type WebhookSecrets = Schemas['WebhookSecrets'];
export type RotatedWebhookSecret = Schemas['RotatedWebhookSecret'];
export type Readiness = Schemas['Readiness'];
export type Health = Schemas['Health'];
export type Upload = Schemas['Upload'];

/** Statuses a job never leaves. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'canceled', 'expired'];
export const isFinished = (job: Pick<JobView, 'status'>) => TERMINAL_STATUSES.includes(job.status);

/** Every event type the stream sends, and whether the stream ends after it. */
const STREAM_EVENTS = {
  queued: false,
  started: false,
  progress: false,
  preview: false,
  completed: true,
  failed: true,
  canceled: true,
  expired: true,
} satisfies Record<JobStreamEventType, boolean>;
const isStreamEvent = (event: string): event is JobStreamEventType => Object.hasOwn(STREAM_EVENTS, event);

/** The longest `Prefer: wait` the API honours, in seconds. */
export const MAX_PREFER_WAIT_S = 60;

/** An error answer of the API (its problem+json), or of the object store for a download. */
export class DimooError extends Error {
  override readonly name = 'DimooError';
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    /** seconds, from Retry-After (429, 503) */
    readonly retryAfter: number | null,
    message: string,
  ) {
    super(message);
  }

  /** Worth retrying later: an outage or a limit, not a wrong request. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/** `wait()` ran out of time; `job` is the job as last seen. */
export class DimooTimeoutError extends Error {
  override readonly name = 'DimooTimeoutError';
  constructor(
    readonly job: JobView,
    readonly timeoutMs: number,
  ) {
    super(`job ${job.id} is still ${job.status} after ${timeoutMs} ms`);
  }
}

const isProblem = (e: unknown): e is Problem => typeof e === 'object' && e !== null && 'status' in e && 'title' in e;

function failure(response: Response, error: unknown, what: string): DimooError {
  const problem = isProblem(error) ? error : null;
  const header = response.headers.get('retry-after');
  const retryAfter = header !== null && /^\d+$/.test(header) ? Number(header) : null;
  const detail = problem ? `${problem.title}: ${problem.detail}` : typeof error === 'string' && error ? error.slice(0, 200) : response.statusText;
  return new DimooError(response.status, problem, retryAfter, `${what}: ${response.status} ${detail}`);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', abort, { once: true });
  });

/** A failed request worth retrying: the network, an outage, a limit. */
const retryable = (err: unknown) => (err instanceof DimooError ? err.transient : err instanceof TypeError);
const retryDelayMs = (err: unknown) => (err instanceof DimooError && err.retryAfter !== null ? err.retryAfter * 1000 : 1000);

export interface DimooClientOptions {
  /** where the API is, e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  /** an API key (sent as `Authorization: Bearer …` to the API only) */
  apiKey?: string;
  /** the fetch to use (the global one by default) */
  fetch?: typeof fetch;
}

export interface EventsOptions {
  /** resume after this event (what an earlier event's `id` was) */
  lastEventId?: string;
  signal?: AbortSignal;
  /** reconnections in a row without a new event before giving up (default 10) */
  maxReconnects?: number;
  /** wait this long before reconnecting (default: what the server says, 2 s) */
  reconnectDelayMs?: number;
}

/** A result's bytes (an image, or an answer's text) and their content type. */
export interface Download {
  data: Buffer;
  contentType: string;
}

type Result<T> = { data?: T; error?: unknown; response: Response };

export class DimooClient {
  /** The openapi-fetch client underneath: every route, typed, for what the methods below do not cover. */
  readonly api: Client<paths>;
  private readonly fetchImpl: typeof fetch;
  private readonly baseUrl: string;

  constructor(options: DimooClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.api = createClient<paths>({
      baseUrl: this.baseUrl,
      fetch: this.fetchImpl,
      headers: options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {},
    });
  }

  private must<T>(r: Result<T>, what: string): T {
    if (!r.response.ok) throw failure(r.response, r.error, what);
    return r.data as T;
  }

  // ---- jobs ----

  /** Submits a job. `wait`: hold the answer up to this many seconds for the job to finish (`Prefer: wait`). */
  async submit(request: JobRequest, options: { idempotencyKey?: string; wait?: number; signal?: AbortSignal } = {}): Promise<JobView> {
    const header = {
      'Idempotency-Key': options.idempotencyKey,
      Prefer: options.wait === undefined ? undefined : `wait=${Math.round(options.wait)}`,
    };
    return this.must(await this.api.POST('/v1/jobs', { body: request, params: { header }, signal: options.signal }), 'submit');
  }

  /** A job; `wait`: hold the answer up to this many seconds (at most 60) for it to finish. */
  async get(id: string, options: { wait?: number; signal?: AbortSignal } = {}): Promise<JobView> {
    const header = { Prefer: options.wait === undefined ? undefined : `wait=${Math.round(options.wait)}` };
    return this.must(await this.api.GET('/v1/jobs/{id}', { params: { path: { id }, header }, signal: options.signal }), `job ${id}`);
  }

  /** A page of the team's jobs, newest first (filters: status, task, createdFrom, createdBefore; pages: limit, after). */
  async list(query: JobListQuery = {}): Promise<JobList> {
    return this.must(await this.api.GET('/v1/jobs', { params: { query } }), 'jobs');
  }

  /** Every job matching `query`, page after page. */
  async *listAll(query: Omit<JobListQuery, 'after'> = {}): AsyncGenerator<JobView> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list({ ...query, ...(after ? { after } : {}) });
      yield* page.data;
      if (!page.hasMore || page.data.length === 0) return;
      after = page.data.at(-1)!.id;
    }
  }

  async cancel(id: string): Promise<JobView> {
    return this.must(await this.api.POST('/v1/jobs/{id}/cancel', { params: { path: { id } } }), `cancel ${id}`);
  }

  /** Deletes a finished job and its images. */
  async delete(id: string): Promise<void> {
    this.must(await this.api.DELETE('/v1/jobs/{id}', { params: { path: { id } } }), `delete ${id}`);
  }

  /**
   * The job once finished (succeeded, failed, canceled or expired), asking the API to hold each answer
   * (`Prefer: wait`, up to 60 s a request) until `timeoutMs` (default 10 min) has passed: then DimooTimeoutError.
   * Outages and limits (503, 429, a network error) are retried within the time.
   */
  async wait(id: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<JobView> {
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const t0 = Date.now();
      let job: JobView;
      try {
        job = await this.get(id, {
          wait: Math.min(MAX_PREFER_WAIT_S, Math.max(1, Math.ceil(left / 1000))),
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        if (!retryable(err) || Date.now() + retryDelayMs(err) >= deadline) throw err;
        await sleep(retryDelayMs(err), options.signal);
        continue;
      }
      if (isFinished(job)) return job;
      if (Date.now() >= deadline) throw new DimooTimeoutError(job, timeoutMs);
      // an answer that came back at once was not held (a proxy may drop Prefer): do not spin
      if (Date.now() - t0 < 200) await sleep(Math.min(500, deadline - Date.now()), options.signal);
    }
  }

  /**
   * The job's events as they happen (server-sent events): first its history (after `lastEventId`), then live ones,
   * until completed, failed, canceled or expired. A dropped connection is reopened with Last-Event-ID, so no event is
   * missed or repeated.
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<JobStreamEvent> {
    let last = options.lastEventId;
    let delayMs = options.reconnectDelayMs ?? 2000;
    let reconnects = 0;
    const maxReconnects = options.maxReconnects ?? 10;
    for (;;) {
      let body: ReadableStream<Uint8Array> | null = null;
      try {
        const r = await this.api.GET('/v1/jobs/{id}/events', {
          params: { path: { id }, header: { 'Last-Event-ID': last } },
          parseAs: 'stream',
          signal: options.signal,
        });
        body = this.must(r, `events of ${id}`);
      } catch (err) {
        if (options.signal?.aborted || !retryable(err) || ++reconnects > maxReconnects) throw err;
        await sleep(retryDelayMs(err) > 1000 ? retryDelayMs(err) : delayMs, options.signal);
        continue;
      }
      try {
        for await (const item of readEventStream(body!)) {
          if (item.kind === 'retry') {
            if (options.reconnectDelayMs === undefined) delayMs = item.ms;
            continue;
          }
          if (item.id !== undefined) last = item.id;
          if (!isStreamEvent(item.event)) continue;
          reconnects = 0;
          const event = { id: item.id ?? '', event: item.event, data: JSON.parse(item.data) as unknown } as JobStreamEvent;
          yield event;
          if (STREAM_EVENTS[event.event]) return;
        }
      } catch (err) {
        // a connection cut mid-stream: reconnect below (an abort ends the iteration with its reason)
        if (options.signal?.aborted) throw err;
      }
      if (++reconnects > maxReconnects) throw new Error(`the event stream of job ${id} ended ${maxReconnects} times in a row without news`);
      await sleep(delayMs, options.signal);
    }
  }

  /** The presigned URL of an image result (the API's 303), valid for a limited time. */
  async resultUrl(id: string): Promise<string> {
    const r = await this.api.GET('/v1/jobs/{id}/result', { params: { path: { id } }, redirect: 'manual', parseAs: 'arrayBuffer' });
    const location = r.response.headers.get('location');
    if (r.response.status !== 303 || !location) {
      if (!r.response.ok) throw failure(r.response, r.error, `result of ${id}`);
      throw new Error(`the result of job ${id} is not an image (${r.response.headers.get('content-type')})`);
    }
    return new URL(location, this.baseUrl).toString();
  }

  /**
   * A finished job's result: an image (the 303 followed to the object store with a plain request: the API key is never
   * sent there) or an answer's text. `stream`: the image through the API instead (`?stream=true`).
   */
  async downloadResult(id: string, options: { stream?: boolean; signal?: AbortSignal } = {}): Promise<Download> {
    const r = await this.api.GET('/v1/jobs/{id}/result', {
      params: { path: { id }, query: options.stream ? { stream: 'true' } : {} },
      redirect: 'manual',
      parseAs: 'arrayBuffer',
      signal: options.signal,
    });
    const location = r.response.headers.get('location');
    if (r.response.status === 303 && location) {
      const res = await this.fetchImpl(new URL(location, this.baseUrl), options.signal ? { signal: options.signal } : {});
      if (!res.ok) throw failure(res, await res.text(), `result of ${id} from the object store`);
      return { data: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type') ?? 'application/octet-stream' };
    }
    const data = this.must<ArrayBuffer>(r, `result of ${id}`);
    return { data: Buffer.from(data), contentType: r.response.headers.get('content-type') ?? 'application/octet-stream' };
  }

  /** A preview PNG of a running job (a preview event's step). */
  async preview(id: string, step: number): Promise<Buffer> {
    const r = await this.api.GET('/v1/jobs/{id}/previews/{step}', { params: { path: { id, step } }, parseAs: 'arrayBuffer' });
    return Buffer.from(this.must<ArrayBuffer>(r, `preview ${step} of ${id}`));
  }

  // ---- uploads ----

  /** Where to PUT one image (presigned, 15 min); `{ upload: id }` then stands for it in a job's image fields. */
  async createUpload(): Promise<Upload> {
    return this.must(await this.api.POST('/v1/uploads', { body: {} }), 'upload');
  }

  /**
   * Uploads an image straight to the object store (the API carries no bytes; the API key is not sent there) and gives
   * the reference to use in a job: `{ upload: id }`.
   */
  async upload(source: ImageSource): Promise<{ upload: string }> {
    const target = await this.createUpload();
    // a plain Uint8Array: a request body under the DOM's fetch types too (the dashboard type-checks this file)
    const data = new Uint8Array(await imageBytes(source));
    const res = await this.fetchImpl(target.url, { method: target.method, body: data, headers: { 'content-type': 'application/octet-stream' } });
    if (!res.ok) throw failure(res, await res.text(), 'upload to the object store');
    return { upload: target.id };
  }

  // ---- webhooks ----

  async webhookDeliveries(id: string): Promise<WebhookDeliveries> {
    return this.must(await this.api.GET('/v1/jobs/{id}/webhooks', { params: { path: { id } } }), `webhooks of ${id}`);
  }

  async webhookSecrets(): Promise<WebhookSecrets> {
    return this.must(await this.api.GET('/v1/webhooks/secrets'), 'webhook secrets');
  }

  /** A new signing secret; the old one keeps signing for `graceSeconds` (default 24 h). */
  async rotateWebhookSecret(graceSeconds?: number): Promise<RotatedWebhookSecret> {
    return this.must(await this.api.POST('/v1/webhooks/secrets/rotate', { body: graceSeconds === undefined ? {} : { graceSeconds } }), 'rotate webhook secret');
  }

  // ---- admin (a key with the admin scope) ----

  async createTeam(name: string): Promise<CreatedTeam> {
    return this.must(await this.api.POST('/v1/teams', { body: { name } }), 'create team');
  }

  async getTeam(teamId: string): Promise<Team> {
    return this.must(await this.api.GET('/v1/teams/{teamId}', { params: { path: { teamId } } }), `team ${teamId}`);
  }

  /** Weight and limits; a field left out keeps its value, null removes a limit. */
  async updateTeam(teamId: string, share: TeamShare): Promise<Team> {
    return this.must(await this.api.PATCH('/v1/teams/{teamId}', { params: { path: { teamId } }, body: share }), `update team ${teamId}`);
  }

  /** A new key (its plaintext is in this answer only); scopes submit and read unless given. */
  async createKey(teamId: string, key: CreateKey): Promise<CreatedKey> {
    return this.must(await this.api.POST('/v1/teams/{teamId}/keys', { params: { path: { teamId } }, body: key }), `create key of ${teamId}`);
  }

  async listKeys(teamId: string): Promise<KeyList> {
    return this.must(await this.api.GET('/v1/teams/{teamId}/keys', { params: { path: { teamId } } }), `keys of ${teamId}`);
  }

  /** A new key replacing `keyId`, which keeps working for `graceSeconds` (default 0: refused at once). */
  async rotateKey(teamId: string, keyId: string, graceSeconds?: number): Promise<RotatedKey> {
    const body = graceSeconds === undefined ? {} : { graceSeconds };
    return this.must(await this.api.POST('/v1/teams/{teamId}/keys/{keyId}/rotate', { params: { path: { teamId, keyId } }, body }), `rotate key ${keyId}`);
  }

  async revokeKey(teamId: string, keyId: string): Promise<void> {
    this.must(await this.api.DELETE('/v1/teams/{teamId}/keys/{keyId}', { params: { path: { teamId, keyId } } }), `revoke key ${keyId}`);
  }

  /** The admins' audit log, newest first (`before`: the previous page's last id). */
  async audit(query: AuditQuery = {}): Promise<AuditPage> {
    return this.must(await this.api.GET('/v1/audit', { params: { query } }), 'audit log');
  }

  // ---- health ----

  /** Whether the API process answers: `GET /healthz`. */
  async health(): Promise<Health> {
    return this.must(await this.api.GET('/healthz'), 'health');
  }

  /** Whether the API and what it needs (Redis, Postgres, object storage) answer: `GET /readyz`. */
  async ready(): Promise<Readiness> {
    const r = await this.api.GET('/readyz');
    if (r.response.status === 503 && r.error) return r.error;
    return this.must(r, 'readiness');
  }
}

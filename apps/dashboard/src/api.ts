/**
 * The dashboard's one door to the API: an admin key (Authorization: Bearer, never a cookie or a URL) and the SDK's
 * client, typed from docs/openapi.json (`paths`), for every route: its methods where it has one, `sdk.api` (openapi-fetch)
 * for the admin routes. Any 401 or 403 ends the session: the sign-in page says why.
 */
import { SUBMIT_AS_HEADER } from '@dimoo/contracts';
import type { components, paths } from '@dimoo/sdk';
import { DimooClient, DimooError } from '@dimoo/sdk';

type Schemas = components['schemas'];
export type JobView = Schemas['JobView'];
export type JobRequest = Schemas['JobRequest'];
export type Team = Schemas['Team'];
export type TeamShare = Schemas['TeamShare'];
export type KeyView = Schemas['KeyList']['data'][number];
export type Problem = Schemas['Problem'];
export type JobStatus = JobView['status'];
export type AdminJob = Schemas['AdminJob'];
export type AdminJobDetail = Schemas['AdminJobDetail'];
export type AdminStats = Schemas['AdminStats'];
export type WorkerView = Schemas['WorkerList']['items'][number];
export type UsageRow = Schemas['Usage']['items'][number];
export type QueueItem = Schemas['QueueItem'];
export type QueueCounts = QueueItem['counts'];
export type JobEventRecord = AdminJobDetail['events'][number];
/** `GET /v1/admin/jobs`'s query (status and task comma-separated). */
export type AdminJobFilters = NonNullable<paths['/v1/admin/jobs']['get']['parameters']['query']>;
type BatchQuery = NonNullable<paths['/v1/admin/batches']['get']['parameters']['query']>;

const isProblem = (e: unknown): e is Problem => typeof e === 'object' && e !== null && 'status' in e && 'title' in e;

/** A refused or failed request as the SDK reports one (its problem+json kept). */
function failure(response: Response, error: unknown, what: string): DimooError {
  const problem = isProblem(error) ? error : null;
  const detail = problem ? `${problem.title}: ${problem.detail}` : typeof error === 'string' && error ? error.slice(0, 200) : response.statusText;
  return new DimooError(response.status, problem, null, `${what}: ${response.status} ${detail}`);
}

/** An openapi-fetch answer's data, or its problem as a DimooError. */
function must<T>(r: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (!r.response.ok) throw failure(r.response, r.error, what);
  return r.data as T;
}

/** What to tell a person about an error: the problem's detail and each refused field. */
export function errorMessage(err: unknown): string {
  if (err instanceof DimooError && err.problem) {
    const fields = err.problem.errors?.map((e) => `${e.field}: ${e.reason}`) ?? [];
    return fields.length > 0 ? `${err.problem.title}: ${fields.join('; ')}` : `${err.problem.title}: ${err.problem.detail}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export class Session {
  /** The SDK over this session's fetch. */
  readonly sdk: DimooClient;

  constructor(
    readonly key: string,
    /** called once the API refuses the key (401) or its scope (403): the session is over */
    private readonly denied: (message: string) => void,
  ) {
    this.sdk = new DimooClient({ baseUrl: window.location.origin, apiKey: key, fetch: this.fetch });
  }

  /** fetch with the key; a 401 or 403 ends the session. */
  private readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const res = await window.fetch(input, init);
    if (res.status === 401 || res.status === 403) {
      const body: unknown = await res
        .clone()
        .json()
        .catch(() => null);
      const detail = isProblem(body) ? body.detail : 'forbidden';
      this.denied(res.status === 401 ? 'The API refused this key (401): sign in again.' : `This key may not do that (403): ${detail}.`);
    }
    return res;
  };

  private get api() {
    return this.sdk.api;
  }

  /** An image the API holds as an object URL: fetched with the key, never put in a URL (revoke it when done). */
  private static objectUrl(r: { data?: Blob; error?: unknown; response: Response }, what: string): string {
    return URL.createObjectURL(must(r, what));
  }

  async previewUrl(id: string, step: number): Promise<string> {
    return Session.objectUrl(await this.api.GET('/v1/jobs/{id}/previews/{step}', { params: { path: { id, step } }, parseAs: 'blob' }), `preview ${step}`);
  }

  /** A result image, through the API (`stream=true`: the object store's presigned URL would need its own CORS). */
  async resultUrl(id: string, index = 0): Promise<string> {
    const r = await this.api.GET('/v1/jobs/{id}/result', { params: { path: { id }, query: { stream: 'true', index } }, parseAs: 'blob' });
    return Session.objectUrl(r, `result of ${id}`);
  }

  // ---- the admin routes ----

  teams = async () => must(await this.api.GET('/v1/teams'), 'teams');
  stats = async (minutes = 60) => must(await this.api.GET('/v1/admin/stats', { params: { query: { minutes } } }), 'stats');
  jobs = async (query: AdminJobFilters) => must(await this.api.GET('/v1/admin/jobs', { params: { query } }), 'jobs');
  job = async (id: string) => must(await this.api.GET('/v1/admin/jobs/{id}', { params: { path: { id } } }), `job ${id}`);
  retry = async (id: string) => must(await this.api.POST('/v1/admin/jobs/{id}/retry', { params: { path: { id } } }), `retry ${id}`);
  queues = async () => must(await this.api.GET('/v1/admin/queues'), 'queues');
  setQueuePaused = async (name: string, paused: boolean) =>
    must(
      paused
        ? await this.api.POST('/v1/admin/queues/{name}/pause', { params: { path: { name } } })
        : await this.api.POST('/v1/admin/queues/{name}/resume', { params: { path: { name } } }),
      `${paused ? 'pause' : 'resume'} ${name}`,
    );
  boardSession = async () => must(await this.api.POST('/v1/admin/board-session'), 'board session');
  batches = async (query: BatchQuery = {}) => must(await this.api.GET('/v1/admin/batches', { params: { query } }), 'batches');
  workers = async () => must(await this.api.GET('/v1/admin/workers'), 'workers');
  usage = async (days = 14) => must(await this.api.GET('/v1/admin/usage', { params: { query: { days } } }), 'usage');

  /** Submits a job as `teamId` (an admin key's playground: X-Dimoo-Team). */
  submitAs = async (teamId: string, request: JobRequest) =>
    must(await this.api.POST('/v1/jobs', { body: request, params: { header: { [SUBMIT_AS_HEADER]: teamId } } }), 'submit');
}

/** A batch record as the list answers it (openapi-fetch's type of the answer). */
export type BatchView = Awaited<ReturnType<Session['batches']>>['items'][number];

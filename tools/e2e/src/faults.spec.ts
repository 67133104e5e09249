/**
 * Faults between the services and their stores (issue 11): a TCP fault proxy sits in front of Postgres, Redis and the
 * S3 server of this platform; the services reach their stores only through it, the test keeps direct access.
 * Every state conflict is a 409 and every unknown id a 404; an outage at submit is a 503 with Retry-After that leaves
 * no object behind.
 */
import type { JobView } from '@dimoo/contracts';
import { encodePng } from '@dimoo/model';
import type { ObjectStore } from '@dimoo/storage';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformStore, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

let p: Platform;
let worker: WorkerProcess;
let key: string;
let teamId: string;
let store: ObjectStore;

async function call(method: string, path: string, k: string | null, body?: unknown): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { ...(k ? { authorization: `Bearer ${k}` } : {}), 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

async function problem(res: Response): Promise<{ status: number; type: string; contentType: string | null; retryAfter: string | null }> {
  const body = (await res.json()) as { status: number; type: string };
  return { status: body.status, type: body.type, contentType: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after') };
}

async function finished(id: string): Promise<JobView> {
  for (const t0 = Date.now(); Date.now() - t0 < 90_000; await sleep(100)) {
    const j = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;
    if (['succeeded', 'failed', 'canceled'].includes(j.status)) return j;
  }
  throw new Error(`job ${id} did not finish:\n${worker.output.join('')}`);
}

const png = async (size: number, white: boolean) =>
  (await encodePng({ width: size, height: size, data: new Uint8Array(size * size * 3).fill(white ? 255 : 0) })).toString('base64');

beforeAll(async () => {
  p = await startPlatform({ faults: true, apiEnv: { DATABASE_TIMEOUT_MS: '1500' } });
  worker = new WorkerProcess(p.workerEnv);
  const team = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'faults' })).json()) as { id: string };
  teamId = team.id;
  key = ((await (await call('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'k' })).json()) as { key: string }).key;
  store = platformStore(p);
  await worker.ready();
}, 120_000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await p?.close();
});

describe('state conflicts and unknown ids', () => {
  it('answer 409 and 404 as problem+json on every route, never 500', async () => {
    const done = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 1 })).json()) as JobView;
    expect((await finished(done.id)).status).toBe('succeeded');
    const unknown = '00000000-0000-4000-8000-000000000000';
    const cases: [string, string, string | null, unknown, number][] = [
      ['POST', `/v1/jobs/${done.id}/cancel`, key, undefined, 409], // cancel a finished job
      ['POST', '/v1/teams', ADMIN_KEY, { name: 'faults' }, 409], // a team name taken
      ['POST', `/v1/teams/${unknown}/keys`, ADMIN_KEY, { name: 'k' }, 404], // keys for an unknown team
      ['POST', '/v1/teams/not-a-uuid/keys', ADMIN_KEY, { name: 'k' }, 404],
      ['GET', `/v1/jobs/${unknown}`, key, undefined, 404],
      ['GET', '/v1/jobs/not-a-uuid', key, undefined, 404],
      ['GET', `/v1/jobs/${unknown}/result`, key, undefined, 404],
      ['GET', `/v1/jobs/${unknown}/events`, key, undefined, 404],
      ['GET', `/v1/jobs/${unknown}/previews/8`, key, undefined, 404],
      ['GET', `/v1/jobs/${done.id}/previews/9`, key, undefined, 404], // no preview was stored for that step
      ['POST', `/v1/jobs/${unknown}/cancel`, key, undefined, 404],
    ];
    for (const [method, path, k, body, status] of cases) {
      const res = await call(method, path, k, body);
      expect({ method, path, status: res.status, type: res.headers.get('content-type') }).toEqual({
        method,
        path,
        status,
        type: expect.stringContaining('application/problem+json'),
      });
    }
    // a queued job's result is not ready: 409
    p.faults!.redis.set({ kind: 'reset' }); // keeps it queued: Redis refuses, the outbox holds it
    const queued = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 2 })).json()) as JobView;
    expect((await call('GET', `/v1/jobs/${queued.id}/result`, key)).status).toBe(409);
    p.faults!.redis.set({ kind: 'pass' });
    expect((await finished(queued.id)).status).toBe('succeeded');
  });
});

describe('Postgres unreachable at submit', () => {
  it('answers 503 with Retry-After (reset connections, and a server that never answers), and leaves no input object', async () => {
    // the key is known to the API (a verified key is remembered): the request gets past auth and uploads its inputs
    expect((await call('GET', `/v1/jobs/00000000-0000-4000-8000-000000000000`, key)).status).toBe(404);
    const paint = { task: 'paint', prompt: 'a blue square', image: await png(128, false), mask: await png(128, true), seed: 3 };
    const before = await store.list(`teams/${teamId}/`);
    for (const kind of ['reset', 'blackhole'] as const) {
      const t0 = Date.now();
      const res = await p.faults!.postgres.during({ kind }, () => call('POST', '/v1/jobs', key, paint));
      expect(await problem(res)).toEqual({
        status: 503,
        type: 'about:blank#database-unavailable',
        contentType: expect.stringContaining('application/problem+json'),
        retryAfter: '5',
      });
      expect(Date.now() - t0).toBeLessThan(10_000); // DATABASE_TIMEOUT_MS (1.5 s here), not a hang
    }
    // the inputs uploaded before the row failed were removed again
    expect((await store.list(`teams/${teamId}/`)).map((o) => o.key).sort()).toEqual(before.map((o) => o.key).sort());
    // and the same request goes through once Postgres is back
    const ok = await call('POST', '/v1/jobs', key, paint);
    expect(ok.status).toBe(202);
    expect((await finished(((await ok.json()) as JobView).id)).status).toBe('succeeded');
  });

  it('an unknown key while Postgres is down: 503, not 401 and not 500', async () => {
    const res = await p.faults!.postgres.during({ kind: 'reset' }, () =>
      call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', `dimoo_${'x'.repeat(32)}`),
    );
    expect(await problem(res)).toMatchObject({ status: 503, retryAfter: '5' });
  });
});

describe('storage unreachable at submit', () => {
  it('answers 503 with Retry-After and records nothing', async () => {
    const paint = { task: 'paint', prompt: 'a blue square', image: await png(128, false), mask: await png(128, true), seed: 4 };
    const res = await p.faults!.s3.during({ kind: 'reset' }, () => call('POST', '/v1/jobs', key, paint));
    expect(await problem(res)).toMatchObject({ status: 503, type: 'about:blank#storage-unavailable', retryAfter: '5' });
  });
});

describe('the worker rides out short outages without a new attempt or a second sampling', () => {
  let one: WorkerProcess;
  beforeAll(async () => {
    await worker.kill('SIGKILL');
    // one batch slot: a second job waits in Redis while the first runs
    one = new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '1', LOCK_DURATION_MS: '30000' });
    await one.ready();
  });
  afterAll(() => one.kill('SIGKILL'));

  const running = async (id: string) => {
    for (let j = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView; j.status !== 'running' || j.step === 0; await sleep(20)) {
      j = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;
      if (j.status === 'running' && j.step > 0) break;
    }
  };

  it('storage down 5 s while a result uploads and the next job downloads its input', async () => {
    const long = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 5, steps: 96, cfg: 1 })).json()) as JobView;
    await running(long.id);
    const edit = { task: 'i2i', prompt: 'make it blue', editType: 'edit', images: [await png(128, false)], seed: 6 };
    const next = (await (await call('POST', '/v1/jobs', key, edit)).json()) as JobView;
    const logged = one.output.length;
    p.faults!.s3.set({ kind: 'reset' });
    await sleep(5000);
    p.faults!.s3.set({ kind: 'pass' });
    const [a, b] = [await finished(long.id), await finished(next.id)];
    expect([a.status, a.attempts, b.status, b.attempts]).toEqual(['succeeded', 1, 'succeeded', 1]);
    // the outage was seen and waited out, not skipped: the worker retried storage
    expect(one.output.slice(logged).join('')).toMatch(/storage unavailable \(try \d/);
    for (const j of [a, b]) expect((await call('GET', `/v1/jobs/${j.id}/result`, key)).status).toBe(200);
  });

  it('Postgres down 5 s mid-job: progress is skipped, the result is recorded once Postgres is back', async () => {
    const job = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a green square', seed: 7, steps: 64, cfg: 1 })).json()) as JobView;
    await running(job.id);
    const logged = one.output.length;
    await p.faults!.postgres.during({ kind: 'reset' }, () => sleep(5000));
    const final = await finished(job.id);
    expect([final.status, final.attempts]).toEqual(['succeeded', 1]);
    expect(one.output.slice(logged).join('')).toMatch(/database unavailable \(try \d|progress of/);
  });
});

describe('the engine thread dies', () => {
  beforeAll(() => worker.kill('SIGKILL')); // only the doomed worker may take the job

  it('ends its worker non-zero; the job is retried on another worker and succeeds', async () => {
    const doomed = new WorkerProcess({ ...p.workerEnv, FAULT_ENGINE_EXIT_AFTER_STEPS: '5' });
    await doomed.ready();
    const job = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a purple triangle', seed: 8, steps: 64 })).json()) as JobView;
    expect(await doomed.exited()).toBe(1);
    expect(doomed.output.join('')).toContain('engine thread exited with code 70: stopping');
    const healthy = new WorkerProcess(p.workerEnv);
    try {
      await healthy.ready();
      const final = await finished(job.id);
      expect([final.status, final.attempts]).toEqual(['succeeded', 2]);
    } finally {
      await healthy.kill('SIGKILL');
    }
  });
});

/**
 * Many teams on one fleet, through the HTTP API (issue 12): fair share before a worker holds a job, priority within a
 * team, quotas (429 with RateLimit headers) and the queue cap (503), a key revoked on one API process refused on a
 * second at once, and job events pushed to SSE clients (the poll interval is 10 s here: only push can be fast).
 */
import type { JobView } from '@dimoo/contracts';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, ApiProcess, freePort, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import { FairQueue, redisOptions } from '@dimoo/queue';
import { Redis } from 'ioredis';

let p: Platform;
let redis: Redis;

async function call(method: string, path: string, k: string, body?: unknown, base = p.url): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

async function team(name: string, share?: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const t = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name })).json()) as { id: string };
  if (share) expect((await call('PATCH', `/v1/teams/${t.id}`, ADMIN_KEY, share)).status).toBe(200);
  const k = (await (await call('POST', `/v1/teams/${t.id}/keys`, ADMIN_KEY, { name: 'k' })).json()) as { id: string; key: string };
  return { id: t.id, key: k.key };
}

const job = (seed: number, extra: Record<string, unknown> = {}) => ({ task: 't2i', prompt: 'a red circle', seed, steps: 4, ...extra });

async function submit(key: string, body: unknown): Promise<JobView> {
  const res = await call('POST', '/v1/jobs', key, body);
  expect(res.status).toBe(202);
  return (await res.json()) as JobView;
}

async function finished(key: string, ids: string[], timeoutMs = 120_000): Promise<JobView[]> {
  const t0 = Date.now();
  for (;;) {
    const views = await Promise.all(ids.map(async (id) => (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView));
    if (views.every((v) => ['succeeded', 'failed', 'canceled'].includes(v.status))) return views;
    if (Date.now() - t0 > timeoutMs) throw new Error(`jobs not finished: ${views.map((v) => v.status).join(',')}`);
    await sleep(200);
  }
}

beforeAll(async () => {
  // BullMQ holds at most 1 waiting job; the quotas' refusals are what these tests look at
  p = await startPlatform({ apiEnv: { DISPATCH_AHEAD: '1', MAX_QUEUED_JOBS: '40', EVENTS_POLL_MS: '10000', API_KEY_CACHE_MS: '60000' } });
  redis = new Redis(redisOptions(p.env['REDIS_URL']!, { offlineQueue: true }));
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await p?.close();
});

describe('fair share and priority, before a worker holds a job', () => {
  it('starts jobs in weighted round robin across teams, by priority within a team', async () => {
    const a = await team('fair-a');
    const b = await team('fair-b', { weight: 2 });
    // no worker yet: everything waits (one job already in BullMQ, the prefetch)
    const first = await submit(a.key, job(1));
    // a1 alone moves to BullMQ and a's queue empties, so a starts a fresh round; had a2 arrived before that pass, a1
    // would have spent a's turn and b would go first (also fair, but another order)
    const fair = new FairQueue(redis, p.env['QUEUE_PREFIX']!, 1);
    for (const t0 = Date.now(); (await fair.waitingOf([first.id])).size > 0; await sleep(10)) expect(Date.now() - t0).toBeLessThan(5000);
    const aJobs = [await submit(a.key, job(2)), await submit(a.key, job(3)), await submit(a.key, job(4)), await submit(a.key, job(5))];
    const urgent = await submit(a.key, job(6, { priority: 'high' }));
    const bJobs = [await submit(b.key, job(7)), await submit(b.key, job(8)), await submit(b.key, job(9)), await submit(b.key, job(10))];
    const worker = new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '1', DISPATCH_AHEAD: '1' });
    try {
      await worker.ready();
      const views = [
        ...(await finished(a.key, [first.id, urgent.id, ...aJobs.map((j) => j.id)])),
        ...(await finished(
          b.key,
          bJobs.map((j) => j.id),
        )),
      ];
      const order = views.sort((x, y) => Date.parse(x.startedAt!) - Date.parse(y.startedAt!)).map((v) => v.id);
      const name = new Map([
        [first.id, 'a1'],
        [urgent.id, 'a!'],
        ...aJobs.map((j, i) => [j.id, `a${i + 2}`] as const),
        ...bJobs.map((j, i) => [j.id, `b${i + 1}`] as const),
      ]);
      // a1 was already in BullMQ; then a's high-priority job first within a, and b (weight 2) twice per turn of a
      expect(order.map((id) => name.get(id))).toEqual(['a1', 'a!', 'b1', 'b2', 'a2', 'b3', 'b4', 'a3', 'a4', 'a5']);
    } finally {
      await worker.kill('SIGTERM');
    }
  }, 180_000);
});

describe('push', () => {
  it('delivers job events to an SSE client by push (the poll runs every 10 s here)', async () => {
    const t = await team('push');
    const worker = new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '2' });
    try {
      await worker.ready();
      const view = await submit(t.key, job(200, { steps: 8 }));
      const res = await fetch(`${p.url}/v1/jobs/${view.id}/events`, { headers: { authorization: `Bearer ${t.key}` } });
      const reader = res.body!.getReader();
      let text = '';
      const t0 = Date.now();
      while (!text.includes('event: completed') && Date.now() - t0 < 8000) {
        const { value, done } = await Promise.race([reader.read(), sleep(8000).then(() => ({ value: undefined, done: true }))]);
        if (value) text += Buffer.from(value).toString();
        if (done) break;
      }
      await reader.cancel().catch(() => undefined);
      expect(text).toContain('event: started');
      expect(text).toContain('event: completed');
      expect(Date.now() - t0).toBeLessThan(8000);
    } finally {
      await worker.kill('SIGTERM');
    }
  }, 60_000);
});

describe('quotas and backpressure', () => {
  it('answers 429 with Retry-After and RateLimit headers over the submission rate', async () => {
    const t = await team('rate', { submitsPerMinute: 2 });
    const ok = await call('POST', '/v1/jobs', t.key, job(20));
    expect(ok.status).toBe(202);
    expect(ok.headers.get('ratelimit-policy')).toBe('"submits";q=2;w=60');
    expect(ok.headers.get('ratelimit')).toMatch(/^"submits";r=1;t=\d+$/);
    expect((await call('POST', '/v1/jobs', t.key, job(21))).status).toBe(202);
    const refused = await call('POST', '/v1/jobs', t.key, job(22));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('ratelimit')).toMatch(/^"submits";r=0;t=\d+$/);
    expect(((await refused.json()) as { type: string }).type).toContain('rate-limited');
    // the admin lifts the limit: effective at once
    expect((await call('PATCH', `/v1/teams/${t.id}`, ADMIN_KEY, { submitsPerMinute: null })).status).toBe(200);
    expect((await call('POST', '/v1/jobs', t.key, job(23))).status).toBe(202);
  });

  it("answers 429 over a team's waiting jobs and admits again once they start", async () => {
    const t = await team('queued', { maxQueued: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 8 && ids.length < 20; i++) {
      const res = await call('POST', '/v1/jobs', t.key, job(30 + i));
      if (res.status === 429) {
        expect(((await res.json()) as { type: string }).type).toContain('team-queue-full');
        expect(res.headers.get('retry-after')).toBeTruthy();
        break;
      }
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as JobView).id);
    }
    expect(ids.length).toBeLessThanOrEqual(4); // 2 waiting + what BullMQ and the previous test's jobs hold
    const worker = new WorkerProcess({ ...p.workerEnv, DISPATCH_AHEAD: '1' });
    try {
      await worker.ready();
      await finished(t.key, ids);
      expect((await call('POST', '/v1/jobs', t.key, job(50))).status).toBe(202);
    } finally {
      await worker.kill('SIGTERM');
    }
  }, 180_000);

  it('answers 503 with Retry-After once the queue holds MAX_QUEUED_JOBS', async () => {
    const t = await team('flood');
    let status = 202;
    let n = 0;
    for (; n < 60 && status === 202; n++) {
      const res = await call('POST', '/v1/jobs', t.key, job(100 + n));
      status = res.status;
      if (status === 503) {
        expect(res.headers.get('retry-after')).toBeTruthy();
        expect(((await res.json()) as { type: string }).type).toContain('queue-full');
      }
    }
    expect(status).toBe(503);
    expect(n).toBeLessThanOrEqual(45);
  });

  it('refuses unknown fields and out-of-range values in team settings', async () => {
    const t = await team('settings');
    const bad = await call('PATCH', `/v1/teams/${t.id}`, ADMIN_KEY, { weight: 0, maxRunning: 1.5, colour: 'red' });
    expect(bad.status).toBe(400);
    const fields = ((await bad.json()) as { errors: { field: string }[] }).errors.map((e) => e.field).sort();
    expect(fields).toEqual(['colour', 'maxRunning', 'weight']);
    expect((await call('PATCH', `/v1/teams/00000000-0000-4000-8000-000000000000`, ADMIN_KEY, { weight: 2 })).status).toBe(404);
    expect((await call('PATCH', `/v1/teams/${t.id}`, t.key, { weight: 2 })).status).toBe(403);
  });
});

describe('keys', () => {
  it('a key revoked through one API process is refused by another at once (its cache is told through Redis)', async () => {
    const t = await team('revoke');
    const port2 = await freePort();
    const second = new ApiProcess({ ...p.env, PORT: String(port2) });
    await second.ready();
    const url2 = `http://127.0.0.1:${port2}`;
    try {
      // both processes have verified (and remember, for 60 s here) the key
      expect((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', t.key)).status).toBe(404);
      expect((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', t.key, undefined, url2)).status).toBe(404);
      const keys = (await (await call('POST', `/v1/teams/${t.id}/keys`, ADMIN_KEY, { name: 'second' })).json()) as { id: string; key: string };
      expect((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', keys.key, undefined, url2)).status).toBe(404);
      expect((await call('DELETE', `/v1/teams/${t.id}/keys/${keys.id}`, ADMIN_KEY)).status).toBe(204);
      expect((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', keys.key)).status).toBe(401);
      const t0 = Date.now();
      while ((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', keys.key, undefined, url2)).status !== 401) {
        expect(Date.now() - t0).toBeLessThan(2000); // the cache would keep it 60 s
        await sleep(20);
      }
      // the other key of the team still works on both
      expect((await call('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', t.key, undefined, url2)).status).toBe(404);
      expect((await call('DELETE', `/v1/teams/${t.id}/keys/00000000-0000-4000-8000-000000000000`, ADMIN_KEY)).status).toBe(404);
    } finally {
      await second.kill('SIGTERM');
    }
  });
});

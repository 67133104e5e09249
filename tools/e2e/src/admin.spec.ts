/**
 * The admin contract through HTTP (docs/api.md, "Admin"): the teams list; an admin-scoped key on any team's job through
 * the team routes; submitting as a team (X-Dimoo-Team) and its audit entry; every team's jobs listed, filtered and
 * detailed; retries of jobs that ended without a result; pausing and resuming the generation queue; and the read-only
 * queue board behind its one-time link.
 */
import type { AdminJob, AdminJobDetail, AdminJobPage, AuditEntrySchema, JobView, QueueItem } from '@dimoo/contracts';
import { createPrisma, JobRepository, type PrismaClient } from '@dimoo/db';
import { encodePng } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformStore, platformTeam, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import { jobObjectsPrefix } from '@dimoo/storage';
import type { z } from 'zod';

let p: Platform;
let prisma: PrismaClient;
let worker: WorkerProcess;
let a: { id: string; key: string };
let b: { id: string; key: string };
/** a key of team C with the admin scope: admin-scoped keys see every team's jobs, whatever their own team */
let bAdmin: string;
let teamC: string;
type AuditEntry = z.infer<typeof AuditEntrySchema>;
const GENERATION = 'dimoo-generation';

async function call(method: string, path: string, key: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    redirect: 'manual',
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}
async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`${res.url}: ${res.status} (expected ${status}) ${text}`);
  return JSON.parse(text) as T;
}
const fields = async (res: Response) => ((await res.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];

const t2i = (seed: number) => ({ task: 't2i', prompt: 'a red circle', seed, steps: 4 });
const submit = async (key: string, body: unknown = t2i(1), headers: Record<string, string> = {}) =>
  json<JobView>(await call('POST', '/v1/jobs', key, body, headers), 202);

async function until(id: string, done: (j: JobView) => boolean, timeoutMs = 30_000): Promise<JobView> {
  for (const t0 = Date.now(); ; await sleep(100)) {
    const job = await json<JobView>(await call('GET', `/v1/jobs/${id}`, ADMIN_KEY), 200);
    if (done(job)) return job;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} is ${job.status}`);
  }
}
const finished = (j: JobView) => !['queued', 'running'].includes(j.status);

const setPaused = async (paused: boolean) =>
  json<QueueItem>(await call('POST', `/v1/admin/queues/${GENERATION}/${paused ? 'pause' : 'resume'}`, ADMIN_KEY), 200);
/** Runs `fn` while workers take nothing: the jobs it submits stay queued. */
async function whilePaused<T>(fn: () => Promise<T>): Promise<T> {
  await setPaused(true);
  try {
    return await fn();
  } finally {
    await setPaused(false);
  }
}
async function audit(action: string): Promise<AuditEntry[]> {
  const page = await json<{ data: AuditEntry[] }>(await call('GET', '/v1/audit?limit=500', ADMIN_KEY), 200);
  return page.data.filter((e) => e.action === action);
}

beforeAll(async () => {
  p = await startPlatform();
  prisma = createPrisma(p.db.url);
  worker = new WorkerProcess(p.workerEnv);
  [a, b] = await Promise.all([platformTeam(p, 'admin-a'), platformTeam(p, 'admin-b'), worker.ready()]);
  const c = await platformTeam(p, 'admin-c', ['submit', 'read', 'admin']);
  [bAdmin, teamC] = [c.key, c.id];
}, 120_000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await prisma?.$disconnect();
  await p?.close();
});

describe('GET /v1/teams', () => {
  it('lists every team ordered by name, for admin keys only', async () => {
    const { items } = await json<{ items: { id: string; name: string; weight: number }[] }>(await call('GET', '/v1/teams', ADMIN_KEY), 200);
    expect(items.map((t) => t.name)).toEqual(['admin-a', 'admin-b', 'admin-c']);
    expect(items[0]).toEqual({ id: a.id, name: 'admin-a', weight: 1, maxQueued: null, maxRunning: null, submitsPerMinute: null });
    expect((await call('GET', '/v1/teams', a.key)).status).toBe(403);
  });
});

describe("an admin-scoped key on any team's job", () => {
  it('reads, downloads, follows and deletes it through the team routes; other teams still see nothing', async () => {
    const job = await submit(a.key, t2i(2));
    expect((await until(job.id, finished)).status).toBe('succeeded');
    for (const key of [ADMIN_KEY, bAdmin]) {
      expect((await json<JobView>(await call('GET', `/v1/jobs/${job.id}`, key), 200)).id).toBe(job.id);
      const image = await call('GET', `/v1/jobs/${job.id}/result?stream=true`, key);
      expect(image.status).toBe(200);
      expect(image.headers.get('content-type')).toBe('image/png');
      expect((await image.arrayBuffer()).byteLength).toBeGreaterThan(0);
      expect((await call('GET', `/v1/jobs/${job.id}/result`, key)).status).toBe(303);
      const events = await call('GET', `/v1/jobs/${job.id}/events`, key);
      expect(await events.text()).toContain('event: completed');
    }
    // a team key without the admin scope: another team's job does not exist
    expect((await call('GET', `/v1/jobs/${job.id}`, b.key)).status).toBe(404);
    expect((await call('DELETE', `/v1/jobs/${job.id}`, b.key)).status).toBe(404);
    expect((await call('DELETE', `/v1/jobs/${job.id}`, ADMIN_KEY)).status).toBe(204);
    expect((await call('GET', `/v1/jobs/${job.id}`, a.key)).status).toBe(404);
    expect(await platformStore(p).list(jobObjectsPrefix(a.id, job.id))).toEqual([]);
  });
});

describe('X-Dimoo-Team', () => {
  it('submits as the team with an admin-scoped key, audited job.submit_as; refused from a team key (403) or for an unknown team (404)', async () => {
    const job = await submit(ADMIN_KEY, t2i(3), { 'X-Dimoo-Team': a.id });
    expect((await json<JobView>(await call('GET', `/v1/jobs/${job.id}`, a.key), 200)).id).toBe(job.id);
    expect((await prisma.job.findUniqueOrThrow({ where: { id: job.id } })).teamId).toBe(a.id);
    const entry = (await audit('job.submit_as')).find((e) => e.target.id === job.id);
    expect(entry).toMatchObject({ actor: 'bootstrap', target: { type: 'job', id: job.id }, details: { teamId: a.id, jobId: job.id } });
    // a team key with the admin scope may submit for another team too
    const asB = await submit(bAdmin, t2i(4), { 'X-Dimoo-Team': b.id });
    expect((await call('GET', `/v1/jobs/${asB.id}`, b.key)).status).toBe(200);

    const forbidden = await call('POST', '/v1/jobs', b.key, t2i(5), { 'X-Dimoo-Team': a.id });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect((await call('POST', '/v1/uploads', b.key, {}, { 'X-Dimoo-Team': a.id })).status).toBe(403);
    expect((await call('POST', '/v1/jobs', ADMIN_KEY, t2i(5), { 'X-Dimoo-Team': '00000000-0000-4000-8000-000000000000' })).status).toBe(404);
    const bad = await call('POST', '/v1/jobs', ADMIN_KEY, t2i(5), { 'X-Dimoo-Team': 'research' });
    expect(bad.status).toBe(400);
    expect(await fields(bad)).toEqual(['X-Dimoo-Team']);
    // without the header the bootstrap key has no team to submit for
    expect((await call('POST', '/v1/jobs', ADMIN_KEY, t2i(5))).status).toBe(403);

    const upload = await json<{ id: string; url: string }>(await call('POST', '/v1/uploads', ADMIN_KEY, {}, { 'X-Dimoo-Team': a.id }), 201);
    expect(decodeURIComponent(upload.url)).toContain(`teams/${a.id}/uploads/${upload.id}`);
    expect((await audit('upload.submit_as')).map((e) => e.target.id)).toContain(upload.id);
    await until(job.id, finished);
    await until(asB.id, finished);
  });
});

describe('GET /v1/admin/jobs', () => {
  it("lists every team's jobs newest first, filtered by team, status and id prefix, in pages; refuses bad filters by name", async () => {
    const [first, canceled] = await whilePaused(async () => {
      const one = await submit(b.key, t2i(6));
      const two = await submit(b.key, t2i(7));
      expect((await call('POST', `/v1/jobs/${two.id}/cancel`, ADMIN_KEY)).status).toBe(202);
      return [one, two];
    });
    const page = async (query: string) => json<AdminJobPage>(await call('GET', `/v1/admin/jobs?${query}`, ADMIN_KEY), 200);

    const ofB = await page(`teamId=${b.id}`);
    expect(ofB.items.every((j) => j.teamId === b.id && j.teamName === 'admin-b')).toBe(true);
    expect(ofB.items.slice(0, 2).map((j) => j.id)).toEqual([canceled.id, first.id]);
    expect(ofB.items[0]).toMatchObject({ status: 'canceled', apiKeyId: expect.any(String), retryOf: null });
    expect((await page(`teamId=${b.id}&status=canceled`)).items.map((j) => j.id)).toEqual([canceled.id]);
    expect((await page(`status=queued,canceled&task=t2i&teamId=${b.id}`)).items.map((j) => j.id)).toContain(canceled.id);
    expect((await page('task=mmu')).items).toEqual([]);
    expect((await page(`q=${first.id.slice(0, 8)}`)).items.map((j) => j.id)).toContain(first.id);
    expect((await page(`q=${first.id.slice(0, 13).toUpperCase()}`)).items.map((j) => j.id)).toEqual([first.id]);
    expect((await page(`q=${first.id}&teamId=${a.id}`)).items).toEqual([]);
    expect((await page(`until=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`)).items).toEqual([]);

    const seen: string[] = [];
    let next: string | null = '/v1/admin/jobs?limit=2';
    while (next) {
      const got: AdminJobPage = await json<AdminJobPage>(await call('GET', next, ADMIN_KEY), 200);
      expect(got.items.length).toBeLessThanOrEqual(2);
      seen.push(...got.items.map((j) => j.id));
      next = got.next;
    }
    expect(seen).toEqual((await page('limit=100')).items.map((j) => j.id));
    expect(new Set(seen).size).toBe(seen.length);

    for (const [query, field] of [
      ['status=done', 'status'],
      ['teamId=research', 'teamId'],
      ['q=xyz', 'q'],
      ['since=yesterday', 'since'],
      ['limit=0', 'limit'],
      ['sort=asc', 'sort'],
    ] as const) {
      const res = await call('GET', `/v1/admin/jobs?${query}`, ADMIN_KEY);
      expect(res.status).toBe(400);
      expect(await fields(res)).toContain(field);
    }
    expect((await call('GET', '/v1/admin/jobs', a.key)).status).toBe(403);
    await until(first.id, finished);
  });

  it('details a job with its recorded history and its wait, run and total times', async () => {
    const job = await submit(a.key, t2i(8));
    await until(job.id, finished);
    const detail = await json<AdminJobDetail>(await call('GET', `/v1/admin/jobs/${job.id}`, ADMIN_KEY), 200);
    expect(detail).toMatchObject({ id: job.id, teamId: a.id, teamName: 'admin-a', status: 'succeeded', retryOf: null, params: { task: 't2i', seed: 8 } });
    const types = detail.events.map((e) => e.type);
    expect(types[0]).toBe('queued');
    expect(types).toEqual(expect.arrayContaining(['started', 'succeeded']));
    expect(detail.events.map((e) => e.seq)).toEqual([...detail.events.map((e) => e.seq)].sort((x, y) => x - y));
    const { waitMs, runMs, totalMs } = detail.timings;
    expect(waitMs! + runMs!).toBe(totalMs);
    expect(runMs).toBeGreaterThan(0);
    expect(detail.timings['samplingMs']).toEqual(expect.any(Number));
    expect((await call('GET', '/v1/admin/jobs/00000000-0000-4000-8000-000000000000', ADMIN_KEY)).status).toBe(404);
    expect((await call('GET', '/v1/admin/jobs/nope', ADMIN_KEY)).status).toBe(404);
  });
});

describe('POST /v1/admin/jobs/:id/retry', () => {
  it('makes a new job of a failed or canceled one (inputs copied) that runs to the end; a succeeded one is 409', async () => {
    const image = (await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).fill(120) })).toString('base64');
    const [failed, canceled] = await whilePaused(async () => {
      const edit = await submit(a.key, { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [image], steps: 4, seed: 9 });
      expect(await new JobRepository(prisma).fail(edit.id, { code: 'engine-error', message: 'the engine thread exited' })).toBe(true);
      const queued = await submit(b.key, t2i(10));
      expect((await call('POST', `/v1/jobs/${queued.id}/cancel`, b.key)).status).toBe(202);
      return [edit, queued];
    });
    const store = platformStore(p);
    for (const [original, team] of [
      [failed, a],
      [canceled, b],
    ] as const) {
      const res = await call('POST', `/v1/admin/jobs/${original.id}/retry`, ADMIN_KEY, {});
      const retried = await json<AdminJob>(res, 202);
      expect(res.headers.get('location')).toBe(`/v1/jobs/${retried.id}`);
      expect(retried).toMatchObject({ status: 'queued', retryOf: original.id, teamId: team.id, seed: original.seed, task: original.task });
      expect(retried.id).not.toBe(original.id);
      expect((await until(retried.id, finished)).status).toBe('succeeded');
      // the team sees the new job as its own
      expect((await call('GET', `/v1/jobs/${retried.id}`, team.key)).status).toBe(200);
      const entry = (await audit('job.retry')).find((e) => e.target.id === original.id);
      expect(entry?.details).toMatchObject({ teamId: team.id, jobId: retried.id, retryOf: original.id });
    }
    const copied = (await store.list(jobObjectsPrefix(a.id, (await audit('job.retry')).find((e) => e.target.id === failed.id)!.details!['jobId'] as string)))
      .map((o) => o.key)
      .filter((k) => k.includes('/inputs/'));
    expect(copied).toHaveLength(1);

    const done = await submit(a.key, t2i(11));
    await until(done.id, finished);
    const refused = await call('POST', `/v1/admin/jobs/${done.id}/retry`, ADMIN_KEY);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { type: string }).type).toBe('about:blank#not-retryable');
    expect((await call('POST', `/v1/admin/jobs/${failed.id}/retry`, ADMIN_KEY, { seed: 1 })).status).toBe(400);
    expect((await call('POST', `/v1/admin/jobs/${failed.id}/retry`, a.key)).status).toBe(403);
  });
});

describe('queues', () => {
  it('pauses the generation queue (a submitted job stays queued) and resumes it (the job runs), audited', async () => {
    const { items } = await json<{ items: QueueItem[] }>(await call('GET', '/v1/admin/queues', ADMIN_KEY), 200);
    expect(items).toEqual([{ name: GENERATION, paused: false, counts: expect.objectContaining({ waiting: expect.any(Number), active: expect.any(Number) }) }]);

    expect((await setPaused(true)).paused).toBe(true);
    const job = await submit(a.key, t2i(12));
    await sleep(1500);
    expect((await json<JobView>(await call('GET', `/v1/jobs/${job.id}`, a.key), 200)).status).toBe('queued');
    const [queue] = (await json<{ items: QueueItem[] }>(await call('GET', '/v1/admin/queues', ADMIN_KEY), 200)).items;
    expect(queue).toMatchObject({ paused: true, counts: { waiting: 1 } });

    expect((await setPaused(false)).paused).toBe(false);
    expect((await until(job.id, finished)).status).toBe('succeeded');
    for (const action of ['queue.pause', 'queue.resume']) {
      expect((await audit(action))[0]).toMatchObject({ actor: 'bootstrap', target: { type: 'queue', id: GENERATION } });
    }
    expect((await call('POST', '/v1/admin/queues/dimoo-other/pause', ADMIN_KEY)).status).toBe(404);
    expect((await call('POST', `/v1/admin/queues/${GENERATION}/pause`, a.key)).status).toBe(403);
  });
});

describe('the queue board', () => {
  it('opens with a one-time link (an HttpOnly, SameSite=Strict cookie for its path) or an admin key; 401 without', async () => {
    const board = '/admin/queues/board';
    expect((await call('GET', board, null)).status).toBe(401);
    expect((await call('GET', `${board}/api/queues`, null)).status).toBe(401);
    const { url } = await json<{ url: string }>(await call('POST', '/v1/admin/board-session', ADMIN_KEY), 201);
    expect(url.startsWith(`${board}/`)).toBe(true);

    const opened = await call('GET', url, null);
    expect(opened.status).toBe(303);
    expect(opened.headers.get('location')).toBe(`${board}/`);
    const cookie = opened.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).toMatch(/Path=\/admin\/queues\/board/);
    expect(Number(/Max-Age=(\d+)/i.exec(cookie)![1])).toBeLessThanOrEqual(3600);
    const session = { cookie: cookie.split(';')[0]! };

    const page = await call('GET', `${board}/`, null, undefined, session);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<html/i);
    const queues = await json<{ queues: { name: string; readOnlyMode: boolean }[] }>(await call('GET', `${board}/api/queues`, null, undefined, session), 200);
    expect(queues.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([[GENERATION, true]]);
    // read-only: nothing but GET and HEAD
    expect((await call('PUT', `${board}/api/queues/pause`, null, {}, session)).status).toBe(405);

    // one time only; a forged cookie opens nothing
    expect((await call('GET', url, null)).status).toBe(401);
    expect((await call('GET', `${board}/`, null, undefined, { cookie: 'dimoo_board=forged' })).status).toBe(401);
    expect((await call('GET', `${board}/`, ADMIN_KEY)).status).toBe(200);
    expect((await call('GET', `${board}/`, a.key)).status).toBe(403);
    expect((await call('POST', '/v1/admin/board-session', a.key)).status).toBe(403);
  });

  it('ends a session when the key that opened it is revoked', async () => {
    const board = '/admin/queues/board';
    const key = await json<{ id: string; key: string }>(await call('POST', `/v1/teams/${teamC}/keys`, ADMIN_KEY, { name: 'board', scopes: ['admin'] }), 201);
    const { url } = await json<{ url: string }>(await call('POST', '/v1/admin/board-session', key.key), 201);
    const session = { cookie: (await call('GET', url, null)).headers.get('set-cookie')!.split(';')[0]! };
    expect((await call('GET', `${board}/api/queues`, null, undefined, session)).status).toBe(200);
    expect((await call('DELETE', `/v1/teams/${teamC}/keys/${key.id}`, ADMIN_KEY)).status).toBe(204);
    expect((await call('GET', `${board}/api/queues`, null, undefined, session)).status).toBe(401);
    expect((await call('GET', `${board}/`, null, undefined, session)).status).toBe(401);
  });
});

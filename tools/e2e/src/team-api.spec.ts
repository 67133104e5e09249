/**
 * The team API's conveniences through HTTP (issue 13): listing with cursor pages and filters, deleting a finished job
 * (its objects removed, its row kept), Idempotency-Key (a replay, a reuse with another body, a race, one in progress),
 * `Prefer: wait` both ways, and what ran (steps run vs planned).
 */
import type { JobList, JobView } from '@dimoo/contracts';
import { createPrisma, type PrismaClient } from '@dimoo/db';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformStore, platformTeam, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import { decodeImage, encodePng } from '@dimoo/model';
import { jobObjectsPrefix } from '@dimoo/storage';

let p: Platform;
const PREVIOUS_ADMIN_KEY = 'the-admin-key-before-rotation-0123';
let prisma: PrismaClient;
let worker: WorkerProcess | null = null;

async function call(method: string, path: string, k: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json', ...headers },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

const team = (name: string) => platformTeam(p, name);

const t2i = (seed: number, extra: Record<string, unknown> = {}) => ({ task: 't2i', prompt: 'a red circle', seed, steps: 4, ...extra });

async function submit(key: string, body: unknown): Promise<JobView> {
  const res = await call('POST', '/v1/jobs', key, body);
  expect(res.status).toBe(202);
  return (await res.json()) as JobView;
}

async function until(key: string, id: string, done: (v: JobView) => boolean, timeoutMs = 60_000): Promise<JobView> {
  for (const t0 = Date.now(); ; await sleep(100)) {
    const v = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;
    if (done(v)) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} is ${v.status}`);
  }
}
const finished = (v: JobView) => ['succeeded', 'failed', 'canceled'].includes(v.status);

const startWorker = async () => {
  worker = new WorkerProcess({ ...p.workerEnv, PREVIEW_EVERY_STEPS: '1' });
  await worker.ready();
};
const stopWorker = async () => {
  await worker?.kill('SIGKILL');
  worker = null;
};

beforeAll(async () => {
  // retention after ~8.6 s (0.0001 days), swept every 500 ms: the retention test waits for it
  p = await startPlatform({
    apiEnv: { REAPER_INTERVAL_MS: '300', RESULT_TTL_DAYS: '0.0001', RETENTION_SWEEP_INTERVAL_MS: '500', ADMIN_API_KEY_PREVIOUS: PREVIOUS_ADMIN_KEY },
  });
  prisma = createPrisma(p.db.url);
}, 120_000);

afterAll(async () => {
  await stopWorker();
  await prisma?.$disconnect();
  await p?.close();
});

describe('GET /v1/jobs', () => {
  it('pages newest first with a cursor, filters by status, task and time, and refuses unknown parameters', async () => {
    const t = await team('list-a');
    const other = await team('list-b');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(t.key, t2i(i))).id);
    await submit(other.key, t2i(99));
    const canceled = ids[1]!;
    expect((await call('POST', `/v1/jobs/${canceled}/cancel`, t.key)).status).toBe(202);

    const seen: string[] = [];
    let page = (await (await call('GET', '/v1/jobs?limit=2', t.key)).json()) as JobList;
    for (;;) {
      seen.push(...page.data.map((j) => j.id));
      expect(page.data.length).toBeLessThanOrEqual(2);
      if (!page.hasMore) break;
      expect(page.next).toMatch(/^\/v1\/jobs\?limit=2&after=/);
      page = (await (await call('GET', page.next!, t.key)).json()) as JobList;
    }
    expect(seen).toEqual([...ids].reverse());

    const byStatus = (await (await call('GET', '/v1/jobs?status=canceled', t.key)).json()) as JobList;
    expect(byStatus.data.map((j) => j.id)).toEqual([canceled]);
    const queued = (await (await call('GET', '/v1/jobs?status=queued,running&task=t2i', t.key)).json()) as JobList;
    expect(queued.data).toHaveLength(4);
    // no worker: the newest waits behind the team's other queued jobs that are still in the fair queue
    const newest = (await (await call('GET', `/v1/jobs/${ids[4]}`, t.key)).json()) as JobView;
    expect(newest.queue).toMatchObject({ teamAhead: expect.any(Number), ahead: expect.any(Number) });
    expect(newest.queue!.ahead).toBeGreaterThanOrEqual(newest.queue!.teamAhead);
    expect(((await (await call('GET', `/v1/jobs/${canceled}`, t.key)).json()) as JobView).queue).toBeUndefined();
    expect(((await (await call('GET', '/v1/jobs?task=mmu', t.key)).json()) as JobList).data).toEqual([]);
    const from = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    expect(((await (await call('GET', `/v1/jobs?createdFrom=${from}`, t.key)).json()) as JobList).data).toEqual([]);
    // another team's job as the cursor: an empty page, nothing of theirs
    const theirs = (await (await call('GET', '/v1/jobs', other.key)).json()) as JobList;
    expect(theirs.data).toHaveLength(1);
    expect(((await (await call('GET', `/v1/jobs?after=${theirs.data[0]!.id}`, t.key)).json()) as JobList).data).toEqual([]);

    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=101', 'limit'],
      ['status=done', 'status'],
      ['after=x', 'after'],
      ['createdFrom=yesterday', 'createdFrom'],
      ['sort=asc', 'sort'],
    ] as const) {
      const res = await call('GET', `/v1/jobs?${query}`, t.key);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
      const problem = (await res.json()) as { errors: { field: string }[] };
      expect(problem.errors.map((e) => e.field)).toContain(field);
    }
  });
});

describe('DELETE /v1/jobs/:id', () => {
  it('refuses a queued job (409), deletes a finished one with its objects, keeps its row, and then answers 404', async () => {
    const t = await team('delete');
    const image = (await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).fill(90) })).toString('base64');
    const job = await submit(t.key, { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [image], steps: 4, seed: 3 });
    expect((await call('DELETE', `/v1/jobs/${job.id}`, t.key)).status).toBe(409);
    await startWorker();
    try {
      expect((await until(t.key, job.id, finished)).status).toBe('succeeded');
    } finally {
      await stopWorker();
    }
    const store = platformStore(p);
    const prefix = jobObjectsPrefix(t.id, job.id);
    const before = (await store.list(prefix)).map((o) => o.key);
    expect(before.some((k) => k.includes('/inputs/'))).toBe(true);
    expect(before.some((k) => k.includes('/result.'))).toBe(true);

    const other = await team('delete-other');
    expect((await call('DELETE', `/v1/jobs/${job.id}`, other.key)).status).toBe(404);
    expect((await call('DELETE', `/v1/jobs/${job.id}`, t.key)).status).toBe(204);
    expect(await store.list(prefix)).toEqual([]);
    for (const path of [`/v1/jobs/${job.id}`, `/v1/jobs/${job.id}/result`, `/v1/jobs/${job.id}/events`]) {
      expect((await call('GET', path, t.key)).status).toBe(404);
    }
    expect((await call('DELETE', `/v1/jobs/${job.id}`, t.key)).status).toBe(404);
    expect((await call('POST', `/v1/jobs/${job.id}/cancel`, t.key)).status).toBe(404);
    expect(((await (await call('GET', '/v1/jobs', t.key)).json()) as JobList).data).toEqual([]);
    const row = await prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(row).toMatchObject({ status: 'succeeded', deletedAt: expect.any(Date) });
  });
});

describe('Idempotency-Key', () => {
  it('replays the first job for the same key and body, refuses another body (422), and records one job for a race', async () => {
    const t = await team('idempotent');
    const headers = { 'idempotency-key': 'order-1' };
    const first = await call('POST', '/v1/jobs', t.key, t2i(1), headers);
    expect(first.status).toBe(202);
    const job = (await first.json()) as JobView;
    const again = await call('POST', '/v1/jobs', t.key, t2i(1), headers);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(((await again.json()) as JobView).id).toBe(job.id);

    const reused = await call('POST', '/v1/jobs', t.key, t2i(2), headers);
    expect(reused.status).toBe(422);
    expect(((await reused.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('Idempotency-Key');
    // keys are per team
    const other = await team('idempotent-other');
    expect((await call('POST', '/v1/jobs', other.key, t2i(2), headers)).status).toBe(202);

    const race = await Promise.all(Array.from({ length: 6 }, () => call('POST', '/v1/jobs', t.key, t2i(7), { 'idempotency-key': 'race' })));
    const statuses = race.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.every((s) => [200, 202, 409].includes(s))).toBe(true);
    const ids = new Set(await Promise.all(race.filter((r) => r.status !== 409).map(async (r) => ((await r.json()) as JobView).id)));
    expect(ids.size).toBe(1);
    expect(await prisma.job.count({ where: { teamId: t.id } })).toBe(2);

    for (const bad of ['', 'x'.repeat(256), 'with space']) {
      const res = await call('POST', '/v1/jobs', t.key, t2i(3), { 'idempotency-key': bad });
      expect(res.status).toBe(400);
    }
  });

  it('answers 409 while the first request is in progress, and frees the key of a refused request', async () => {
    const t = await team('idempotent-busy');
    await prisma.idempotencyKey.create({ data: { teamId: t.id, key: 'busy', requestHash: 'in-flight' } });
    const busy = await call('POST', '/v1/jobs', t.key, t2i(1), { 'idempotency-key': 'busy' });
    // another body's hash: 422 wins; the same body while in progress is 409 (the stored hash is not this body's here)
    expect(busy.status).toBe(422);
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256')
      .update(JSON.stringify(t2i(1)))
      .digest('base64url');
    await prisma.idempotencyKey.update({ where: { teamId_key: { teamId: t.id, key: 'busy' } }, data: { requestHash: hash } });
    const inProgress = await call('POST', '/v1/jobs', t.key, t2i(1), { 'idempotency-key': 'busy' });
    expect(inProgress.status).toBe(409);
    expect(inProgress.headers.get('retry-after')).toBe('1');
    // a reservation whose API died (older than a minute) is taken over
    await prisma.idempotencyKey.update({ where: { teamId_key: { teamId: t.id, key: 'busy' } }, data: { createdAt: new Date(Date.now() - 120_000) } });
    expect((await call('POST', '/v1/jobs', t.key, t2i(1), { 'idempotency-key': 'busy' })).status).toBe(202);

    // refused after the key was claimed (the team's submission rate): the key is free again
    expect((await call('PATCH', `/v1/teams/${t.id}`, ADMIN_KEY, { submitsPerMinute: 1 })).status).toBe(200);
    await sleep(200);
    expect((await call('POST', '/v1/jobs', t.key, t2i(4))).status).toBe(202);
    expect((await call('POST', '/v1/jobs', t.key, t2i(5), { 'idempotency-key': 'full' })).status).toBe(429);
    expect(await prisma.idempotencyKey.count({ where: { teamId: t.id, key: 'full' } })).toBe(0);
  });
});

describe('results', () => {
  it('answers 303 to a presigned URL (fetched without the key), streams on request, and retention removes the images', async () => {
    const t = await team('results');
    await startWorker();
    let job: JobView;
    try {
      job = (await (await call('POST', '/v1/jobs', t.key, t2i(8), { prefer: 'wait=30' })).json()) as JobView;
      expect(job.status).toBe('succeeded');
    } finally {
      await stopWorker();
    }
    const redirect = await fetch(`${p.url}/v1/jobs/${job.id}/result`, { headers: { authorization: `Bearer ${t.key}` }, redirect: 'manual' });
    expect(redirect.status).toBe(303);
    const location = redirect.headers.get('location')!;
    expect(location).toMatch(/X-Amz-Signature=/);
    const direct = await fetch(location);
    expect(direct.status).toBe(200);
    expect(direct.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await direct.arrayBuffer());
    const streamed = await call('GET', `/v1/jobs/${job.id}/result?stream=true`, t.key);
    expect(streamed.status).toBe(200);
    expect(Buffer.from(await streamed.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await call('GET', `/v1/jobs/${job.id}/result?format=raw`, t.key)).status).toBe(400);

    const swept = await until(t.key, job.id, (v) => v.resultDeletedAt !== null, 30_000);
    expect(swept).toMatchObject({ status: 'succeeded', result: null });
    const gone = await call('GET', `/v1/jobs/${job.id}/result`, t.key);
    expect(gone.status).toBe(410);
    expect(await platformStore(p).list(jobObjectsPrefix(t.id, job.id))).toEqual([]);
    expect((await fetch(location)).status).toBe(404);
  });
});

describe('deadline', () => {
  it('ends a job no worker started in time as expired (event and status), and refuses a deadline in the past', async () => {
    const t = await team('deadline');
    const job = await submit(t.key, t2i(1, { deadline: new Date(Date.now() + 1000).toISOString() }));
    expect(job.deadline).not.toBeNull();
    const res = await call('GET', `/v1/jobs/${job.id}`, t.key, undefined, { prefer: 'wait=10' });
    const view = (await res.json()) as JobView;
    expect(view).toMatchObject({ status: 'expired', startedAt: null, attempts: 0 });
    const events = await (await call('GET', `/v1/jobs/${job.id}/events`, t.key)).text();
    expect(events).toMatch(/event: expired/);
    // reconnecting after the last event of a finished job: the stream ends at once (it used to stay open)
    const lastId = [...events.matchAll(/^id: (\d+)$/gm)].at(-1)![1]!;
    const again = await fetch(`${p.url}/v1/jobs/${job.id}/events`, {
      headers: { authorization: `Bearer ${t.key}`, 'last-event-id': lastId },
      signal: AbortSignal.timeout(5000),
    });
    expect(await again.text()).not.toMatch(/^event:/m);
    for (const deadline of [new Date(Date.now() - 1000).toISOString(), 'tomorrow', new Date(Date.now() + 8 * 86_400_000).toISOString()]) {
      const bad = await call('POST', '/v1/jobs', t.key, t2i(2, { deadline }));
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(['deadline']);
    }
  });
});

describe('keys, scopes and the audit log', () => {
  it('enforces scopes, lists and rotates keys, records the submitting key and every admin action', async () => {
    const t = await team('keys');
    const issue = async (body: unknown) => call('POST', `/v1/teams/${t.id}/keys`, ADMIN_KEY, body);
    const readOnly = (await (await issue({ name: 'dashboard', scopes: ['read'] })).json()) as { id: string; key: string; scopes: string[] };
    expect(readOnly.scopes).toEqual(['read']);
    const submitOnly = (await (await issue({ name: 'producer', scopes: ['submit'] })).json()) as { id: string; key: string };
    const ops = (await (await issue({ name: 'ops', scopes: ['admin', 'read'] })).json()) as { id: string; key: string };
    expect((await issue({ name: 'x', scopes: ['root'] })).status).toBe(400);
    expect((await issue({ name: 'x', admin: true })).status).toBe(400);

    const refused = await call('POST', '/v1/jobs', readOnly.key, t2i(1));
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/submit scope/);
    const job = await submit(submitOnly.key, t2i(1));
    expect(job.apiKeyId).toBe(submitOnly.id);
    expect((await call('GET', `/v1/jobs/${job.id}`, submitOnly.key)).status).toBe(403);
    expect(((await (await call('GET', `/v1/jobs/${job.id}`, readOnly.key)).json()) as JobView).apiKeyId).toBe(submitOnly.id);
    expect((await call('POST', `/v1/jobs/${job.id}/cancel`, readOnly.key)).status).toBe(403);
    expect((await call('POST', '/v1/teams', t.key, { name: 'not-allowed' })).status).toBe(403);
    const made = await call('POST', '/v1/teams', ops.key, { name: 'made-by-ops' });
    expect(made.status).toBe(201);
    const madeId = ((await made.json()) as { id: string }).id;
    expect((await call('POST', '/v1/teams', PREVIOUS_ADMIN_KEY, { name: 'made-by-previous-admin-key' })).status).toBe(201);

    const listed = (await (await call('GET', `/v1/teams/${t.id}/keys`, ADMIN_KEY)).json()) as { data: Record<string, unknown>[] };
    expect(listed.data.map((k) => k['name'])).toEqual(['test', 'dashboard', 'producer', 'ops']);
    expect(JSON.stringify(listed)).not.toContain(readOnly.key);
    expect(listed.data.every((k) => !('hash' in k) && !('key' in k))).toBe(true);

    const rotated = await call('POST', `/v1/teams/${t.id}/keys/${readOnly.id}/rotate`, ADMIN_KEY, { graceSeconds: 0 });
    expect(rotated.status).toBe(201);
    const next = (await rotated.json()) as { id: string; key: string; replaces: string };
    expect(next.replaces).toBe(readOnly.id);
    expect((await call('GET', '/v1/jobs', readOnly.key)).status).toBe(401);
    expect((await call('GET', '/v1/jobs', next.key)).status).toBe(200);
    const graced = (await (await call('POST', `/v1/teams/${t.id}/keys/${next.id}/rotate`, ADMIN_KEY, { graceSeconds: 60 })).json()) as { key: string };
    expect((await call('GET', '/v1/jobs', next.key)).status).toBe(200);
    expect((await call('GET', '/v1/jobs', graced.key)).status).toBe(200);
    expect((await call('POST', `/v1/teams/${t.id}/keys/${next.id}/rotate`, ADMIN_KEY, {})).status).toBe(404);

    const audit = (await (await call('GET', '/v1/audit?limit=8', ADMIN_KEY)).json()) as {
      data: { action: string; actor: string; target: { id: string } }[];
      hasMore: boolean;
    };
    expect(audit.data.slice(0, 4).map((e) => e.action)).toEqual(['key.rotate', 'key.rotate', 'team.create', 'team.create']);
    expect(audit.data.find((e) => e.target.id === madeId)?.actor).toBe(ops.key.slice(0, 12));
    expect(audit.hasMore).toBe(true);
    expect((await call('GET', '/v1/audit', ops.key)).status).toBe(200);
    expect((await call('GET', '/v1/audit', t.key)).status).toBe(403);
    expect((await call('GET', '/v1/audit?before=x', ADMIN_KEY)).status).toBe(400);
  });
});

describe('inputs', () => {
  it('takes images as multipart parts, as uploads through a presigned URL, and as an earlier job of the team', async () => {
    const t = await team('inputs');
    const other = await team('inputs-other');
    const png = await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).fill(200) });
    const store = platformStore(p);
    const inputOf = async (jobId: string) => (await store.list(`${jobObjectsPrefix(t.id, jobId)}inputs/`)).map((o) => o.key);

    // multipart: the JSON request in `request`, the image in a part named after its field
    const form = new FormData();
    form.set('request', JSON.stringify({ task: 'i2i', editType: 'edit', prompt: 'make it blue', steps: 4, seed: 1 }));
    form.set('images.0', new Blob([png], { type: 'image/png' }), 'in.png');
    const multipart = await fetch(`${p.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${t.key}` }, body: form });
    expect(multipart.status).toBe(202);
    const fromPart = (await multipart.json()) as JobView;
    const [partKey] = await inputOf(fromPart.id);
    expect((await store.get(partKey!)).equals(png)).toBe(true);
    const badForm = new FormData();
    badForm.set('request', JSON.stringify({ task: 'mmu', question: 'what is it ?' }));
    badForm.set('picture', new Blob([png]), 'in.png');
    const badPart = await fetch(`${p.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${t.key}` }, body: badForm });
    expect(badPart.status).toBe(400);
    expect(((await badPart.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('picture');

    // an upload: a presigned PUT straight to the store, then { upload }
    const upload = (await (await call('POST', '/v1/uploads', t.key, {})).json()) as { id: string; url: string; method: string };
    expect((await fetch(upload.url, { method: 'PUT', body: png })).status).toBe(200);
    const fromUpload = await submit(t.key, { task: 'mmu', question: 'what shape is it ?', image: { upload: upload.id } });
    expect((await store.get((await inputOf(fromUpload.id))[0]!)).equals(png)).toBe(true);
    const noUpload = await call('POST', '/v1/jobs', other.key, { task: 'mmu', question: 'what is it ?', image: { upload: upload.id } });
    expect(noUpload.status).toBe(400);
    expect(((await noUpload.json()) as { errors: { field: string; reason: string }[] }).errors[0]).toMatchObject({
      field: 'image',
      reason: expect.stringMatching(/no upload/),
    });

    // an earlier result, by reference: "retouch job X with this mask"
    await startWorker();
    let first: JobView;
    try {
      first = (await (await call('POST', '/v1/jobs', t.key, t2i(3, { steps: 8 }), { prefer: 'wait=30' })).json()) as JobView;
      expect(first.status).toBe('succeeded');
      const mask = await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).map((_, i) => (Math.floor(i / 3) % 128 < 64 ? 255 : 0)) });
      const retouch = (await (
        await call(
          'POST',
          '/v1/jobs',
          t.key,
          { task: 'paint', prompt: 'a blue square', image: { jobId: first.id }, mask: mask.toString('base64'), steps: 4, seed: 2 },
          { prefer: 'wait=30' },
        )
      ).json()) as JobView;
      expect(retouch.status).toBe('succeeded');
      const [imageKey] = (await inputOf(retouch.id)).filter((k) => k.endsWith('image.bin'));
      const result = Buffer.from(await (await call('GET', `/v1/jobs/${first.id}/result?stream=true`, t.key)).arrayBuffer());
      expect((await store.get(imageKey!)).equals(result)).toBe(true);
    } finally {
      await stopWorker();
    }
    const queued = await submit(t.key, t2i(4));
    for (const [key, jobId, reason] of [
      [t.key, queued.id, /has no image result/],
      [other.key, first.id, /not found/],
    ] as const) {
      const res = await call('POST', '/v1/jobs', key, { task: 'mmu', question: 'what is it ?', image: { jobId } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errors: { field: string; reason: string }[] }).errors[0]).toMatchObject({
        field: 'image',
        reason: expect.stringMatching(reason),
      });
    }
  });
});

describe('retouching', () => {
  it('leaves every pixel outside the regenerated cells as the input had it, on a noise image the VQ cannot rebuild', async () => {
    const t = await team('retouch');
    const size = 128;
    // seeded noise: every pixel its own colour
    let state = 12345;
    const noise = new Uint8Array(size * size * 3).map(() => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24) & 255);
    // the left half masked, on the 16-pixel cell grid: the regenerated cells are exactly the left half
    const mask = new Uint8Array(size * size * 3).map((_, i) => (Math.floor(i / 3) % size < size / 2 ? 255 : 0));
    await startWorker();
    try {
      const body = {
        task: 'paint',
        prompt: 'a blue square',
        image: (await encodePng({ width: size, height: size, data: noise })).toString('base64'),
        mask: (await encodePng({ width: size, height: size, data: mask })).toString('base64'),
        steps: 8,
        seed: 3,
      };
      const job = (await (await call('POST', '/v1/jobs', t.key, body, { prefer: 'wait=60' })).json()) as JobView;
      expect(job.status).toBe('succeeded');
      const out = await decodeImage(Buffer.from(await (await call('GET', `/v1/jobs/${job.id}/result?stream=true`, t.key)).arrayBuffer()));
      let outside = 0;
      let inside = 0;
      for (let p = 0; p < size * size; p++) {
        const same = [0, 1, 2].every((c) => out.data[p * 3 + c] === noise[p * 3 + c]);
        if (p % size >= size / 2) outside += same ? 0 : 1;
        else inside += same ? 0 : 1;
      }
      expect(outside).toBe(0);
      expect(inside).toBeGreaterThan((size * size) / 4);
    } finally {
      await stopWorker();
    }
  });
});

describe('n images', () => {
  it('makes n images in one job, image i with seed + i: each equal to a one-image job with that seed', async () => {
    const t = await team('many');
    await startWorker();
    try {
      const many = (await (await call('POST', '/v1/jobs', t.key, t2i(40, { steps: 8, n: 3, temperature: 1 }), { prefer: 'wait=60' })).json()) as JobView;
      expect(many.status).toBe('succeeded');
      expect(many.result).toMatchObject({
        kind: 'image',
        images: [`/v1/jobs/${many.id}/result`, `/v1/jobs/${many.id}/result?index=1`, `/v1/jobs/${many.id}/result?index=2`],
      });
      const image = async (job: string, index: number) =>
        Buffer.from(await (await call('GET', `/v1/jobs/${job}/result?stream=true&index=${index}`, t.key)).arrayBuffer());
      const images = await Promise.all([0, 1, 2].map((i) => image(many.id, i)));
      // the tiny model's flat-colour world has few images: seeds differ, some images may coincide
      expect(new Set(images.map((b) => b.toString('base64'))).size).toBeGreaterThan(1);
      let single: JobView | undefined;
      for (const i of [0, 1, 2]) {
        single = (await (await call('POST', '/v1/jobs', t.key, t2i(40 + i, { steps: 8, temperature: 1 }), { prefer: 'wait=60' })).json()) as JobView;
        expect((await image(single.id, 0)).equals(images[i]!)).toBe(true);
      }
      if (!single) throw new Error('no single job');
      expect((await call('GET', `/v1/jobs/${many.id}/result?index=3`, t.key)).status).toBe(404);
      expect((await call('GET', `/v1/jobs/${many.id}/result?index=4`, t.key)).status).toBe(400);
      expect((await call('GET', `/v1/jobs/${single.id}/result?index=1`, t.key)).status).toBe(404);
    } finally {
      await stopWorker();
    }
  });
});

describe('Prefer: wait', () => {
  it('answers 202 after the wait when the job is not done, 200 with the finished job when it is', async () => {
    const t = await team('wait');
    const t0 = Date.now();
    const pending = await call('POST', '/v1/jobs', t.key, t2i(1), { prefer: 'wait=1' });
    expect(pending.status).toBe(202);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(pending.headers.get('preference-applied')).toBe('wait=1');
    const waiting = (await pending.json()) as JobView;
    expect(waiting.status).toBe('queued');
    await startWorker();
    try {
      const done = await call('POST', '/v1/jobs', t.key, t2i(2, { steps: 16 }), { prefer: 'wait=30' });
      expect(done.status).toBe(200);
      const view = (await done.json()) as JobView;
      expect(view.status).toBe('succeeded');
      // what ran: the steps run, of those planned
      expect(view.step).toBe(view.timings!['steps']);
      expect(view.steps).toBe(16);
      const polled = await call('GET', `/v1/jobs/${waiting.id}`, t.key, undefined, { prefer: 'wait=30' });
      expect(polled.status).toBe(200);
      expect(((await polled.json()) as JobView).status).toBe('succeeded');
    } finally {
      await stopWorker();
    }
    expect((await call('POST', '/v1/jobs', t.key, t2i(3), { prefer: 'wait=soon' })).status).toBe(400);
    const long = await call('GET', `/v1/jobs/${(await submit(t.key, t2i(4))).id}`, t.key, undefined, { prefer: 'wait=0' });
    expect(long.status).toBe(200);
  });
});

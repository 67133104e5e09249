/**
 * One job end to end on real services: Postgres, Redis, an S3-protocol server, the API and worker processes, the tiny
 * model. Also: invalid input is refused as problem+json and nothing is enqueued; a worker killed mid-job loses nothing
 * and runs the job to success once; a Redis outage delays accepted jobs but loses none; teams see only their own jobs.
 */
import { readFile } from 'node:fs/promises';
import { Queue } from 'bullmq';
import type { JobView } from '@dimoo/contracts';
import { createPrisma, JobRepository } from '@dimoo/db';
import { GENERATION_JOB_OPTIONS, QUEUE_NAMES, redisConnection } from '@dimoo/queue';
import { decodeImage, encodePng } from '@dimoo/model';
import { finish, loadModel, newEngine, prepare, releaseModel, resolveLocal, resultPng } from '@dimoo/runtime';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

let p: Platform;
let worker: WorkerProcess;
let keyA: string;
let keyB: string;
let teamAId: string;
let firstJobId: string;

async function call(method: string, path: string, key: string | null, body?: unknown, raw?: string): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' },
    ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

async function waitFor(id: string, key: string, until: (j: JobView) => boolean, timeoutMs = 90000): Promise<JobView> {
  const t0 = Date.now();
  for (;;) {
    const j = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;
    if (until(j)) return j;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`job ${id} stuck at ${JSON.stringify(j)}\nworker:\n${worker.output.join('').slice(-8000)}\napi:\n${p.api.output.join('').slice(-8000)}`);
    }
    await sleep(100);
  }
}

const done = (j: JobView) => ['succeeded', 'failed', 'canceled'].includes(j.status);

beforeAll(async () => {
  p = await startPlatform();
  worker = new WorkerProcess(p.workerEnv);
  const teamA = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'team-a' })).json()) as { id: string };
  teamAId = teamA.id;
  const teamB = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'team-b' })).json()) as { id: string };
  keyA = ((await (await call('POST', `/v1/teams/${teamA.id}/keys`, ADMIN_KEY, { name: 'a' })).json()) as { key: string }).key;
  keyB = ((await (await call('POST', `/v1/teams/${teamB.id}/keys`, ADMIN_KEY, { name: 'b' })).json()) as { key: string }).key;
  await worker.ready();
}, 120000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await p?.close();
});

describe('text-to-image through API → queue → worker → storage', () => {
  it('returns 202 + Location, runs, and serves the PNG the engine makes for the same seed', async () => {
    const req = { task: 't2i', prompt: 'a red circle at the top left', seed: 42 };
    const res = await call('POST', '/v1/jobs', keyA, req);
    expect(res.status).toBe(202);
    const job = (await res.json()) as JobView;
    firstJobId = job.id;
    expect(res.headers.get('location')).toBe(`/v1/jobs/${job.id}`);
    const final = await waitFor(job.id, keyA, done);
    expect(final.status).toBe('succeeded');
    expect(final.seed).toBe(42);
    expect(final.model.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(final.timings).toEqual(expect.objectContaining({ samplingMs: expect.any(Number), uploadMs: expect.any(Number) }));
    const png = Buffer.from(await (await call('GET', `/v1/jobs/${job.id}/result`, keyA)).arrayBuffer());
    const img = await decodeImage(png);
    expect([img.width, img.height]).toEqual([128, 128]);

    const model = await loadModel(`${ROOT}/models/tiny`, { provider: 'cpu', allowCpuFallback: false });
    const seq = await prepare(model, 'ref', resolveLocal(model.manifest, { task: 't2i', prompt: req.prompt, seed: 42 }));
    await newEngine(model).run([seq]);
    const expected = await finish(model, seq);
    await releaseModel(model);
    if (expected.kind !== 'image') throw new Error('expected an image');
    expect(png.equals(await resultPng(expected))).toBe(true);
  });
});

describe('result formats', () => {
  it.each([
    ['webp', 'image/webp'],
    ['jpeg', 'image/jpeg'],
  ])('outputFormat %s: stored and served as %s, the same image as the PNG', async (outputFormat, contentType) => {
    const res = await call('POST', '/v1/jobs', keyA, { task: 't2i', prompt: 'a red circle at the top left', seed: 42, outputFormat });
    expect(res.status).toBe(202);
    const final = await waitFor(((await res.json()) as JobView).id, keyA, done);
    expect(final.result).toEqual({ kind: 'image', url: `/v1/jobs/${final.id}/result`, contentType, images: [`/v1/jobs/${final.id}/result`] });
    const result = await call('GET', final.result!.url, keyA);
    expect(result.headers.get('content-type')).toBe(contentType);
    const img = await decodeImage(Buffer.from(await result.arrayBuffer()));
    expect([img.width, img.height]).toEqual([128, 128]);
    // the same seed's PNG (the first test), within the lossy codec's error
    const ref = await decodeImage(Buffer.from(await (await call('GET', `/v1/jobs/${firstJobId}/result`, keyA)).arrayBuffer()));
    let err = 0;
    for (let i = 0; i < img.data.length; i++) err += Math.abs(img.data[i]! - ref.data[i]!);
    expect(err / img.data.length).toBeLessThan(8);
  });
});

describe('processes', () => {
  /** Shared objects mapped into a process (Linux): what it has loaded, native addons included. */
  const mapped = async (pid: number) => (await readFile(`/proc/${pid}/maps`, 'utf8')).split('\n').map((l) => l.split(/\s+/)[5] ?? '');

  it('the API process never loads onnxruntime-node (the worker does)', async () => {
    // the API has served a job's whole life by now (the test above): manifest, image decoding, resolution
    const api = await mapped(p.api.pid);
    expect(api.some((f) => f.includes('sharp'))).toBe(true); // the check sees native addons
    expect(api.filter((f) => /onnxruntime/i.test(f))).toEqual([]);
    const workerLibs = await mapped(worker.pid);
    expect(workerLibs.some((f) => /onnxruntime/i.test(f))).toBe(true);
  });
});

const png = (size: number) => encodePng({ width: size, height: size, data: new Uint8Array(size * size * 3) }).then((b) => b.toString('base64'));
let PNG_64 = '';
let PNG_128 = '';
beforeAll(async () => {
  [PNG_64, PNG_128] = await Promise.all([png(64), png(128)]);
});

describe('invalid requests', () => {
  const cases: [string, unknown, number, string][] = [
    ['missing prompt', { task: 't2i' }, 400, 'prompt'],
    ['size not a multiple of the grid', { task: 't2i', prompt: 'x', height: 120 }, 400, 'height'],
    ['steps out of range', { task: 't2i', prompt: 'x', steps: 100000 }, 400, 'steps'],
    ['unknown task', { task: 'video', prompt: 'x' }, 400, 'task'],
    ['not an image', { task: 'mmu', question: 'what shape is it ?', image: 'aGVsbG8=' }, 400, 'image'],
    ['an unknown field', { task: 't2i', prompt: 'x', stepz: 8 }, 400, 'stepz'],
    ['an input image of another size', { task: 'mmu', question: 'what shape is it ?', image: PNG_64 }, 400, 'image'],
    // checked only by the worker before (a 202, then a failure): a mask that regenerates no token cell
    ['a mask over no token cell', { task: 'paint', prompt: 'a red circle', image: PNG_128, mask: PNG_128 }, 400, 'mask'],
  ];

  it.each(cases)('%s → problem+json naming the field, nothing enqueued', async (_name, body, status, field) => {
    const queue = new Queue(QUEUE_NAMES.generation, {
      connection: redisConnection(p.env['REDIS_URL']!, { offlineQueue: true }),
      prefix: p.env['QUEUE_PREFIX'],
    });
    const prisma = createPrisma(p.db.url);
    const [jobsBefore, queuedBefore] = [await prisma.job.count(), await queue.count()];
    const res = await call('POST', '/v1/jobs', keyA, body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const problem = (await res.json()) as { status: number; errors: { field: string; reason: string }[] };
    expect(problem.status).toBe(status);
    expect(problem.errors.map((e) => e.field)).toContain(field);
    expect([await prisma.job.count(), await queue.count()]).toEqual([jobsBefore, queuedBefore]);
    await prisma.$disconnect();
    await queue.close();
  });

  it('bad JSON → 400 and an oversized body → 413, as problem+json', async () => {
    const bad = await call('POST', '/v1/jobs', keyA, undefined, '{"task": "t2i",');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    const big = await call('POST', '/v1/jobs', keyA, { task: 't2i', prompt: 'x'.repeat(3 * 1024 * 1024) });
    expect(big.status).toBe(413);
  });

  it('no key → 401; a team key on an admin route → 403', async () => {
    expect((await call('POST', '/v1/jobs', null, { task: 't2i', prompt: 'x' })).status).toBe(401);
    expect((await call('POST', '/v1/teams', keyA, { name: 'x' })).status).toBe(403);
  });
});

describe('stored jobs', () => {
  it('a row the worker cannot read (another schema version, or no parse) fails with the reason, never runs', async () => {
    const prisma = createPrisma(p.db.url);
    const queue = new Queue(QUEUE_NAMES.generation, {
      connection: redisConnection(p.env['REDIS_URL']!, { offlineQueue: true }),
      prefix: p.env['QUEUE_PREFIX'],
    });
    try {
      const jobs = new JobRepository(prisma);
      const rows = [
        { schemaVersion: 99, task: 't2i', prompt: 'from a newer API' },
        { schemaVersion: 1, task: 't2i', prompt: 'no steps, no seed' },
      ];
      const ids: string[] = [];
      for (const params of rows) {
        const job = await jobs.create({ teamId: teamAId, task: 't2i', params, inputs: { images: [] }, model: 'tiny' });
        await queue.add(QUEUE_NAMES.generation, { jobId: job.id, teamId: teamAId }, { ...GENERATION_JOB_OPTIONS, jobId: job.id });
        ids.push(job.id);
      }
      const [newer, broken] = await Promise.all(ids.map((id) => waitFor(id, keyA, done)));
      expect(newer).toMatchObject({
        status: 'failed',
        attempts: 1,
        error: { type: 'unreadable-job', message: expect.stringContaining('upgrade workers before the API') },
      });
      expect(broken).toMatchObject({ status: 'failed', attempts: 1, error: { type: 'unreadable-job', message: expect.stringContaining('does not parse') } });
    } finally {
      await queue.close();
      await prisma.$disconnect();
    }
  });
});

describe('teams', () => {
  it("answer 404 for another team's job and result", async () => {
    const job = (await (await call('POST', '/v1/jobs', keyA, { task: 't2i', prompt: 'a blue square at the center', seed: 1 })).json()) as JobView;
    await waitFor(job.id, keyA, done);
    expect((await call('GET', `/v1/jobs/${job.id}`, keyB)).status).toBe(404);
    expect((await call('GET', `/v1/jobs/${job.id}/result`, keyB)).status).toBe(404);
    expect((await call('GET', `/v1/jobs/${job.id}/result`, keyA)).status).toBe(200);
  });
});

describe('durability', () => {
  it('a worker killed with SIGKILL mid-job: the job is retried and succeeds exactly once', async () => {
    const job = (await (
      await call('POST', '/v1/jobs', keyA, { task: 't2i', prompt: 'a green triangle at the bottom', seed: 3, steps: 256, cfg: 1, temperature: 1 })
    ).json()) as JobView;
    await waitFor(job.id, keyA, (j) => j.status === 'running' && j.step > 0);
    expect(await worker.kill('SIGKILL')).toBeNull();
    worker = new WorkerProcess(p.workerEnv);
    await worker.ready();
    const final = await waitFor(job.id, keyA, done);
    expect(final.status).toBe('succeeded');
    const prisma = createPrisma(p.db.url);
    const events = await prisma.jobEvent.findMany({ where: { jobId: job.id } });
    await prisma.$disconnect();
    expect(events.filter((e) => e.type === 'succeeded')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'started').length + events.filter((e) => e.type === 'retried').length).toBeGreaterThanOrEqual(2);
    expect((await call('GET', `/v1/jobs/${job.id}/result`, keyA)).status).toBe(200);
  });

  it('Redis stopped, then flushed, with jobs accepted: they all complete once it is back', async () => {
    await worker.kill('SIGKILL');
    await p.redis.stop();
    const ids: string[] = [];
    for (const seed of [11, 12]) {
      const res = await call('POST', '/v1/jobs', keyA, { task: 't2i', prompt: 'a yellow circle at the right', seed });
      expect(res.status).toBe(202); // accepted: the record is in Postgres, the outbox holds it
      ids.push(((await res.json()) as JobView).id);
    }
    await p.redis.start(); // a fresh, empty Redis: everything it had is gone
    worker = new WorkerProcess(p.workerEnv);
    await worker.ready();
    for (const id of ids) expect((await waitFor(id, keyA, done)).status).toBe('succeeded');
    // a stuck job's error (waitFor) carries both processes' logs: it must come before the test's own timeout
  }, 180_000);
});

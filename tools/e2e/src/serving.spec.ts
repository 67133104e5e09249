/**
 * Serving behaviour on real services (issue 4): the event stream with previews and Last-Event-ID replay; jobs that
 * arrive together share model runs and are recorded as one batch; a cancel mid-batch leaves the others' images
 * unchanged; SIGTERM drains running jobs, or hands them back past the grace period, and nothing is lost or completed
 * twice.
 */
import type { JobView, LocalRequest } from '@dimoo/contracts';
import { createPrisma } from '@dimoo/db';
import { decodeImage } from '@dimoo/model';
import { finish, loadModel, newEngine, prepare, resolveLocal, resultPng } from '@dimoo/runtime';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

let p: Platform;
let key: string;
let otherKey: string;
const workers: WorkerProcess[] = [];

async function call(method: string, path: string, k: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { ...(k ? { authorization: `Bearer ${k}` } : {}), 'content-type': 'application/json', ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

const submit = async (body: unknown): Promise<JobView> => {
  const res = await call('POST', '/v1/jobs', key, body);
  expect(res.status).toBe(202);
  return (await res.json()) as JobView;
};

async function waitFor(id: string, until: (j: JobView) => boolean, timeoutMs = 90000): Promise<JobView> {
  const t0 = Date.now();
  for (;;) {
    const j = (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;
    if (until(j)) return j;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} stuck at ${JSON.stringify(j)}\n${workers.map((w) => w.output.join('')).join('\n---\n')}`);
    await sleep(50);
  }
}
const done = (j: JobView) => ['succeeded', 'failed', 'canceled'].includes(j.status);

async function startWorker(env: Record<string, string> = {}): Promise<WorkerProcess> {
  const w = new WorkerProcess({ ...p.workerEnv, ...env });
  workers.push(w);
  await w.ready();
  return w;
}

interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/** Reads an event stream to its end (the server closes it after the terminal event). */
async function readStream(path: string, headers: Record<string, string> = {}): Promise<SseEvent[]> {
  const res = await call('GET', path, key, undefined, headers);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => {
      const field = (name: string) =>
        block
          .split('\n')
          .find((l) => l.startsWith(`${name}: `))!
          .slice(name.length + 2);
      return { id: field('id'), event: field('event'), data: JSON.parse(field('data')) as Record<string, unknown> };
    });
}

/** The PNG the engine makes in-process for the same request, alone. */
async function enginePng(req: LocalRequest): Promise<Buffer> {
  const model = await loadModel(`${ROOT}/models/tiny`, { provider: 'cpu', allowCpuFallback: false });
  const seq = await prepare(model, 'ref', resolveLocal(model.manifest, req));
  await newEngine(model).run([seq]);
  const out = await finish(model, seq);
  if (out.kind !== 'image') throw new Error('expected an image');
  return resultPng(out);
}

beforeAll(async () => {
  p = await startPlatform();
  const team = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'team-s' })).json()) as { id: string };
  const other = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'team-o' })).json()) as { id: string };
  key = ((await (await call('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 's' })).json()) as { key: string }).key;
  otherKey = ((await (await call('POST', `/v1/teams/${other.id}/keys`, ADMIN_KEY, { name: 'o' })).json()) as { key: string }).key;
}, 120000);

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await p?.close();
});

describe('event stream', () => {
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await startWorker({ PROGRESS_INTERVAL_MS: '50' });
  });
  afterAll(() => worker.kill('SIGKILL'));

  it('streams progress and previews to completion, and replays after Last-Event-ID', async () => {
    const job = await submit({ task: 't2i', prompt: 'a red circle at the top left', seed: 5, steps: 32, cfg: 1, temperature: 1, previewEvery: 8 });
    const events = await readStream(`/v1/jobs/${job.id}/events`);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('queued');
    expect(types).toContain('started');
    expect(types.filter((t) => t === 'progress').length).toBeGreaterThan(0);
    expect(types.at(-1)).toBe('completed');
    expect(events.at(-1)!.data['url']).toBe(`/v1/jobs/${job.id}/result`);
    const ids = events.map((e) => BigInt(e.id));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);

    const previews = events.filter((e) => e.event === 'preview');
    // every 8 steps, except that the worker skips a preview while the previous one is still uploading (a loaded machine)
    const steps = previews.map((e) => e.data['step'] as number);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((s, i) => [8, 16, 24].includes(s) && (i === 0 || s > steps[i - 1]!))).toBe(true);
    const png = await call('GET', previews[0]!.data['url'] as string, key);
    expect(png.status).toBe(200);
    expect((await decodeImage(Buffer.from(await png.arrayBuffer()))).width).toBe(128);
    expect((await call('GET', previews[0]!.data['url'] as string, otherKey)).status).toBe(404);

    // a client that saw the first preview reconnects: it gets exactly what came after
    const at = events.indexOf(previews[0]!);
    const replay = await readStream(`/v1/jobs/${job.id}/events`, { 'last-event-id': previews[0]!.id });
    expect(replay).toEqual(events.slice(at + 1));
    // EventSource's first connection cannot set headers: the query parameter does the same
    expect(await readStream(`/v1/jobs/${job.id}/events?lastEventId=${previews[0]!.id}`)).toEqual(events.slice(at + 1));
  });

  it("answers 404 for another team's stream and 400 for a malformed Last-Event-ID", async () => {
    const job = await submit({ task: 't2i', prompt: 'a blue square at the center', seed: 1 });
    expect((await call('GET', `/v1/jobs/${job.id}/events`, otherKey)).status).toBe(404);
    const bad = await call('GET', `/v1/jobs/${job.id}/events`, key, undefined, { 'last-event-id': 'abc' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('Last-Event-ID');
    await waitFor(job.id, done);
  });
});

describe('batches', () => {
  it('runs jobs that arrive together in shared model runs, records the batch, and a cancel leaves the others unchanged', async () => {
    const worker = await startWorker({ BATCH_WAIT_MS: '400', PROGRESS_INTERVAL_MS: '50' });
    const reqs = [
      { task: 't2i', prompt: 'a red circle at the top left', seed: 21, steps: 48, cfg: 1, temperature: 1 },
      { task: 't2i', prompt: 'a blue circle at the left', seed: 22, steps: 256, cfg: 1, temperature: 1 },
      { task: 't2i', prompt: 'a green square at the bottom', seed: 23, steps: 48, cfg: 1, temperature: 1 },
    ] as const;
    const jobs = await Promise.all(reqs.map((r) => submit(r)));
    await waitFor(jobs[1]!.id, (j) => j.status === 'running' && j.step > 0);
    expect((await call('POST', `/v1/jobs/${jobs[1]!.id}/cancel`, key)).status).toBe(202);
    const finals = await Promise.all(jobs.map((j) => waitFor(j.id, done)));
    expect(finals.map((j) => j.status)).toEqual(['succeeded', 'canceled', 'succeeded']);
    for (const i of [0, 2]) {
      const png = Buffer.from(await (await call('GET', `/v1/jobs/${jobs[i]!.id}/result`, key)).arrayBuffer());
      expect(png.equals(await enginePng(reqs[i]!))).toBe(true);
    }

    await worker.kill('SIGTERM'); // flushes the open batch record
    const prisma = createPrisma(p.db.url);
    const rows = await prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } }, select: { id: true, batchId: true } });
    const batchIds = new Set(rows.map((r) => r.batchId));
    expect(batchIds.size).toBe(1); // all three started in the same batch
    const batch = await prisma.batch.findUniqueOrThrow({ where: { id: [...batchIds][0]! } });
    await prisma.$disconnect();
    const stats = batch.stats as { jobs: number; maxSize: number; steps: number; modelCalls: number; stepMs: { p50: number } };
    expect(stats.jobs).toBe(3);
    expect(stats.maxSize).toBe(3);
    // shared runs: one model call per step while all three ran, not one per job
    expect(stats.modelCalls).toBeLessThan(48 * 2 + 10);
    expect(stats.stepMs.p50).toBeGreaterThan(0);
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM lets a running job finish before the worker exits', async () => {
    const worker = await startWorker({ SHUTDOWN_GRACE_MS: '60000', WORKER_ID: 'drain-1' });
    const job = await submit({ task: 't2i', prompt: 'a yellow circle at the right', seed: 31, steps: 128, cfg: 1 });
    await waitFor(job.id, (j) => j.status === 'running' && j.step > 0);
    await worker.kill('SIGTERM');
    const final = await waitFor(job.id, done, 1000); // already finished when the process exited
    expect(final.status).toBe('succeeded');
    const prisma = createPrisma(p.db.url);
    expect((await prisma.job.findUniqueOrThrow({ where: { id: job.id } })).workerId).toBe('drain-1');
    await prisma.$disconnect();
  });

  it('SIGTERM past the grace period hands the job back; another worker completes it exactly once', async () => {
    const first = await startWorker({ SHUTDOWN_GRACE_MS: '100', WORKER_ID: 'drain-2' });
    const job = await submit({ task: 't2i', prompt: 'a purple triangle at the top', seed: 32, steps: 256, cfg: 1 });
    await waitFor(job.id, (j) => j.status === 'running' && j.step > 0);
    await first.kill('SIGTERM');
    const back = (await (await call('GET', `/v1/jobs/${job.id}`, key)).json()) as JobView;
    expect(back.status).toBe('queued');
    await startWorker({ WORKER_ID: 'drain-3' });
    const final = await waitFor(job.id, done);
    expect(final.status).toBe('succeeded');
    const prisma = createPrisma(p.db.url);
    const row = await prisma.job.findUniqueOrThrow({ where: { id: job.id }, include: { events: { orderBy: { id: 'asc' } } } });
    await prisma.$disconnect();
    expect(row.workerId).toBe('drain-3');
    expect(row.events.filter((e) => e.type === 'succeeded')).toHaveLength(1);
    expect(row.events.some((e) => e.type === 'queued' && (e.data as { workerId?: string } | null)?.workerId === 'drain-2')).toBe(true);
    const png = Buffer.from(await (await call('GET', `/v1/jobs/${job.id}/result`, key)).arrayBuffer());
    expect(png.equals(await enginePng({ task: 't2i', prompt: 'a purple triangle at the top', seed: 32, steps: 256, cfg: 1 }))).toBe(true);
  });
});

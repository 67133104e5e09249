/**
 * The admin read models through HTTP with a real worker: the worker registry (a worker appears with its model, counts
 * the jobs it ran, turns stale when killed, leaves at a graceful shutdown; a live worker on another model is flagged,
 * also as a metric), the stats of the last minutes, the batch records and usage per day; 400 for bad query values.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { AdminStats, BatchList, JobView, Usage, WorkerList, WorkerView } from '@dimoo/contracts';
import { createPrisma, type PrismaClient } from '@dimoo/db';
import { loadManifestFile, modelChecksum } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformTeam, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

let p: Platform;
let prisma: PrismaClient;
const workers: WorkerProcess[] = [];

const get = (path: string, key = ADMIN_KEY) => fetch(`${p.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
const read = async <T>(path: string): Promise<T> => {
  const res = await get(path);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
};

async function until<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  for (const t0 = Date.now(); ; await sleep(100)) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: still ${JSON.stringify(v)}`);
  }
}

const workerList = () => read<WorkerList>('/v1/admin/workers').then((l) => l.items);
const workerNamed = async (id: string): Promise<WorkerView | undefined> => (await workerList()).find((w) => w.id === id);

async function startWorker(id: string): Promise<WorkerProcess> {
  const w = new WorkerProcess({ ...p.workerEnv, WORKER_ID: id });
  workers.push(w);
  await w.ready();
  return w;
}

async function submit(key: string, body: unknown): Promise<JobView> {
  const res = await fetch(`${p.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as JobView;
}
const job = (key: string, id: string) =>
  fetch(`${p.url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.json() as Promise<JobView>);

beforeAll(async () => {
  p = await startPlatform();
  prisma = createPrisma(p.db.url);
}, 120_000);

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await prisma?.$disconnect();
  await p?.close();
});

it('refuses team keys and bad or unknown query parameters (400 naming the parameter)', async () => {
  const t = await platformTeam(p, 'insights-reader');
  expect((await get('/v1/admin/workers', t.key)).status).toBe(403);
  expect((await get('/v1/admin/stats', t.key)).status).toBe(403);
  for (const [path, field] of [
    ['/v1/admin/stats?minutes=0', 'minutes'],
    ['/v1/admin/stats?minutes=abc', 'minutes'],
    ['/v1/admin/stats?minutes=1441', 'minutes'],
    ['/v1/admin/stats?window=5', 'window'],
    ['/v1/admin/batches?limit=0', 'limit'],
    ['/v1/admin/batches?before=yesterday', 'before'],
    ['/v1/admin/usage?days=367', 'days'],
    ['/v1/admin/usage?team=x', 'team'],
    ['/v1/admin/workers?stale=true', 'stale'],
  ] as const) {
    const res = await get(path);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(((await res.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual([field]);
  }
});

it('registers a worker with its model, counts its jobs, shows them in stats, batches and usage, and tells stale from gone', async () => {
  const t = await platformTeam(p, 'insights');
  const served = modelChecksum(await loadManifestFile(resolve(ROOT, 'models/tiny/manifest.json')));

  // a job and no worker
  const first = await submit(t.key, { task: 't2i', prompt: 'a red circle', seed: 1, steps: 4, n: 2 });
  const waiting = await read<AdminStats>('/v1/admin/stats?minutes=5');
  expect(waiting).toMatchObject({ minutes: 5, waitingNoWorker: true, workers: { live: 0, stale: 0 }, oldestWaiting: { id: first.id, teamId: t.id } });
  expect(waiting.byStatus.queued).toBe(1);
  expect(waiting.series).toHaveLength(5);

  // the worker registers at its start, with the model it loaded: the API's own
  const w1 = await startWorker('insights-w1');
  const registered = await until(
    'w1 registered',
    () => workerNamed('insights-w1'),
    (w) => w !== undefined,
  );
  expect(registered).toMatchObject({
    host: hostname(),
    pid: w1.pid,
    modelName: expect.any(String),
    modelChecksum: served,
    modelMatches: true,
    executionProvider: expect.any(String),
    slots: 4,
    stale: false,
  });

  // it runs the job: jobsDone rises
  await until(
    'the job done',
    () => job(t.key, first.id),
    (j) => j.status === 'succeeded',
  );
  const counted = await until(
    'jobsDone',
    () => workerNamed('insights-w1'),
    (w) => w?.jobsDone === 1 && w.runningJobs === 0,
  );
  expect(counted).toMatchObject({ jobsFailed: 0, lastError: null, stale: false });

  // the stats of the last minutes: the job in the series and by team, a batch, a live worker
  const stats = await until(
    'stats with the batch',
    () => read<AdminStats>('/v1/admin/stats?minutes=5'),
    (s) => s.batches.count >= 1,
  );
  expect(stats).toMatchObject({ waitingNoWorker: false, oldestWaiting: null, workers: { live: 1, stale: 0 }, failuresLastHour: 0 });
  expect(stats.byStatus).toMatchObject({ queued: 0, running: 0, succeeded: 1 });
  expect(stats.byTeam).toEqual([{ teamId: t.id, teamName: 'insights', byStatus: { queued: 0, running: 0, succeeded: 1, failed: 0, canceled: 0, expired: 0 } }]);
  const minute = stats.series.find((s) => s.succeeded === 1)!;
  expect(minute.runP50Ms).toBeGreaterThan(0);
  expect(minute.waitP50Ms).toBeGreaterThan(0);
  expect(stats.series.reduce((n, s) => n + s.succeeded, 0)).toBe(1);
  expect(stats.batches.maxSize).toBeGreaterThanOrEqual(2);
  expect(stats.batches.stepP50Ms).toBeGreaterThan(0);

  // the batch records: the job's batch, by this worker
  const batches = await read<BatchList>('/v1/admin/batches?limit=10');
  const batch = batches.items.find((b) => b.jobIds.includes(first.id))!;
  expect(batch).toMatchObject({ workerId: 'insights-w1', finishedAt: expect.any(String), jobIds: [first.id] });
  expect(batch.stats).toMatchObject({ jobs: 2, maxSize: 2 });
  expect(batch.stats!.steps).toBeGreaterThanOrEqual(4);
  expect((await read<BatchList>(`/v1/admin/batches?before=${encodeURIComponent(batch.startedAt)}`)).items.map((b) => b.id)).not.toContain(batch.id);

  // usage today: one job, two images, its run time
  const usage = await read<Usage>('/v1/admin/usage?days=1');
  expect(usage.items).toEqual([
    { day: new Date().toISOString().slice(0, 10), teamId: t.id, teamName: 'insights', jobs: 1, images: 2, computeSeconds: expect.any(Number) },
  ]);
  expect(usage.items[0]!.computeSeconds).toBeGreaterThan(0);

  // SIGKILL: the row stays, and turns stale after three heartbeat periods (LOCK_DURATION_MS 2000: 666 ms each)
  await w1.kill('SIGKILL');
  await until(
    'w1 stale',
    () => workerNamed('insights-w1'),
    (w) => w?.stale === true,
    10_000,
  );
  const second = await submit(t.key, { task: 't2i', prompt: 'a blue square', seed: 2, steps: 4 });
  expect(await read<AdminStats>('/v1/admin/stats?minutes=5')).toMatchObject({ workers: { live: 0, stale: 1 }, waitingNoWorker: true });

  // SIGTERM: a worker that shuts down gracefully leaves the registry
  const w2 = await startWorker('insights-w2');
  await until(
    'w2 registered',
    () => workerNamed('insights-w2'),
    (w) => w?.stale === false,
  );
  await until(
    'the second job done',
    () => job(t.key, second.id),
    (j) => j.status === 'succeeded',
  );
  await until(
    'w2 counted',
    () => workerNamed('insights-w2'),
    (w) => w?.jobsDone === 1,
  );
  await w2.kill('SIGTERM');
  expect((await workerList()).map((w) => [w.id, w.stale])).toEqual([['insights-w1', true]]);
}, 90_000);

it('flags a live worker serving another model, in the list and as dimoo_registered_workers{state="mismatch"}', async () => {
  await prisma.$executeRaw`
    INSERT INTO workers (id, host, pid, model_name, model_version, model_checksum, execution_provider, slots, heartbeat_ms, started_at)
    VALUES ('other-model', 'h', 1, 'dimoo-tiny', '0.9', 'not-the-served-checksum', 'cpu', 4, 600000, now())`;
  expect(await workerNamed('other-model')).toMatchObject({ modelMatches: false, stale: false, currentBatchId: null, jobsDone: 0 });
  const metric = (text: string, state: string) => Number(text.match(new RegExp(`^dimoo_registered_workers\\{state="${state}"\\} (\\S+)$`, 'm'))?.[1]);
  const text = await until(
    'the mismatch gauge',
    () => fetch(`${p.url}/metrics`).then((r) => r.text()),
    (t) => metric(t, 'mismatch') === 1,
    15_000,
  );
  expect(metric(text, 'live')).toBe(1);
  expect(metric(text, 'stale')).toBe(1);
});

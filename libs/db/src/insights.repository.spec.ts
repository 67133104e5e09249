import { ApiKeyRepository } from './api-key.repository';
import { BatchRepository } from './batch.repository';
import { InsightsRepository } from './insights.repository';
import { createPrisma, type PrismaClient } from './prisma';
import { createTestDatabase, type TestDatabase, workerState } from './testing';
import { WorkerRepository } from './worker.repository';

const S = 1000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

describe('InsightsRepository (PostgreSQL)', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let insights: InsightsRepository;
  let acme: string;
  let globex: string;
  /** the start of the minute three minutes before the database's now: the bucket the known jobs end in */
  let m: number;
  let now: number;
  const ids: Record<string, string> = {};

  type Row = {
    team: 'acme' | 'globex';
    status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'expired';
    created: number;
    started?: number;
    finished?: number;
    resultKeys?: string[];
    resultKey?: string;
  };
  let rows: Record<string, Row>;

  beforeAll(async () => {
    db = await createTestDatabase();
    prisma = createPrisma(db.url);
    insights = new InsightsRepository(prisma);
    const teams = new ApiKeyRepository(prisma);
    acme = (await teams.createTeam('acme')).id;
    globex = (await teams.createTeam('globex')).id;
    const [clock] = await prisma.$queryRaw<{ m: Date; now: Date }[]>`SELECT date_trunc('minute', now()) - interval '3 minutes' AS m, now() AS now`;
    m = clock!.m.getTime();
    now = clock!.now.getTime();
    rows = {
      // three jobs end in minute m: waits 2, 4, 1 s; runs 8, 25, 19 s; images 2 (n = 2), 1 (a row from before resultKeys), 0
      j1: { team: 'acme', status: 'succeeded', created: m, started: m + 2 * S, finished: m + 10 * S, resultKeys: ['a/0.png', 'a/1.png'], resultKey: 'a/0.png' },
      j2: { team: 'acme', status: 'succeeded', created: m + 1 * S, started: m + 5 * S, finished: m + 30 * S, resultKey: 'b.png' },
      j3: { team: 'acme', status: 'failed', created: m, started: m + 1 * S, finished: m + 20 * S },
      // waiting and running whatever the window
      j4: { team: 'globex', status: 'queued', created: m - 5 * MIN },
      j5: { team: 'globex', status: 'running', created: m + 30 * S, started: m + 40 * S },
      // canceled while queued, in the next minute: no wait, no run
      j7: { team: 'globex', status: 'canceled', created: m + 50 * S, finished: m + 65 * S },
      // outside a 10-minute window, inside an hour
      j8: { team: 'globex', status: 'expired', created: now - 40 * MIN, finished: now - 30 * MIN },
      // outside the stats window, inside 14 days of usage
      j6: {
        team: 'globex',
        status: 'succeeded',
        created: now - 2 * DAY - 10 * S,
        started: now - 2 * DAY - 5 * S,
        finished: now - 2 * DAY - 2 * S,
        resultKeys: ['c.png'],
        resultKey: 'c.png',
      },
      // outside everything
      j9: { team: 'acme', status: 'succeeded', created: now - 20 * DAY - 9 * S, started: now - 20 * DAY - 8 * S, finished: now - 20 * DAY, resultKey: 'd.png' },
    };
    for (const [name, r] of Object.entries(rows)) {
      const at = (t?: number) => (t === undefined ? null : new Date(t));
      const job = await prisma.job.create({
        data: {
          teamId: r.team === 'acme' ? acme : globex,
          task: 't2i',
          status: r.status,
          params: {},
          inputs: {},
          model: 'tiny',
          createdAt: new Date(r.created),
          startedAt: at(r.started),
          finishedAt: at(r.finished),
          resultKeys: r.resultKeys ?? [],
          resultKey: r.resultKey ?? null,
        },
      });
      ids[name] = job.id;
    }
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const counts = (c: Partial<Record<Row['status'], number>>) => ({ queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, expired: 0, ...c });

  it('counts jobs by status and team: every waiting and running one, the others that ended inside the window', async () => {
    const stats = await insights.stats(10);
    expect(stats.minutes).toBe(10);
    expect(stats.byStatus).toEqual(counts({ queued: 1, running: 1, succeeded: 2, failed: 1, canceled: 1 }));
    expect(stats.byTeam).toEqual([
      { teamId: acme, teamName: 'acme', byStatus: counts({ succeeded: 2, failed: 1 }) },
      { teamId: globex, teamName: 'globex', byStatus: counts({ queued: 1, running: 1, canceled: 1 }) },
    ]);
    expect((await insights.stats(60)).byStatus).toEqual(counts({ queued: 1, running: 1, succeeded: 2, failed: 1, canceled: 1, expired: 1 }));
    expect(stats.failuresLastHour).toBe(1);
    expect(stats.oldestWaiting).toEqual({ id: ids['j4'], teamId: globex, createdAt: new Date(rows['j4']!.created), ageS: expect.any(Number) });
    expect(stats.oldestWaiting!.ageS).toBeGreaterThanOrEqual((stats.generatedAt.getTime() - rows['j4']!.created) / 1000 - 0.1);
  });

  it('has one bucket per minute, with the percentiles of the wait and run of the jobs that ended in it', async () => {
    const { series, generatedAt } = await insights.stats(10);
    expect(series).toHaveLength(10);
    const minute = (t: number) => t - (t % MIN);
    expect(series.at(-1)!.t.getTime()).toBe(minute(generatedAt.getTime()));
    for (let i = 1; i < series.length; i++) expect(series[i]!.t.getTime() - series[i - 1]!.t.getTime()).toBe(MIN);
    const at = (t: number) => series.find((p) => p.t.getTime() === t);
    // waits [1000, 2000, 4000]: p50 2000, p95 2000 + 0.9 × 2000; runs [8000, 19000, 25000]: p50 19000, p95 19000 + 0.9 × 6000
    expect(at(m)).toEqual({ t: new Date(m), succeeded: 2, failed: 1, waitP50Ms: 2000, waitP95Ms: 3800, runP50Ms: 19000, runP95Ms: 24400 });
    // the canceled job ended in the next minute: counted nowhere in the series, no wait or run
    expect(at(m + MIN)).toEqual({ t: new Date(m + MIN), succeeded: 0, failed: 0, waitP50Ms: null, waitP95Ms: null, runP50Ms: null, runP95Ms: null });
    expect(series.reduce((n, p) => n + p.succeeded, 0)).toBe(2);
  });

  it('sums the batch records started inside the window', async () => {
    const batches = new BatchRepository(prisma);
    const stats = (
      steps: number,
      meanSize: number,
      maxSize: number,
      p50: number,
      p95: number,
      positions: number,
      fullPositions: number,
      maxCacheBytes: number,
    ) => ({
      steps,
      jobs: maxSize,
      sizeOverTime: [[0, maxSize]],
      maxSize,
      meanSize,
      modelCalls: steps,
      stepMs: { mean: p50, p50, p95, max: p95 },
      forwardMs: steps * p50,
      positions,
      fullPositions,
      cacheHitRatio: 1 - positions / fullPositions,
      maxCacheBytes,
      maxBatchCost: 10,
    });
    const empty = (await insights.stats(10)).batches;
    expect(empty).toEqual({
      count: 0,
      meanSize: 0,
      maxSize: 0,
      stepP50Ms: 0,
      stepP95Ms: 0,
      cacheHitRatio: 0,
      maxCacheBytes: 0,
      positions: 0,
      fullPositions: 0,
    });
    await batches.record({
      workerId: 'w',
      startedAt: new Date(m),
      finishedAt: new Date(m + 5 * S),
      jobIds: [],
      stats: stats(10, 2, 3, 10, 20, 100, 400, 1000),
    });
    await batches.record({
      workerId: 'w',
      startedAt: new Date(m + 6 * S),
      finishedAt: new Date(m + 9 * S),
      jobIds: [],
      stats: stats(30, 4, 4, 30, 50, 300, 400, 5000),
    });
    await batches.record({
      workerId: 'w',
      startedAt: new Date(now - 2 * HOUR),
      finishedAt: new Date(now - 2 * HOUR + S),
      jobIds: [],
      stats: stats(5, 9, 9, 99, 99, 1, 1, 9e9),
    });
    // mean size weighted by steps: (10 × 2 + 30 × 4) / 40; the median of the medians; p95 of the p95s: 20 + 0.95 × 30
    expect((await insights.stats(10)).batches).toEqual({
      count: 2,
      meanSize: 3.5,
      maxSize: 4,
      stepP50Ms: 20,
      stepP95Ms: 48.5,
      cacheHitRatio: 0.5,
      maxCacheBytes: 5000,
      positions: 400,
      fullPositions: 800,
    });
    await prisma.batch.deleteMany();
  });

  it('tells live from stale workers, and jobs waiting with no live worker', async () => {
    const workers = new WorkerRepository(prisma);
    expect((await insights.stats(10)).workers).toEqual({ live: 0, stale: 0 });
    expect((await insights.stats(10)).waitingNoWorker).toBe(true);
    const state = workerState({ id: 'w-live' });
    await workers.register({ ...state, id: 'w-stale' });
    await prisma.$executeRaw`UPDATE workers SET heartbeat_at = now() - interval '4 seconds' WHERE id = 'w-stale'`;
    expect(await insights.stats(10)).toMatchObject({ workers: { live: 0, stale: 1 }, waitingNoWorker: true });
    await workers.register(state);
    expect(await insights.stats(10)).toMatchObject({ workers: { live: 1, stale: 1 }, waitingNoWorker: false });
    await prisma.worker.deleteMany();
  });

  it('reports usage per day (UTC) and team: jobs that ended, their images and run time, within the days asked', async () => {
    const expected = new Map<string, { day: string; teamId: string; teamName: string; jobs: number; images: number; computeSeconds: number }>();
    const images: Record<string, number> = { j1: 2, j2: 1, j6: 1, j9: 1 };
    for (const [name, r] of Object.entries(rows)) {
      if (r.finished === undefined || r.finished < now - 14 * DAY) continue;
      const day = new Date(r.finished).toISOString().slice(0, 10);
      const teamId = r.team === 'acme' ? acme : globex;
      const e = expected.get(`${day} ${r.team}`) ?? { day, teamId, teamName: r.team, jobs: 0, images: 0, computeSeconds: 0 };
      e.jobs++;
      e.images += images[name] ?? 0;
      e.computeSeconds += r.started === undefined ? 0 : (r.finished - r.started) / 1000;
      expected.set(`${day} ${r.team}`, e);
    }
    const usage = await insights.usage(14);
    expect(usage).toEqual([...expected.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, e]) => e));
    // acme's three jobs of minute m: 3 jobs, 3 images, 8 + 25 + 19 s
    expect(usage.find((u) => u.teamId === acme)).toMatchObject({ jobs: 3, images: 3, computeSeconds: 52 });
    expect(usage.some((u) => u.computeSeconds === 3 && u.images === 1 && u.teamId === globex)).toBe(true);
    // one day: today only (UTC)
    const today = new Date(now).toISOString().slice(0, 10);
    expect((await insights.usage(1)).every((u) => u.day === today)).toBe(true);
    expect((await insights.usage(30)).reduce((n, u) => n + u.jobs, 0)).toBe(7);
  });

  it('pages batch records newest first, each with the jobs that ran in it (once per job), and points the jobs at it', async () => {
    const batches = new BatchRepository(prisma);
    const stats = { steps: 1 };
    const a = await batches.record({
      workerId: 'w1',
      startedAt: new Date(now - 3 * MIN),
      finishedAt: new Date(now - 2 * MIN),
      jobIds: [ids['j1']!, `${ids['j1']}#1`, ids['j2']!],
      stats,
    });
    const b = await batches.record({
      workerId: 'w2',
      startedAt: new Date(now - 2 * MIN),
      finishedAt: new Date(now - MIN),
      jobIds: [ids['j2']!, 'not-a-job'],
      stats,
    });
    const id = '6f1c2b1e-7a3d-4c5e-9f0a-1b2c3d4e5f60';
    const c = await batches.record({ id, workerId: 'w1', startedAt: new Date(now - MIN), finishedAt: new Date(now), jobIds: [], stats });
    expect(c.id).toBe(id);
    const page = await insights.batches(2);
    expect(page.map((p) => p.id)).toEqual([c.id, b.id]);
    const next = await insights.batches(2, page.at(-1)!.createdAt);
    expect(next).toEqual([
      { id: a.id, workerId: 'w1', createdAt: new Date(now - 3 * MIN), finishedAt: new Date(now - 2 * MIN), jobIds: [ids['j1'], ids['j2']], stats },
    ]);
    expect(page[1]!.jobIds).toEqual([ids['j2']]);
    expect((await prisma.job.findUniqueOrThrow({ where: { id: ids['j2']! } })).batchId).toBe(a.id);
  });
});

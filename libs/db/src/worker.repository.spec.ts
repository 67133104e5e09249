import { createPrisma, type PrismaClient } from './prisma';
import { createTestDatabase, type TestDatabase, workerState } from './testing';
import { WorkerRepository, type WorkerState } from './worker.repository';

describe('WorkerRepository (PostgreSQL)', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let workers: WorkerRepository;

  beforeAll(async () => {
    db = await createTestDatabase();
    prisma = createPrisma(db.url);
    workers = new WorkerRepository(prisma);
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const startedAt = new Date('2026-12-01T10:00:00.000Z');
  const state = (over: Partial<WorkerState> = {}): WorkerState => workerState({ startedAt, ...over });
  const ago = (id: string, seconds: number) => prisma.$executeRaw`UPDATE workers SET heartbeat_at = now() - make_interval(secs => ${seconds}) WHERE id = ${id}`;

  it('registers a worker, updates its row with each beat, and judges staleness by its own heartbeat period', async () => {
    await workers.register(state());
    const [first] = await workers.list();
    expect(first).toEqual({ ...state(), heartbeatAt: expect.any(Date), stale: false });

    const batch = '0b6f3c5e-8d1a-4f7b-9c2e-5a4d3b2c1f00';
    await workers.beat(state({ runningJobs: 3, currentBatchId: batch, jobsDone: 5, jobsFailed: 1, lastError: 'E: boom' }));
    const [second] = await workers.list();
    expect(second).toMatchObject({ runningJobs: 3, currentBatchId: batch, jobsDone: 5, jobsFailed: 1, lastError: 'E: boom', startedAt, stale: false });
    expect(second!.heartbeatAt.getTime()).toBeGreaterThanOrEqual(first!.heartbeatAt.getTime());

    // 3 periods of 1 s: stale after 3 s without a beat; a worker with a 2 s period is not, at 4 s
    await workers.beat(state({ id: 'w2', heartbeatMs: 2000 }));
    await ago('w1', 4);
    await ago('w2', 4);
    expect((await workers.list()).map((w) => [w.id, w.stale])).toEqual([
      ['w1', true],
      ['w2', false],
    ]);
    await ago('w2', 7);
    expect((await workers.list()).map((w) => w.stale)).toEqual([true, true]);
    // a beat brings it back
    await workers.beat(state());
    expect((await workers.list())[0]!.stale).toBe(false);
  });

  it('starts afresh when a worker registers again under its id, forgets workers gone for a day, and removes one that shut down', async () => {
    await workers.register(state({ id: 'w3', jobsDone: 9 }));
    const restarted = new Date('2026-12-01T11:00:00.000Z');
    await workers.register(state({ id: 'w3', startedAt: restarted, pid: 77 }));
    expect((await workers.list()).find((w) => w.id === 'w3')).toMatchObject({ pid: 77, jobsDone: 0, startedAt: restarted });

    await ago('w2', 25 * 3600);
    await workers.beat(state({ id: 'w4' }));
    expect((await workers.list()).map((w) => w.id)).toContain('w2');
    await workers.register(state({ id: 'w4' }));
    expect((await workers.list()).map((w) => w.id)).not.toContain('w2');

    await workers.remove('w3');
    expect((await workers.list()).map((w) => w.id)).toEqual(['w1', 'w4']);
    await workers.remove('unknown');
  });

  it('is one statement per beat (the worker adds one to its tick)', async () => {
    const sent: string[] = [];
    const counted = createPrisma(db.url, { onQuery: (sql) => sent.push(sql) });
    try {
      await new WorkerRepository(counted).beat(state({ runningJobs: 1 }));
      expect(sent).toHaveLength(1);
    } finally {
      await counted.$disconnect();
    }
  });
});

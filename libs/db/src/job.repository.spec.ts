import { randomUUID } from 'node:crypto';

import { ApiKeyRepository } from './api-key.repository';
import { BatchRepository } from './batch.repository';
import { AlreadyExists, NotFound, TransitionRejected } from './errors';
import { type CreateJobInput, JobRepository } from './job.repository';
import { JobStatus } from './generated/prisma/client';
import { createPrisma, Prisma, type PrismaClient } from './prisma';
import { createTestDatabase, type TestDatabase, workerState } from './testing';
import { WorkerRepository } from './worker.repository';

describe('JobRepository (PostgreSQL)', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let jobs: JobRepository;
  let teamId: string;
  let otherTeamId: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    prisma = createPrisma(db.url);
    jobs = new JobRepository(prisma);
    const teams = new ApiKeyRepository(prisma);
    teamId = (await teams.createTeam('acme')).id;
    otherTeamId = (await teams.createTeam('globex')).id;
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const input = (overrides: Partial<CreateJobInput> = {}): CreateJobInput => ({
    teamId,
    task: 't2i',
    params: { prompt: 'a red fox', steps: 8 },
    inputs: {},
    model: 'tiny',
    seed: 42n,
    ...overrides,
  });

  const eventTypes = async (id: string, team = teamId): Promise<string[]> => (await jobs.events(id, team)).map((e) => e.type);

  const runningJob = async (): Promise<string> => {
    const job = await jobs.create(input());
    expect(await jobs.start(job.id, 'worker-1')).toBe(true);
    return job.id;
  };

  it('applied the committed migrations', async () => {
    const rows = await prisma.$queryRaw<{ migration_name: string; finished_at: Date | null }[]>`
      SELECT migration_name, finished_at FROM _prisma_migrations`;
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.finished_at !== null)).toBe(true);
  });

  describe('create', () => {
    it('inserts a queued, not yet enqueued job with its queued event', async () => {
      const job = await jobs.create(input({ inputs: { image: 'teams/x/inputs/image.png' } }));
      expect(job).toMatchObject({ teamId, task: 't2i', status: JobStatus.queued, enqueuedAt: null, seed: 42n, attempts: 0, progress: 0 });
      expect(job.inputs).toEqual({ image: 'teams/x/inputs/image.png' });
      expect(await eventTypes(job.id)).toEqual(['queued']);
      // the raw insert returns exactly what Prisma reads back
      expect(job).toEqual(await prisma.job.findUnique({ where: { id: job.id } }));
    });

    it('takes a caller-chosen id and a missing seed', async () => {
      const id = randomUUID();
      const job = await jobs.create(input({ id, seed: undefined }));
      expect(job.id).toBe(id);
      expect(job.seed).toBeNull();
    });

    it('is NotFound for an unknown team and AlreadyExists for a taken id, writing nothing', async () => {
      const id = randomUUID();
      await expect(jobs.create(input({ id, teamId: randomUUID() }))).rejects.toBeInstanceOf(NotFound);
      expect(await prisma.job.count({ where: { id } })).toBe(0);
      expect(await prisma.jobEvent.count({ where: { jobId: id } })).toBe(0);
      await jobs.create(input({ id }));
      await expect(jobs.create(input({ id }))).rejects.toBeInstanceOf(AlreadyExists);
      expect(await eventTypes(id)).toEqual(['queued']);
    });
  });

  describe('outbox', () => {
    it('markEnqueued stamps a queued job once handed to Redis', async () => {
      const job = await jobs.create(input());
      expect(await jobs.markEnqueued(job.id)).toBe(true);
      expect((await jobs.get(job.id, teamId))!.enqueuedAt).toBeInstanceOf(Date);
      expect(await eventTypes(job.id)).toEqual(['queued', 'enqueued']);
    });

    it('markEnqueued does not apply to a job a worker already took', async () => {
      const id = await runningJob();
      expect(await jobs.markEnqueued(id)).toBe(false);
    });

    it('pendingEnqueue lists never-enqueued jobs, and stale enqueued ones on request', async () => {
      await prisma.job.deleteMany({ where: { status: JobStatus.queued } });
      const fresh = await jobs.create(input());
      const recent = await jobs.create(input());
      await jobs.markEnqueued(recent.id);
      const stale = await jobs.create(input());
      await jobs.markEnqueued(stale.id);
      await prisma.job.update({ where: { id: stale.id }, data: { enqueuedAt: new Date(Date.now() - 10 * 60_000) } });
      const running = await runningJob();

      const ids = (list: { id: string }[]): string[] => list.map((j) => j.id);
      expect(ids(await jobs.pendingEnqueue(10))).toEqual([fresh.id]);
      expect(ids(await jobs.pendingEnqueue(10, 60_000))).toEqual([fresh.id, stale.id]);
      expect(ids(await jobs.pendingEnqueue(1, 60_000))).toEqual([fresh.id]);
      expect(ids(await jobs.pendingEnqueue(10, 60_000))).not.toContain(running);
    });

    it('pendingEnqueue pages by cursor: a scan reaches every pending job, not the same first page again', async () => {
      await prisma.job.deleteMany({ where: { status: JobStatus.queued } });
      const created: string[] = [];
      for (let i = 0; i < 7; i++) created.push((await jobs.create(input())).id);
      const seen: string[] = [];
      let cursor: { createdAt: Date; id: string } | undefined;
      for (;;) {
        const page = await jobs.pendingEnqueue(3, undefined, cursor);
        seen.push(...page.map((j) => j.id));
        if (page.length < 3) break;
        cursor = { createdAt: page.at(-1)!.createdAt, id: page.at(-1)!.id };
      }
      expect(seen.sort()).toEqual([...created].sort());
    });
  });

  describe('takeUnlessHeld', () => {
    it('does not take a running job from a worker that is still alive; takes it once its heartbeat is old', async () => {
      const id = await runningJob();
      const aliveAfter = new Date(Date.now() - 5_000);
      expect(await jobs.takeUnlessHeld(id, 'worker-2', aliveAfter)).toBe('held');
      expect(await jobs.get(id, teamId)).toMatchObject({ workerId: 'worker-1', attempts: 1 });
      await prisma.job.update({ where: { id }, data: { heartbeatAt: new Date(Date.now() - 60_000) } });
      expect(await jobs.takeUnlessHeld(id, 'worker-2', aliveAfter)).toMatchObject({ id, workerId: 'worker-2', attempts: 2 });
    });
  });

  describe('reaper', () => {
    it('requeueLost takes back a running job whose worker went silent, once; a live one stays', async () => {
      const lost = await runningJob();
      const live = await runningJob();
      const silentBefore = new Date(Date.now() + 1000); // both are older than this: the heartbeat decides
      await jobs.progress(live, 3, 8);
      await prisma.job.update({ where: { id: lost }, data: { heartbeatAt: new Date(Date.now() - 60_000) } });
      expect(await jobs.requeueLost(lost, new Date(Date.now() - 30_000), 'worker lost')).toBe(true);
      expect(await jobs.requeueLost(lost, new Date(Date.now() - 30_000), 'worker lost')).toBe(false);
      expect(await jobs.requeueLost(live, new Date(Date.now() - 30_000), 'worker lost')).toBe(false);
      expect(await jobs.get(lost, teamId)).toMatchObject({ status: JobStatus.queued, enqueuedAt: null, attempts: 1 });
      expect((await jobs.events(lost, teamId)).at(-1)).toMatchObject({ type: 'queued', data: { reason: 'worker lost' } });
      expect((await jobs.runningPage(100)).map((j) => j.id)).toContain(live);
      expect(silentBefore).toBeInstanceOf(Date);
    });
  });

  describe('heartbeat', () => {
    it("keeps a held job that reports no progress from looking silent; stamps only its own worker's running jobs", async () => {
      const held = await runningJob();
      await prisma.job.update({ where: { id: held }, data: { heartbeatAt: new Date(Date.now() - 60_000) } });
      const { workerId } = (await jobs.get(held, teamId))!;
      expect(await jobs.heartbeat([held], 'another-worker')).toEqual({ alive: [], cancelRequested: [] });
      expect(await jobs.heartbeat([held, 'not-a-uuid'], workerId!)).toEqual({ alive: [held], cancelRequested: [] });
      expect(await jobs.requeueLost(held, new Date(Date.now() - 30_000), 'worker lost')).toBe(false);
      expect(await jobs.takeUnlessHeld(held, 'another-worker', new Date(Date.now() - 30_000))).toBe('held');
    });
  });

  describe('statusCounts', () => {
    it("counts a team's jobs per status and gives the oldest queued job's age and the stalest running heartbeat", async () => {
      const team = (await new ApiKeyRepository(prisma).createTeam('counted')).id;
      const make = () => jobs.create(input({ teamId: team }));
      const [q1, q2, r1, r2, s1] = [await make(), await make(), await make(), await make(), await make()];
      await make();
      await prisma.job.update({ where: { id: q1.id }, data: { createdAt: new Date(Date.now() - 120_000) } });
      await prisma.job.update({ where: { id: q2.id }, data: { createdAt: new Date(Date.now() - 30_000) } });
      for (const j of [r1, r2, s1]) expect(await jobs.start(j.id, 'worker-1')).toBe(true);
      await prisma.job.update({ where: { id: r1.id }, data: { heartbeatAt: new Date(Date.now() - 45_000) } });
      expect(await jobs.succeed(s1.id, { resultKey: 'k' })).toBe(true);

      const mine = (await jobs.statusCounts()).filter((r) => r.teamId === team).sort((a, b) => a.status.localeCompare(b.status));
      expect(mine.map(({ status, teamName, jobs: n }) => ({ status, teamName, n }))).toEqual([
        { status: 'queued', teamName: 'counted', n: 3 },
        { status: 'running', teamName: 'counted', n: 2 },
        { status: 'succeeded', teamName: 'counted', n: 1 },
      ]);
      const [queued, running, succeeded] = mine;
      expect(queued!.oldestQueuedSeconds).toBeGreaterThanOrEqual(119);
      expect(queued!.oldestQueuedSeconds).toBeLessThan(140);
      expect(queued!.oldestHeartbeatSeconds).toBeNull();
      expect(running!.oldestHeartbeatSeconds).toBeGreaterThanOrEqual(44);
      expect(running!.oldestHeartbeatSeconds).toBeLessThan(60);
      expect(running!.oldestQueuedSeconds).toBeNull();
      expect(succeeded).toMatchObject({ oldestQueuedSeconds: null, oldestHeartbeatSeconds: null });
    });
  });

  describe('start', () => {
    it('moves a queued job to running and counts the attempt', async () => {
      const job = await jobs.create(input());
      expect(await jobs.start(job.id, 'worker-1', 'batch-1')).toBe(true);
      const row = (await jobs.get(job.id, teamId))!;
      expect(row).toMatchObject({ status: JobStatus.running, workerId: 'worker-1', batchId: 'batch-1', attempts: 1 });
      expect(row.startedAt).toBeInstanceOf(Date);
      const started = (await jobs.events(job.id, teamId)).find((e) => e.type === 'started');
      expect(started?.data).toEqual({ workerId: 'worker-1', batchId: 'batch-1', attempt: 1 });
    });

    it('restarts a stalled running job: attempts + 1, progress reset, retried recorded', async () => {
      const id = await runningJob();
      await jobs.progress(id, 3, 8);
      expect(await jobs.start(id, 'worker-2')).toBe(true);
      expect(await jobs.get(id, teamId)).toMatchObject({ status: JobStatus.running, workerId: 'worker-2', attempts: 2, step: 0, progress: 0 });
      expect(await eventTypes(id)).toEqual(['queued', 'started', 'progress', 'retried', 'started']);
    });

    it('cancels instead of restarting a stalled job whose cancel was requested', async () => {
      const id = await runningJob();
      expect(await jobs.requestCancel(id, teamId)).toBe('cancelRequested');
      expect(await jobs.start(id, 'worker-2')).toBe(false);
      expect((await jobs.get(id, teamId))!.status).toBe(JobStatus.canceled);
      expect(await eventTypes(id)).toEqual(['queued', 'started', 'canceled']);
    });

    it.each([
      ['succeeded', (id: string) => jobs.succeed(id, { resultKey: 'r.png' })],
      ['failed', (id: string) => jobs.fail(id, { code: 'E', message: 'boom' })],
      ['canceled', (id: string) => jobs.canceled(id)],
    ])('never takes a %s job back to running', async (status, finish) => {
      const id = await runningJob();
      expect(await finish(id)).toBe(true);
      expect(await jobs.start(id, 'worker-9')).toBe(false);
      const row = (await jobs.get(id, teamId))!;
      expect(row.status).toBe(status);
      expect(row.attempts).toBe(1);
      expect(await eventTypes(id)).not.toContain('retried');
    });

    it('throws NotFound for unknown and malformed ids', async () => {
      await expect(jobs.start(randomUUID(), 'w')).rejects.toBeInstanceOf(NotFound);
      await expect(jobs.start('not-a-uuid', 'w')).rejects.toBeInstanceOf(NotFound);
    });
  });

  describe('deadline', () => {
    it('a queued job past its deadline is expired by a take or by the reaper, never started; others are left alone', async () => {
      const soon = () => new Date(Date.now() + 300);
      const taken = await jobs.create(input({ deadlineAt: soon() }));
      const swept = await jobs.create(input({ deadlineAt: soon() }));
      const later = await jobs.create(input({ deadlineAt: new Date(Date.now() + 60_000) }));
      expect(await jobs.expireOverdue()).toEqual([]);
      await new Promise((r) => setTimeout(r, 400));
      expect(await jobs.take(taken.id, 'worker-1')).toBeNull();
      expect(await jobs.get(taken.id, teamId)).toMatchObject({ status: 'expired', attempts: 0, startedAt: null, deadlineAt: expect.any(Date) });
      expect(await eventTypes(taken.id)).toEqual(['queued', 'expired']);
      expect(await jobs.expireOverdue()).toEqual([{ id: swept.id, teamId }]);
      expect(await jobs.expireOverdue()).toEqual([]);
      expect((await jobs.get(swept.id, teamId))!.status).toBe('expired');
      expect(await jobs.take(later.id, 'worker-1')).toMatchObject({ status: 'running' });
      expect(await jobs.expire(later.id)).toBe(false);
    });
  });

  describe("a worker's statements", () => {
    const registryRow = workerState({ id: 'worker-1', runningJobs: 4 });
    it('each transition is one statement; the progress of a whole batch is one, and it reports the cancel requests', async () => {
      const sent: string[] = [];
      const counted = createPrisma(db.url, { onQuery: (sql) => sent.push(sql) });
      try {
        const worker = new JobRepository(counted);
        const ids = await Promise.all([1, 2, 3, 4].map(async () => (await jobs.create(input())).id));
        const statements = async (op: () => Promise<unknown>) => {
          sent.length = 0;
          await op();
          return sent.length;
        };
        for (const id of ids) expect(await statements(() => worker.take(id, 'worker-1'))).toBe(1);
        expect(await jobs.requestCancel(ids[3]!, teamId)).toBe('cancelRequested');
        let held: { alive: string[]; cancelRequested: string[] } = { alive: [], cancelRequested: [] };
        expect(await statements(async () => (held = await worker.progressMany(ids.map((id) => ({ id, step: 3, steps: 8 })))))).toBe(1);
        expect(new Set(held.alive)).toEqual(new Set(ids));
        expect(held.cancelRequested).toEqual([ids[3]]);
        expect(await statements(() => worker.preview(ids[0]!, 3, 'p.png'))).toBe(1);
        expect(await statements(() => worker.succeed(ids[0]!, { resultKey: 'r.png', modelChecksum: 'c', timings: { samplingMs: 1 } }))).toBe(1);
        expect(await statements(() => worker.fail(ids[1]!, { code: 'E', message: 'boom' }))).toBe(1);
        expect(await statements(() => worker.canceled(ids[3]!))).toBe(1);
        expect(await statements(() => worker.heartbeat(ids, 'worker-1'))).toBe(1);
        // the tick's one other statement: the worker's registry row (worker.repository.spec.ts)
        expect(await statements(() => new WorkerRepository(counted).beat(registryRow))).toBe(1);
        expect(await jobs.get(ids[0]!, teamId)).toMatchObject({ status: 'succeeded', resultKey: 'r.png', modelChecksum: 'c', timings: { samplingMs: 1 } });
        expect(await jobs.get(ids[2]!, teamId)).toMatchObject({ status: 'running', step: 3, steps: 8, progress: 0.375 });
        expect(await eventTypes(ids[0]!)).toEqual(['queued', 'started', 'progress', 'preview', 'succeeded']);
        expect(await eventTypes(ids[3]!)).toEqual(['queued', 'started', 'progress', 'canceled']);
      } finally {
        await counted.$disconnect();
      }
    });
  });

  describe('progress and preview', () => {
    it('apply only while running', async () => {
      const queued = await jobs.create(input());
      expect(await jobs.progress(queued.id, 1, 8)).toBe(false);
      expect(await jobs.preview(queued.id, 1, 'p.png')).toBe(false);

      const id = await runningJob();
      expect(await jobs.progress(id, 2, 8)).toBe(true);
      expect(await jobs.preview(id, 2, 'teams/t/jobs/j/preview-0002.png')).toBe(true);
      expect(await jobs.get(id, teamId)).toMatchObject({ step: 2, steps: 8, progress: 0.25 });

      await jobs.succeed(id, { resultKey: 'r.png' });
      expect(await jobs.progress(id, 3, 8)).toBe(false);
      expect(await jobs.preview(id, 3, 'p.png')).toBe(false);
      const events = await jobs.events(id, teamId);
      expect(events.map((e) => e.type)).toEqual(['queued', 'started', 'progress', 'preview', 'succeeded']);
      expect(events[2]!.data).toEqual({ step: 2, steps: 8 });
      expect(events[3]!.data).toEqual({ step: 2, key: 'teams/t/jobs/j/preview-0002.png' });
    });
  });

  describe('succeed', () => {
    it('stores the result once: a duplicate delivery changes nothing and adds no event', async () => {
      const id = await runningJob();
      const first = { resultKey: 'first.png', modelChecksum: 'sha256:aa', timings: { totalMs: 12 } };
      expect(await jobs.succeed(id, first)).toBe(true);
      expect(await jobs.succeed(id, { resultKey: 'second.png', modelChecksum: 'sha256:bb' })).toBe(false);
      const row = (await jobs.get(id, teamId))!;
      expect(row).toMatchObject({ status: JobStatus.succeeded, resultKey: 'first.png', modelChecksum: 'sha256:aa', seed: 42n, progress: 1 });
      expect(row.timings).toEqual({ totalMs: 12 });
      expect(row.finishedAt).toBeInstanceOf(Date);
      // the raw read returns exactly what Prisma reads, every column filled in
      expect(row).toEqual(await prisma.job.findUnique({ where: { id } }));
      expect((await eventTypes(id)).filter((t) => t === 'succeeded')).toHaveLength(1);
    });

    it('lets exactly one of two concurrent deliveries win', async () => {
      const id = await runningJob();
      const results = await Promise.all([jobs.succeed(id, { resultKey: 'a.png' }), jobs.succeed(id, { resultKey: 'b.png' })]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await prisma.jobEvent.count({ where: { jobId: id, type: 'succeeded' } })).toBe(1);
    });

    it('takes a text result (mmu)', async () => {
      const job = await jobs.create(input({ task: 'mmu' }));
      await jobs.start(job.id, 'w');
      expect(await jobs.succeed(job.id, { resultText: 'a fox' })).toBe(true);
      expect(await jobs.get(job.id, teamId)).toMatchObject({ resultText: 'a fox', resultKey: null });
    });

    it('does not apply to a queued job', async () => {
      const job = await jobs.create(input());
      expect(await jobs.succeed(job.id, { resultKey: 'x.png' })).toBe(false);
      expect((await jobs.get(job.id, teamId))!.status).toBe(JobStatus.queued);
    });
  });

  describe('fail', () => {
    it('applies from queued and from running, not from a finished job', async () => {
      const queued = await jobs.create(input());
      expect(await jobs.fail(queued.id, { code: 'INVALID_INPUT', message: 'bad mask' })).toBe(true);
      const id = await runningJob();
      expect(await jobs.fail(id, { code: 'OOM', message: 'out of memory', details: { bytes: 1 } })).toBe(true);
      expect(await jobs.get(id, teamId)).toMatchObject({ status: JobStatus.failed, error: { code: 'OOM', message: 'out of memory', details: { bytes: 1 } } });
      expect(await jobs.fail(id, { code: 'AGAIN', message: 'again' })).toBe(false);
      expect(await jobs.succeed(id, { resultKey: 'late.png' })).toBe(false);
      expect((await jobs.get(id, teamId))!.error).toMatchObject({ code: 'OOM' });
    });
  });

  describe('cancel', () => {
    it('cancels a queued job at once, and a worker can no longer start it', async () => {
      const job = await jobs.create(input());
      expect(await jobs.requestCancel(job.id, teamId)).toBe('canceled');
      expect(await jobs.get(job.id, teamId)).toMatchObject({ status: JobStatus.canceled, cancelRequested: true });
      expect(await jobs.start(job.id, 'w')).toBe(false);
      expect(await jobs.requestCancel(job.id, teamId)).toBe('canceled');
      expect(await eventTypes(job.id)).toEqual(['queued', 'canceled']);
    });

    it('flags a running job; its worker then reports it canceled', async () => {
      const id = await runningJob();
      expect(await jobs.isCancelRequested(id)).toBe(false);
      expect(await jobs.requestCancel(id, teamId)).toBe('cancelRequested');
      expect(await jobs.isCancelRequested(id)).toBe(true);
      expect((await jobs.get(id, teamId))!.status).toBe(JobStatus.running);
      expect(await jobs.canceled(id)).toBe(true);
      expect(await jobs.canceled(id)).toBe(false);
      expect((await jobs.get(id, teamId))!.status).toBe(JobStatus.canceled);
      expect(await eventTypes(id)).toEqual(['queued', 'started', 'canceled']);
    });

    it('rejects canceling a finished job with TransitionRejected', async () => {
      const id = await runningJob();
      await jobs.succeed(id, { resultKey: 'r.png' });
      const error = await jobs.requestCancel(id, teamId).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransitionRejected);
      expect(error).toMatchObject({ jobId: id, transition: 'requestCancel', status: JobStatus.succeeded });
      expect(await jobs.get(id, teamId)).toMatchObject({ status: JobStatus.succeeded, cancelRequested: false });
    });

    it("is NotFound for another team's job and unknown ids", async () => {
      const job = await jobs.create(input());
      await expect(jobs.requestCancel(job.id, otherTeamId)).rejects.toBeInstanceOf(NotFound);
      await expect(jobs.requestCancel(randomUUID(), teamId)).rejects.toBeInstanceOf(NotFound);
      await expect(jobs.requestCancel('nope', teamId)).rejects.toBeInstanceOf(NotFound);
      expect((await jobs.get(job.id, teamId))!.status).toBe(JobStatus.queued);
    });

    it('canceled() does not apply to a queued job', async () => {
      const job = await jobs.create(input());
      expect(await jobs.canceled(job.id)).toBe(false);
    });
  });

  describe('team scoping', () => {
    it("hides another team's job and events", async () => {
      const job = await jobs.create(input());
      expect(await jobs.get(job.id, otherTeamId)).toBeNull();
      expect(await jobs.events(job.id, otherTeamId)).toEqual([]);
      expect(await jobs.get(job.id, teamId)).not.toBeNull();
      expect(await jobs.get(randomUUID(), teamId)).toBeNull();
      expect(await jobs.get('../../etc', teamId)).toBeNull();
      expect((await jobs.getUnscoped(job.id))!.teamId).toBe(teamId);
    });

    it('pages events after a given id', async () => {
      const id = await runningJob();
      for (let step = 1; step <= 4; step++) await jobs.progress(id, step, 4);
      const all = await jobs.events(id, teamId);
      expect(all).toHaveLength(6);
      const after = await jobs.events(id, teamId, { afterId: all[2]!.id, limit: 2 });
      expect(after.map((e) => e.id)).toEqual([all[3]!.id, all[4]!.id]);
    });
  });

  describe('one terminal event per job (partial unique index)', () => {
    it('rejects a second terminal event even when written directly', async () => {
      const id = await runningJob();
      await jobs.succeed(id, { resultKey: 'r.png' });
      for (const type of ['succeeded', 'failed', 'canceled']) {
        const error = await prisma.jobEvent.create({ data: { jobId: id, type } }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
        expect((error as Prisma.PrismaClientKnownRequestError).code).toBe('P2002');
      }
      await expect(prisma.$executeRaw`INSERT INTO job_events (job_id, type) VALUES (${id}::uuid, 'failed')`).rejects.toThrow();
      expect(await prisma.jobEvent.count({ where: { jobId: id, type: { in: ['succeeded', 'failed', 'canceled'] } } })).toBe(1);
    });

    it('allows any number of non-terminal events', async () => {
      const job = await jobs.create(input());
      await prisma.jobEvent.createMany({
        data: [
          { jobId: job.id, type: 'enqueued' },
          { jobId: job.id, type: 'enqueued' },
        ],
      });
      expect(await eventTypes(job.id)).toEqual(['queued', 'enqueued', 'enqueued']);
    });
  });

  describe('handBack', () => {
    it('queues a running job again, only from the worker that holds it, keeping its attempts', async () => {
      const id = await runningJob();
      expect(await jobs.handBack(id, 'someone-else')).toBe(false);
      expect(await jobs.handBack(id, 'worker-1')).toBe(true);
      expect(await jobs.get(id, teamId)).toMatchObject({ status: JobStatus.queued, attempts: 1 });
      expect(await jobs.handBack(id, 'worker-1')).toBe(false);
      expect(await jobs.start(id, 'worker-2')).toBe(true);
      expect(await eventTypes(id)).toEqual(['queued', 'started', 'queued', 'started']);
    });
  });

  describe('eventsOf', () => {
    it('returns the events of several jobs after an id, in order', async () => {
      const from = await jobs.lastEventId();
      const a = await runningJob();
      const b = await runningJob();
      await jobs.progress(a, 1, 2);
      await jobs.progress(b, 1, 2);
      const events = await jobs.eventsOf([a, b, 'not-a-uuid'], from);
      expect(events.map((e) => e.jobId)).toEqual([a, a, b, b, a, b]);
      expect(events.map((e) => e.type)).toEqual(['queued', 'started', 'queued', 'started', 'progress', 'progress']);
      expect(await jobs.eventsOf([a], events.at(-1)!.id)).toEqual([]);
      expect(await jobs.lastEventId()).toBe(events.at(-1)!.id);
    });
  });

  describe('eventsAfter', () => {
    it("reads each job's events after its own cursor, exactly, in id order, as Prisma reads them", async () => {
      const a = await runningJob();
      const b = await runningJob();
      const aStarted = await jobs.lastEventIdOf(a);
      await jobs.progress(b, 1, 4);
      const bProgressed = await jobs.lastEventIdOf(b);
      await jobs.progress(a, 2, 4);
      await jobs.progress(b, 3, 4);
      const events = await jobs.eventsAfter(
        new Map([
          [a, aStarted],
          [b, bProgressed],
          ['not-a-uuid', 0n],
        ]),
      );
      expect(events.map((e) => [e.jobId, (e.data as { step: number }).step])).toEqual([
        [a, 2],
        [b, 3],
      ]);
      expect(events).toEqual(await prisma.jobEvent.findMany({ where: { id: { in: events.map((e) => e.id) } }, orderBy: { id: 'asc' } }));
      expect(
        await jobs.eventsAfter(
          new Map([
            [a, 0n],
            [b, 0n],
          ]),
          3,
        ),
      ).toHaveLength(3);
    });
  });

  describe('BatchRepository', () => {
    it('records a finished batch and points its jobs at it (first batch wins)', async () => {
      const batches = new BatchRepository(prisma);
      const a = await runningJob();
      const b = await runningJob();
      const t0 = new Date(Date.now() - 1000);
      const first = await batches.record({ workerId: 'w', startedAt: t0, finishedAt: new Date(), jobIds: [a], stats: { steps: 3 } });
      const second = await batches.record({ workerId: 'w', startedAt: new Date(), finishedAt: new Date(), jobIds: [a, b], stats: { steps: 5 } });
      expect((await jobs.get(a, teamId))!.batchId).toBe(first.id);
      expect((await jobs.get(b, teamId))!.batchId).toBe(second.id);
      expect(first.createdAt).toEqual(t0);
      expect((await batches.recent(2)).map((x) => x.id)).toEqual([second.id, first.id]);
    });

    it('opens and closes a batch with its stats', async () => {
      const batches = new BatchRepository(prisma);
      const batch = await batches.open('worker-1');
      expect(batch.finishedAt).toBeNull();
      const closed = await batches.close(batch.id, { jobs: 4, msPerStep: 3.5 });
      expect(closed.finishedAt).toBeInstanceOf(Date);
      expect(closed.stats).toEqual({ jobs: 4, msPerStep: 3.5 });
      await expect(batches.close(randomUUID())).rejects.toBeInstanceOf(NotFound);
    });
  });
});

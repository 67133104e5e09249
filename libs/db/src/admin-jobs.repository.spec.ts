import { randomUUID } from 'node:crypto';

import { AdminJobRepository } from './admin-jobs.repository';
import { ApiKeyRepository } from './api-key.repository';
import { type CreateJobInput, EVERY_TEAM, idPrefixRange, JobRepository } from './job.repository';
import { createPrisma, type PrismaClient } from './prisma';
import { createTestDatabase, type TestDatabase } from './testing';

describe('admin reads of every team (PostgreSQL)', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let jobs: JobRepository;
  let admin: AdminJobRepository;
  let acme: string;
  let globex: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    prisma = createPrisma(db.url);
    jobs = new JobRepository(prisma);
    admin = new AdminJobRepository(prisma);
    const teams = new ApiKeyRepository(prisma);
    acme = (await teams.createTeam('acme')).id;
    globex = (await teams.createTeam('globex')).id;
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const input = (teamId: string, overrides: Partial<CreateJobInput> = {}): CreateJobInput => ({
    teamId,
    task: 't2i',
    params: { prompt: 'a red fox' },
    inputs: { images: [] },
    model: 'tiny',
    ...overrides,
  });

  it('reads a job, its events and deletes it in one team’s scope or in every team’s (EVERY_TEAM)', async () => {
    const job = await jobs.create(input(acme));
    expect(await jobs.get(job.id, globex)).toBeNull();
    expect((await jobs.get(job.id, EVERY_TEAM))?.id).toBe(job.id);
    expect(await jobs.events(job.id, globex)).toEqual([]);
    expect((await jobs.events(job.id, EVERY_TEAM)).map((e) => e.type)).toEqual(['queued']);
    await jobs.fail(job.id, { code: 'x', message: 'y' });
    await expect(jobs.markDeleted(job.id, globex)).rejects.toThrow(/not found/);
    expect((await jobs.markDeleted(job.id, EVERY_TEAM)).deletedAt).toBeInstanceOf(Date);
    expect(await jobs.get(job.id, EVERY_TEAM)).toBeNull();
    expect(await admin.get(job.id)).toBeNull();
  });

  it('records a retry and its audit entry with the job, in one statement', async () => {
    const original = await jobs.create(input(acme));
    const actor = { keyId: null, label: 'bootstrap' };
    const retried = await jobs.create(
      input(acme, { retryOf: original.id, audit: { actor, action: 'job.retry', targetId: original.id, details: { retryOf: original.id } } }),
    );
    expect(retried.retryOf).toBe(original.id);
    expect(retried).toEqual(await prisma.job.findUnique({ where: { id: retried.id } }));
    const entries = await prisma.auditEntry.findMany({ where: { action: 'job.retry' } });
    expect(entries).toMatchObject([{ actor: 'bootstrap', actorKeyId: null, targetType: 'job', targetId: original.id, details: { retryOf: original.id } }]);
    // without an audit: no entry; the target defaults to the new job
    const plain = await jobs.create(input(globex));
    const asTeam = await jobs.create(input(globex, { audit: { actor, action: 'job.submit_as', details: { teamId: globex } } }));
    expect(await prisma.auditEntry.count({ where: { targetId: plain.id } })).toBe(0);
    expect(await prisma.auditEntry.count({ where: { targetId: asTeam.id, action: 'job.submit_as' } })).toBe(1);
    // a refused insert writes no entry either
    await expect(jobs.create(input(randomUUID(), { audit: { actor, action: 'job.lost', details: {} } }))).rejects.toThrow();
    expect(await prisma.auditEntry.count({ where: { action: 'job.lost' } })).toBe(0);
  });

  it('lists every team’s jobs newest first with their team, filtered, by id prefix and by cursor', async () => {
    const made = [];
    for (const [i, team] of [acme, globex, acme, globex, acme].entries()) made.push(await jobs.create(input(team, { task: i === 4 ? 'mmu' : 't2i' })));
    const all = await admin.list({ limit: 100 });
    const ids = all.jobs.map((j) => j.id);
    expect(ids.slice(0, 5)).toEqual(made.map((j) => j.id).reverse());
    expect(all.jobs[0]).toMatchObject({ teamId: acme, teamName: 'acme', task: 'mmu' });

    expect((await admin.list({ limit: 100, teamId: globex })).jobs.every((j) => j.teamName === 'globex')).toBe(true);
    expect((await admin.list({ limit: 100, task: ['mmu'] })).jobs.map((j) => j.id)).toEqual([made[4]!.id]);
    expect((await admin.list({ limit: 100, status: ['running'] })).jobs).toEqual([]);
    expect((await admin.list({ limit: 100, until: new Date(made[0]!.createdAt.getTime()) })).jobs.map((j) => j.id)).not.toContain(made[0]!.id);

    const target = made[2]!.id;
    for (const length of [1, 8, 9, 14, 36]) {
      const found = (await admin.list({ limit: 100, idPrefix: target.slice(0, length) })).jobs.map((j) => j.id);
      expect(found).toContain(target);
      expect(found.every((id) => id.startsWith(target.slice(0, length)))).toBe(true);
    }

    const first = await admin.list({ limit: 2 });
    expect(first.hasMore).toBe(true);
    const second = await admin.list({ limit: 2, after: first.jobs[1]!.id });
    expect(second.jobs.map((j) => j.id)).toEqual(ids.slice(2, 4));
    expect(await admin.list({ limit: 2, after: randomUUID() })).toEqual({ jobs: [], hasMore: false });
  });

  it('reads a job’s whole history, oldest first', async () => {
    const job = await jobs.create(input(globex));
    await jobs.start(job.id, 'worker-1');
    await jobs.progress(job.id, 1, 4);
    expect((await admin.history(job.id)).map((e) => e.type)).toEqual(['queued', 'started', 'progress']);
    expect(await admin.history('nope')).toEqual([]);
  });

  it('turns an id prefix into the range of ids that start with it', () => {
    expect(idPrefixRange('0b6f')).toEqual({ gte: '0b6f0000-0000-0000-0000-000000000000', lte: '0b6fffff-ffff-ffff-ffff-ffffffffffff' });
    expect(idPrefixRange('0b6f3c5e-8')).toEqual({ gte: '0b6f3c5e-8000-0000-0000-000000000000', lte: '0b6f3c5e-8fff-ffff-ffff-ffffffffffff' });
  });
});

/**
 * Postgres against BullMQ (issue 11): the outbox pages through queued jobs by cursor, so a lost job behind more than a
 * page of healthy ones is found; the reaper fails a running job BullMQ gave up on without the worker's handler, and
 * requeues a running job whose worker went silent and that Redis lost, exactly once; the orphan sweeper removes old
 * objects no job row points at.
 */
import { randomUUID } from 'node:crypto';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import pg from 'pg';
import type { JobView } from '@dimoo/contracts';
import type { PrismaClient } from '@dimoo/db';
import { createPrisma, JobRepository } from '@dimoo/db';
import { FairQueue, GENERATION_JOB_OPTIONS, QUEUE_NAMES, redisConnection, redisOptions } from '@dimoo/queue';
import { Redis } from 'ioredis';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformStore, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import type { ObjectStore } from '@dimoo/storage';
import { inputKey } from '@dimoo/storage';

let p: Platform;
let key: string;
let prisma: PrismaClient;
let jobs: JobRepository;
let queue: Queue;
let redis: Redis;
let fair: FairQueue;
let teamId: string;
let store: ObjectStore;

async function call(method: string, path: string, k: string, body?: unknown): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

const view = async (id: string) => (await (await call('GET', `/v1/jobs/${id}`, key)).json()) as JobView;

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(100)) {
    const v = await probe();
    if (v) return v;
  }
  throw new Error(`timed out waiting for ${what}\n${p.api.output.join('').slice(-2000)}`);
}

beforeAll(async () => {
  // no worker: jobs stay where the test puts them; passes every 300 ms; a job is "silent" after 1.5 s, an object
  // without a job an orphan after 3 s
  p = await startPlatform({
    apiEnv: {
      OUTBOX_PAGE_SIZE: '20',
      REAPER_INTERVAL_MS: '300',
      REAPER_STALE_MS: '1500',
      ORPHAN_SWEEP_INTERVAL_MS: '300',
      ORPHAN_MIN_AGE_MS: '3000',
    },
  });
  const team = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'reconciler' })).json()) as { id: string };
  teamId = team.id;
  store = platformStore(p);

  key = ((await (await call('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'k' })).json()) as { key: string }).key;
  prisma = createPrisma(p.db.url);
  jobs = new JobRepository(prisma);
  queue = new Queue(QUEUE_NAMES.generation, { connection: redisConnection(p.env['REDIS_URL']!, { offlineQueue: true }), prefix: p.env['QUEUE_PREFIX'] });
  redis = new Redis(redisOptions(p.env['REDIS_URL']!, { offlineQueue: true }));
  fair = new FairQueue(redis, p.env['QUEUE_PREFIX']!, 8);
}, 120_000);

afterAll(async () => {
  await queue?.close();
  redis?.disconnect();
  await prisma?.$disconnect();
  await p?.close();
});

describe('event streams', () => {
  it('deliver an event whose transaction committed after a later-numbered event of another job', async () => {
    const [a, b] = [
      (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 11 })).json()) as JobView,
      (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 12 })).json()) as JobView,
    ];
    // both followed: one poll serves both streams
    const other = await fetch(`${p.url}/v1/jobs/${b.id}/events`, { headers: { authorization: `Bearer ${key}` } });
    const stream = await fetch(`${p.url}/v1/jobs/${a.id}/events`, { headers: { authorization: `Bearer ${key}` } });
    const reader = stream.body!.getReader();
    let text = '';
    const read = async (until: (t: string) => boolean) => {
      const t0 = Date.now();
      while (!until(text) && Date.now() - t0 < 5000) {
        const { value } = await Promise.race([reader.read(), sleep(500).then(() => ({ value: undefined }))]);
        if (value) text += Buffer.from(value).toString();
      }
      return until(text);
    };
    expect(await read((t) => t.includes('event: queued'))).toBe(true);
    // job a's event gets the lower id but commits last, after job b's has been seen by the poll
    const slow = new pg.Client({ connectionString: p.db.url });
    await slow.connect();
    await slow.query('BEGIN');
    await slow.query(`INSERT INTO job_events (job_id, type, data) VALUES ($1, 'progress', '{"step": 1, "steps": 16}')`, [a.id]);
    await prisma.$executeRaw`INSERT INTO job_events (job_id, type, data) VALUES (${b.id}::uuid, 'progress', '{"step": 1, "steps": 16}'::jsonb)`;
    await sleep(1000); // several polls see b's event (a later id) first
    await slow.query('COMMIT');
    await slow.end();
    expect(await read((t) => t.includes('event: progress'))).toBe(true);
    await reader.cancel();
    await other.body!.cancel();
    for (const j of [a, b]) await call('POST', `/v1/jobs/${j.id}/cancel`, key);
  });
});

describe('the outbox', () => {
  it('finds a job Redis lost behind more than a page of healthy queued jobs', async () => {
    // 120 queued jobs, all in Redis (nobody works them); pages of 20, so the newest is on the sixth page
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      ids.push(((await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: i })).json()) as JobView).id);
    }
    const lost = ids.at(-1)!;
    // it waits in the fair queue (BullMQ holds only DISPATCH_AHEAD jobs): Redis loses it there
    expect(await fair.remove(teamId, lost)).toBe(true);
    expect(await queue.getJobState(lost)).toBe('unknown');
    // once it counts as stale (5 outbox intervals), a pass pages its way to it
    await until('the lost job back in Redis', async () => (await fair.waitingOf([lost])).size === 1);
    // out of the way of the next tests (a queued job is canceled at once)
    for (const id of ids) expect((await call('POST', `/v1/jobs/${id}/cancel`, key)).status).toBe(202);
  });
});

describe('the reaper', () => {
  it('fails a running job BullMQ gave up on without the worker recording it, once', async () => {
    const job = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a blue square', seed: 1 })).json()) as JobView;
    // a worker that takes the row, then dies as BullMQ sees it: the job fails in the queue, the row says running
    const ghost = new Worker(
      QUEUE_NAMES.generation,
      async (j) => {
        await jobs.take(j.id!, 'ghost');
        throw new UnrecoverableError('job stalled more than allowable limit');
      },
      { connection: redisConnection(p.env['REDIS_URL']!, { offlineQueue: true }), prefix: p.env['QUEUE_PREFIX'] },
    );
    try {
      const failed = await until('the reaper', async () => {
        const v = await view(job.id);
        return v.status === 'failed' ? v : null;
      });
      expect(failed.error).toEqual({ type: 'queue-failed', message: 'the queue gave up on the job: job stalled more than allowable limit' });
      const events = await prisma.jobEvent.findMany({ where: { jobId: job.id, type: 'failed' } });
      expect(events).toHaveLength(1);
    } finally {
      await ghost.close();
    }
  });
});

describe('a lost running job', () => {
  it('goes back to the queue after REAPER_STALE_MS of silence, once, and a worker completes it', async () => {
    const job = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a green circle', seed: 3 })).json()) as JobView;
    // a worker took it (row running), then the worker and Redis's copy of the job were both lost
    await jobs.take(job.id, 'vanished');
    await fair.remove(teamId, job.id); // wherever Redis held it: the fair queue or BullMQ
    await (await queue.getJob(job.id))?.remove();
    const requeued = await until('the requeue', async () => {
      const v = await view(job.id);
      return v.status === 'queued' ? v : null;
    });
    expect(requeued.attempts).toBe(1);
    const queuedEvents = await prisma.jobEvent.findMany({ where: { jobId: job.id, type: 'queued' }, orderBy: { id: 'asc' } });
    expect(queuedEvents.map((e) => (e.data as { reason?: string } | null)?.reason ?? null)).toEqual([null, 'its worker went silent and the queue lost it']);
    // the outbox hands it to Redis again; a worker runs it to the end
    await until('back in Redis', async () => (await fair.waitingOf([job.id])).size === 1 || (await queue.getJobState(job.id)) !== 'unknown');
    const worker = new WorkerProcess(p.workerEnv);
    try {
      await worker.ready();
      const done = await until('the job to finish', async () => {
        const v = await view(job.id);
        return v.status === 'succeeded' ? v : null;
      });
      expect(done.attempts).toBe(2);
    } finally {
      await worker.kill('SIGKILL');
    }
    expect(GENERATION_JOB_OPTIONS.attempts).toBeGreaterThan(1);
  });
});

describe('the orphan sweeper', () => {
  it('removes the inputs of a job that was never recorded once they are old enough, and nothing else', async () => {
    const recorded = (await (await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'a red circle', seed: 31 })).json()) as JobView;
    const orphan = inputKey(teamId, randomUUID(), 'image.bin'); // what an API killed between upload and row leaves
    const kept = inputKey(teamId, recorded.id, 'image.bin');
    const other = `teams/${teamId}/notes.txt`; // not a job object: never touched
    for (const k of [orphan, kept, other]) await store.put(k, Buffer.from('x'), 'application/octet-stream');
    const mine = new Set([orphan, kept, other]); // earlier tests left results under this team too
    const keys = async () =>
      (await store.list(`teams/${teamId}/`))
        .map((o) => o.key)
        .filter((k) => mine.has(k))
        .sort();
    // younger than ORPHAN_MIN_AGE_MS: still there after several passes
    await sleep(1000);
    expect(await keys()).toEqual([orphan, kept, other].sort());
    await until('the orphan to be swept', async () => !(await keys()).includes(orphan), 15_000);
    expect(await keys()).toEqual([kept, other].sort());
  });
});

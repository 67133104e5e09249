/**
 * npm run bench:serve — the service end to end on this machine (a fresh Postgres database, a private Redis, an
 * S3-protocol server, the API and worker processes, the tiny model), all figures from this one run:
 *  1. end-to-end images/s (API → queue → worker → storage) ÷ the raw engine's images/s at the same batch size
 *     (64 steps, guidance on), and the per-job overhead (job time not spent in the engine), p50/p95, one job at a time;
 *  2. batched worker ÷ batch-1 worker images/s under a saturated queue;
 *  3. continuous ÷ static batching under Poisson arrivals at 25%, 50% and 90% of capacity: p50/p95 latency, throughput;
 *  4. ML-Cache on ÷ off at the service level (saturated, 64 steps, guidance on, τ = 1).
 * Job times come from the job rows (createdAt, startedAt, finishedAt, timings), not from client polling.
 */
import { resolve } from 'node:path';
import { createPrisma, type PrismaClient } from '@dimoo/db';
import { createTestDatabase } from '@dimoo/db/testing';
import { freePort, platformServiceEnv, RedisServer, ServiceProcess, sleep, WorkerProcess } from '@dimoo/platform';
import type { LocalRequest } from '@dimoo/contracts';
import { encodeResult, finish, loadModel, newEngine, prepare, resolveLocal } from '@dimoo/runtime';
import { startS3Server } from '@dimoo/storage/testing';

const MODEL_DIR = resolve(__dirname, '../../../models/tiny');
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const PROMPTS = ['a red circle at the top left', 'a blue square at the center', 'a green triangle at the bottom right', 'a yellow circle at the right'];

interface JobRow {
  id: string;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  status: string;
  timings: unknown;
}

interface Timings {
  admitWaitMs: number;
  prepareMs: number;
  samplingMs: number;
  decodeMs: number;
  uploadMs: number;
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const f = (x: number, d = 1) => x.toFixed(d);

class Bench {
  private prisma!: PrismaClient;
  private url = '';
  private key = '';
  private workerEnv: NodeJS.ProcessEnv = {};
  private readonly closers: (() => Promise<unknown>)[] = [];

  async start(): Promise<void> {
    const db = await createTestDatabase();
    this.closers.push(() => db.drop());
    const s3 = await startS3Server();
    this.closers.push(() => s3.dispose());
    const redis = new RedisServer(await freePort());
    await redis.start();
    this.closers.push(() => redis.stop());
    const shared = platformServiceEnv({ databaseUrl: db.url, redisPort: redis.port, s3, name: 'dimoo-bench', modelDir: MODEL_DIR });
    const port = await freePort();
    const api = new ServiceProcess(
      'apps/api/src/main.ts',
      { ...shared, ADMIN_API_KEY: ADMIN_KEY, PORT: String(port), OUTBOX_INTERVAL_MS: '1000' },
      'listening on',
    );
    this.closers.unshift(() => api.kill('SIGTERM'));
    await api.ready();
    this.url = `http://127.0.0.1:${port}`;
    this.workerEnv = { ...shared, LOCK_DURATION_MS: '30000', PROGRESS_INTERVAL_MS: '500', PREVIEW_EVERY_STEPS: '0', INTRA_OP_THREADS: '1' };
    this.prisma = createPrisma(db.url);
    this.closers.unshift(() => this.prisma.$disconnect());
    const team = (await this.post('/v1/teams', ADMIN_KEY, { name: 'bench' })) as { id: string };
    this.key = ((await this.post(`/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'bench' })) as { key: string }).key;
  }

  async close(): Promise<void> {
    for (const c of this.closers) await c().catch(() => undefined);
  }

  private async post(path: string, key: string, body: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }

  async submit(body: object): Promise<string> {
    return ((await this.post('/v1/jobs', this.key, body)) as { id: string }).id;
  }

  /** Waits for every job to finish (reads the rows, 20 ms apart) and returns them. */
  async settle(ids: string[], timeoutMs = 600000): Promise<JobRow[]> {
    const t0 = Date.now();
    for (;;) {
      const rows = await this.prisma.job.findMany({
        where: { id: { in: ids } },
        select: { id: true, createdAt: true, startedAt: true, finishedAt: true, status: true, timings: true },
      });
      if (rows.every((r) => r.finishedAt !== null)) {
        const bad = rows.filter((r) => r.status !== 'succeeded');
        if (bad.length > 0) throw new Error(`${bad.length} job(s) did not succeed: ${bad[0]!.status}`);
        return rows;
      }
      if (Date.now() - t0 > timeoutMs) throw new Error('jobs did not finish');
      await sleep(20);
    }
  }

  async withWorker<T>(env: Record<string, string>, body: () => Promise<T>): Promise<T> {
    const w = new WorkerProcess({ ...this.workerEnv, ...env });
    try {
      await w.ready();
      return await body();
    } finally {
      await w.kill('SIGTERM');
    }
  }
}

/** Images/s of jobs that were all submitted at once: from the first row created to the last finished. */
function throughput(rows: JobRow[]): number {
  const first = Math.min(...rows.map((r) => r.createdAt.getTime()));
  const last = Math.max(...rows.map((r) => r.finishedAt!.getTime()));
  return (rows.length * 1000) / (last - first);
}

const latencies = (rows: JobRow[]) => rows.map((r) => r.finishedAt!.getTime() - r.createdAt.getTime());

async function rawEngine(requests: LocalRequest[], batch: number): Promise<number> {
  const m = await loadModel(MODEL_DIR, { provider: 'cpu', allowCpuFallback: false, intraOpThreads: 1 });
  const t0 = performance.now();
  for (let i = 0; i < requests.length; i += batch) {
    const jobs = requests.slice(i, i + batch).map((r) => resolveLocal(m.manifest, r));
    const seqs = await Promise.all(jobs.map((job, j) => prepare(m, `raw${i + j}`, job)));
    await newEngine(m).run(seqs);
    for (const [j, s] of seqs.entries()) {
      const out = await finish(m, s);
      if (out.kind === 'image') await encodeResult(jobs[j]!.job, out.rgb);
    }
  }
  return (requests.length * 1000) / (performance.now() - t0);
}

/** Exponential inter-arrival times with rate `perSecond`, from a fixed seed (the same arrivals for both modes). */
function poissonGaps(n: number, perSecond: number, seed: number): number[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return Array.from({ length: n }, () => (-Math.log(rand()) / perSecond) * 1000);
}

async function main(): Promise<void> {
  const out: string[] = [`serving benchmark — tiny model, ${new Date().toISOString()}`];
  const log = (line = '') => {
    out.push(line);
    console.log(line);
  };
  const b = new Bench();
  await b.start();
  try {
    const t2i = (n: number, extra: object, seed0 = 1) =>
      Array.from({ length: n }, (_, i) => ({ task: 't2i', prompt: PROMPTS[i % PROMPTS.length]!, seed: seed0 + i, ...extra }));

    // 1. end to end vs the raw engine at the same batch size
    const B = 4;
    const guided = { steps: 64, cfg: 1, temperature: 1 };
    const reqs = t2i(4 * B, guided);
    log();
    log(`1. end to end ÷ raw engine (t2i 64 steps, cfg 1, τ 1; ${reqs.length} jobs, batch ${B})`);
    const raw = await rawEngine(reqs as LocalRequest[], B);
    const e2e = await b.withWorker({ BATCH_SLOTS: String(B) }, async () => throughput(await b.settle(await Promise.all(reqs.map((r) => b.submit(r))))));
    log(`   raw engine ${f(raw, 2)} images/s, end to end ${f(e2e, 2)} images/s → ${f(e2e / raw, 2)}×`);

    const overhead = await b.withWorker({ BATCH_SLOTS: String(B) }, async () => {
      const rows: JobRow[] = [];
      for (const r of t2i(20, { steps: 16 }, 100)) rows.push(...(await b.settle([await b.submit(r)])));
      return rows;
    });
    const parts = overhead.map((r) => {
      const t = r.timings as Timings;
      const total = r.finishedAt!.getTime() - r.createdAt.getTime();
      return {
        total,
        overhead: total - t.prepareMs - t.samplingMs - t.decodeMs,
        pickup: r.startedAt!.getTime() - r.createdAt.getTime(),
        admit: t.admitWaitMs,
        upload: t.uploadMs,
      };
    });
    const p = (k: keyof (typeof parts)[number], q: number) =>
      f(
        pct(
          parts.map((x) => x[k]),
          q,
        ),
      );
    log(
      `   per-job overhead, one job at a time (16 steps, ${parts.length} jobs): p50 ${p('overhead', 0.5)} ms, p95 ${p('overhead', 0.95)} ms of p50 ${p('total', 0.5)} ms per job`,
    );
    log(`     of which (p50) row committed → worker started ${p('pickup', 0.5)} ms, batch wait window ${p('admit', 0.5)} ms, upload ${p('upload', 0.5)} ms`);

    // 2. batched vs batch-1 worker, saturated
    log();
    log('2. batched ÷ batch-1 worker, saturated queue (16 jobs, t2i 32 steps, cfg 1)');
    const sat = t2i(16, { steps: 32, cfg: 1 }, 200);
    const one = await b.withWorker({ BATCH_SLOTS: '1' }, async () => throughput(await b.settle(await Promise.all(sat.map((r) => b.submit(r))))));
    const eight = await b.withWorker({ BATCH_SLOTS: '8' }, async () => throughput(await b.settle(await Promise.all(sat.map((r) => b.submit(r))))));
    log(`   batch 1: ${f(one, 2)} images/s, batch 8: ${f(eight, 2)} images/s → ${f(eight / one, 2)}×`);

    // 3. continuous vs static under Poisson arrivals (mixed lengths: 16, 32 or 48 steps)
    log();
    log('3. continuous ÷ static batching, Poisson arrivals (20 jobs of 16/32/48 steps, cfg 1, 8 slots)');
    const mixed = Array.from({ length: 20 }, (_, i) => ({
      task: 't2i',
      prompt: PROMPTS[i % PROMPTS.length]!,
      seed: 300 + i,
      steps: [16, 32, 48][i % 3]!,
      cfg: 1,
    }));
    const capacity = await b.withWorker({ BATCH_SLOTS: '8' }, async () => throughput(await b.settle(await Promise.all(mixed.map((r) => b.submit(r))))));
    log(`   capacity (all submitted at once, continuous): ${f(capacity, 2)} images/s`);
    for (const load of [0.25, 0.5, 0.9]) {
      const gaps = poissonGaps(mixed.length, load * capacity, 7 + load * 100);
      const runMode = (mode: string) =>
        b.withWorker({ BATCH_SLOTS: '8', BATCH_MODE: mode }, async () => {
          const ids: string[] = [];
          for (let i = 0; i < mixed.length; i++) {
            ids.push(await b.submit(mixed[i]!));
            await sleep(gaps[i]!);
          }
          const rows = await b.settle(ids);
          return { lat: latencies(rows), ips: throughput(rows) };
        });
      const c = await runMode('continuous');
      const s = await runMode('static');
      log(
        `   load ${String(load * 100).padStart(2)}%: p50 ${f(pct(c.lat, 0.5), 0)} vs ${f(pct(s.lat, 0.5), 0)} ms (${f(pct(s.lat, 0.5) / pct(c.lat, 0.5), 2)}× lower), ` +
          `p95 ${f(pct(c.lat, 0.95), 0)} vs ${f(pct(s.lat, 0.95), 0)} ms (${f(pct(s.lat, 0.95) / pct(c.lat, 0.95), 2)}× lower), ` +
          `throughput ${f(c.ips, 2)} vs ${f(s.ips, 2)} images/s (${f(c.ips / s.ips, 2)}×)`,
      );
    }

    // 4. ML-Cache at the service level
    log();
    log('4. ML-Cache on ÷ off at the service level (16 jobs, t2i 64 steps, cfg 1, τ 1, 8 slots, saturated)');
    const cacheRun = (cache: boolean) =>
      b.withWorker({ BATCH_SLOTS: '8' }, async () =>
        throughput(await b.settle(await Promise.all(t2i(16, { ...guided, ...(cache ? { cache: true } : {}) }, 400).map((r) => b.submit(r))))),
      );
    const off = await cacheRun(false);
    const on = await cacheRun(true);
    log(`   off ${f(off, 2)} images/s, on ${f(on, 2)} images/s → ${f(on / off, 2)}×`);
  } finally {
    await b.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

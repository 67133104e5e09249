/**
 * npm run bench:soak — a bounded soak run (SOAK_MINUTES, default 8, at most 10): mixed tasks (t2i, paint, i2i, mmu)
 * arriving at ~70% of the capacity measured first, two workers, one of them SIGKILLed every 60 s (and restarted).
 * Prints, per minute, jobs accepted and finished, p50/p95 latency and the API's and workers' RSS; at the end, accepted
 * / succeeded / failed / lost. Goal: 0 lost, RSS flat.
 */
import { readFile } from 'node:fs/promises';
import type { JobView } from '@dimoo/contracts';
import { createPrisma } from '@dimoo/db';
import { encodePng } from '@dimoo/model';
import { ADMIN_KEY, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

const MINUTES = Math.min(10, Number(process.env['SOAK_MINUTES'] ?? 8));

const rss = async (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''))?.[1] ?? 0) / 1024;
const pct = (xs: number[], q: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]! : NaN);

async function main(): Promise<void> {
  const p = await startPlatform({ apiEnv: { REAPER_INTERVAL_MS: '2000', REAPER_STALE_MS: '20000' } });
  const prisma = createPrisma(p.db.url);
  const workerEnv = { ...p.workerEnv, BATCH_SLOTS: '4', LOCK_DURATION_MS: '10000', PREVIEW_EVERY_STEPS: '0', INTRA_OP_THREADS: '1' };
  const workers = [new WorkerProcess(workerEnv), new WorkerProcess(workerEnv)];
  const post = async (path: string, key: string, body: unknown) => {
    const res = await fetch(`${p.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  try {
    await Promise.all(workers.map((w) => w.ready()));
    const team = (await post('/v1/teams', ADMIN_KEY, { name: 'soak' })).body as { id: string };
    const key = ((await post(`/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'soak' })).body as { key: string }).key;
    const square = await encodePng({
      width: 128,
      height: 128,
      data: new Uint8Array(128 * 128 * 3).map((_, i) => (i % 3 === 0 && (i / 3) % 128 > 40 ? 200 : 0)),
    });
    const half = await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).map((_, i) => ((i / 3) % 128 >= 64 ? 255 : 0)) });
    const image = square.toString('base64');
    const kinds = [
      (s: number) => ({ task: 't2i', prompt: 'a red circle at the top left', seed: s, steps: 16, cfg: 1 }),
      (s: number) => ({ task: 'paint', prompt: 'a blue square at the center', image, mask: half.toString('base64'), seed: s, steps: 16 }),
      (s: number) => ({ task: 'i2i', prompt: 'make it blue', editType: 'edit', images: [image], seed: s, steps: 16 }),
      (s: number) => ({ task: 'mmu', question: 'what colour is the shape ?', image, seed: s }),
    ];
    const accepted: string[] = [];
    const submit = async (i: number) => {
      const r = await post('/v1/jobs', key, kinds[i % kinds.length]!(i));
      if (r.status === 202) accepted.push((r.body as JobView).id);
    };
    const settle = async (ids: string[], timeoutMs: number) => {
      for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(250)) {
        if ((await prisma.job.count({ where: { id: { in: ids }, finishedAt: null } })) === 0) return;
      }
    };

    // capacity: 24 mixed jobs submitted at once
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 24 }, (_, i) => submit(i)));
    await settle(accepted.slice(), 300_000);
    const capacity = (24 * 1000) / (Date.now() - t0);
    const rate = 0.7 * capacity;
    console.log(
      `capacity ${capacity.toFixed(2)} jobs/s (2 workers × 4 slots, mixed tasks); soaking ${MINUTES} min at ${rate.toFixed(2)} jobs/s, a worker SIGKILLed every 60 s`,
    );
    console.log('minute | accepted | finished | p50 ms | p95 ms | API RSS MiB | workers RSS MiB');
    accepted.length = 0;

    let seed = 1000;
    let rnd = 42;
    const random = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31), (rnd + 0.5) / 2 ** 31);
    const start = Date.now();
    let kills = 0;
    for (let minute = 1; minute <= MINUTES; minute++) {
      const end = start + minute * 60_000;
      const submitted = accepted.length;
      while (Date.now() < end) {
        void submit(seed++);
        await sleep((-Math.log(random()) / rate) * 1000);
      }
      // one worker dies at the end of every minute; a fresh one takes its place
      const victim = kills++ % workers.length;
      await workers[victim]!.kill('SIGKILL');
      workers[victim] = new WorkerProcess(workerEnv);
      const finished = await prisma.job.findMany({
        where: { id: { in: accepted }, finishedAt: { gte: new Date(end - 60_000), lt: new Date(end) } },
        select: { createdAt: true, finishedAt: true },
      });
      const lat = finished.map((j) => j.finishedAt!.getTime() - j.createdAt.getTime());
      const workerRss = (await Promise.all(workers.filter((w) => w !== workers[victim]).map((w) => rss(w.pid)))).reduce((a, b) => a + b, 0);
      console.log(
        `${minute} | ${accepted.length - submitted} | ${finished.length} | ${pct(lat, 0.5).toFixed(0)} | ${pct(lat, 0.95).toFixed(0)} | ${(await rss(p.api.pid)).toFixed(0)} | ${workerRss.toFixed(0)}`,
      );
      await workers[victim].ready();
    }
    await settle(accepted, 600_000);
    const rows = await prisma.job.findMany({ where: { id: { in: accepted } }, select: { status: true, error: true } });
    const by = (s: string) => rows.filter((r) => r.status === s).length;
    const lost = accepted.length - by('succeeded') - by('failed') - by('canceled');
    console.log(`accepted ${accepted.length}, succeeded ${by('succeeded')}, failed ${by('failed')}, lost ${lost}; ${kills} worker kills`);
    if (lost > 0) process.exitCode = 1;
  } finally {
    for (const w of workers) await w.kill('SIGKILL');
    await prisma.$disconnect();
    await p.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

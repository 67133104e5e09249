/**
 * npm run bench:api — the gateway and the fair share, on a private platform (its own Postgres database, Redis, S3
 * server), autocannon as the client, 50 connections, 10 s a run (API_BENCH_SECONDS).
 *  (a) POST /v1/jobs at a fixed offered rate (API_BENCH_RATE, default 600/s) and at saturation, GET /v1/jobs/:id at
 *      saturation: with no worker (jobs only pile up), then with one worker sampling;
 *  (b) fairness: team A submits 2,000 jobs, then team B one: B's wait (submit → start), how many of A's jobs started
 *      after B's submit and before B's start; then both keep a backlog and each team's share of the positions computed
 *      (cost units of the jobs started while both wait) is printed; SSE event latency (stored → client) on the way;
 *  (c) memory against queue length: on a fresh platform each, 1,000 then 10,000 jobs queued; the API's RSS settled after
 *      the submissions, then one worker's RSS after 20 s of sampling from that queue; the ratio 10,000 ÷ 1,000.
 * API_BENCH_PARTS picks parts (e.g. "c"; default "abc").
 */
import { readFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import type { JobView } from '@dimoo/contracts';
import { createPrisma } from '@dimoo/db';
import { ADMIN_KEY, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

const SECONDS = Number(process.env['API_BENCH_SECONDS'] ?? 10);
const RATE = Number(process.env['API_BENCH_RATE'] ?? 600);
const CONNECTIONS = 50;
const PARTS = process.env['API_BENCH_PARTS'] ?? 'abc';
/** Resident memory of a process, MiB. */
const rss = async (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const pct = (xs: number[], q: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]! : NaN);

interface Run {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  errors: number;
}

async function cannon(label: string, url: string, opts: { method: 'GET' | 'POST'; key: string; body?: string; rate?: number }): Promise<Run> {
  const r = await autocannon({
    url,
    method: opts.method,
    connections: CONNECTIONS,
    duration: SECONDS,
    headers: { authorization: `Bearer ${opts.key}`, 'content-type': 'application/json' },
    ...(opts.body ? { body: opts.body } : {}),
    ...(opts.rate ? { overallRate: opts.rate } : {}),
  });
  const ok = r['2xx'];
  const run = { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, ok, errors: r.non2xx + r.errors + r.timeouts };
  console.log(
    `${label.padEnd(44)} ${run.rps.toFixed(0).padStart(6)} req/s  p50 ${String(run.p50).padStart(4)} ms  p99 ${String(run.p99).padStart(4)} ms  2xx ${ok}  errors ${run.errors}`,
  );
  return run;
}

async function main(): Promise<void> {
  if (PARTS.includes('a')) await gateway();
  if (PARTS.includes('b')) await fairness();
  if (PARTS.includes('c')) await memory();
}

type Call = (method: string, path: string, key: string, body?: unknown) => Promise<{ status: number; body: unknown }>;

function client(url: string): { call: Call; team: (name: string) => Promise<{ id: string; key: string }> } {
  const call: Call = async (method, path, key, body) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: await res.json() };
  };
  const team = async (name: string) => {
    const t = (await call('POST', '/v1/teams', ADMIN_KEY, { name })).body as { id: string };
    return { id: t.id, key: ((await call('POST', `/v1/teams/${t.id}/keys`, ADMIN_KEY, { name })).body as { key: string }).key };
  };
  return { call, team };
}

async function gateway(): Promise<void> {
  // the deployment's outbox pace (the test platform's is much faster)
  const p = await startPlatform({ apiEnv: { MAX_QUEUED_JOBS: '0', OUTBOX_INTERVAL_MS: '2000', OUTBOX_FULL_SCAN_MS: '60000' } });
  const workers: WorkerProcess[] = [];
  const { call, team } = client(p.url);
  try {
    const load = await team('load');
    const body = JSON.stringify({ task: 't2i', prompt: 'a red circle at the top left', steps: 2 });
    const probe = (await call('POST', '/v1/jobs', load.key, JSON.parse(body))).body as JobView;
    console.log(`(a) gateway: ${CONNECTIONS} connections, ${SECONDS} s a run`);
    for (const phase of ['no worker', 'one worker sampling'] as const) {
      if (phase === 'one worker sampling') {
        const w = new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '8', LOCK_DURATION_MS: '30000', PREVIEW_EVERY_STEPS: '0' });
        workers.push(w);
        await w.ready();
      }
      await cannon(`POST /v1/jobs at ${RATE}/s offered, ${phase}`, `${p.url}/v1/jobs`, { method: 'POST', key: load.key, body, rate: RATE });
      await cannon(`POST /v1/jobs saturated, ${phase}`, `${p.url}/v1/jobs`, { method: 'POST', key: load.key, body });
      await cannon(`GET /v1/jobs/:id saturated, ${phase}`, `${p.url}/v1/jobs/${probe.id}`, { method: 'GET', key: load.key });
    }
  } finally {
    await Promise.allSettled(workers.map((w) => w.kill('SIGKILL')));
    await p.close();
  }
}

async function fairness(): Promise<void> {
  const p = await startPlatform({ apiEnv: { OUTBOX_INTERVAL_MS: '2000', OUTBOX_FULL_SCAN_MS: '60000' } });
  const prisma = createPrisma(p.db.url);
  const { call, team } = client(p.url);
  const workers = [new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '8', LOCK_DURATION_MS: '30000', PREVIEW_EVERY_STEPS: '0' })];
  try {
    await workers[0]!.ready();
    console.log('\n(b) fairness: one worker (8 batch slots), DISPATCH_AHEAD 8');
    const a = await team('team-a');
    const b = await team('team-b');
    const small = (seed: number) => ({ task: 't2i', prompt: 'a red circle at the top left', steps: 4, seed });
    const submitMany = async (key: string, n: number, from: number) => {
      const ids: string[] = [];
      const queue = Array.from({ length: n }, (_, i) => from + i);
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
            const r = await call('POST', '/v1/jobs', key, small(s));
            if (r.status === 202) ids.push((r.body as JobView).id);
          }
        }),
      );
      return ids;
    };
    const aIds = await submitMany(a.key, 2000, 0);
    // SSE latency: follow B's job and some of A's, stored (event `at`) → received
    const latencies: number[] = [];
    const follow = (key: string, id: string) =>
      void fetch(`${p.url}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${key}` } }).then(async (res) => {
        const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
        let text = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          const now = Date.now();
          text += Buffer.from(value).toString();
          const frames = text.split('\n\n');
          text = frames.pop() ?? '';
          for (const f of frames) {
            const data = /^data: (.*)$/m.exec(f)?.[1];
            if (!data) continue;
            const at = (JSON.parse(data) as { at?: string }).at;
            const event = /^event: (.*)$/m.exec(f)?.[1];
            // replayed history is not live; started/progress/completed as they happen
            if (at && event !== 'queued') latencies.push(now - Date.parse(at));
            if (event === 'completed' || event === 'failed' || event === 'canceled') return void reader.cancel();
          }
        }
      });
    const bSubmitted = Date.now();
    const bJob = (await call('POST', '/v1/jobs', b.key, small(99_999))).body as JobView;
    follow(b.key, bJob.id);
    for (const id of aIds.slice(-40)) follow(a.key, id);
    let bView: JobView;
    for (;;) {
      bView = (await call('GET', `/v1/jobs/${bJob.id}`, b.key)).body as JobView;
      if (bView.startedAt) break;
      await sleep(20);
    }
    const bStart = new Date(bView.startedAt);
    const aBetween = await prisma.job.count({ where: { teamId: a.id, startedAt: { gt: new Date(bJob.createdAt), lt: bStart } } });
    const aWaiting = await prisma.job.count({ where: { teamId: a.id, status: 'queued' } });
    console.log(
      `B's lone job waited ${bStart.getTime() - Date.parse(bJob.createdAt)} ms (submit → start; the submit call took ${Date.now() - bSubmitted} ms or less); ` +
        `${aBetween} of A's jobs started after B's submit and before B's start (${aWaiting} of A's still waiting)`,
    );

    // both saturate: B gets a backlog too; shares of cost units started in a window while both wait
    await submitMany(b.key, 600, 100_000);
    const from = new Date();
    await sleep(20_000);
    const to = new Date();
    const started = await prisma.job.findMany({
      where: { startedAt: { gte: from, lt: to }, teamId: { in: [a.id, b.id] } },
      select: { teamId: true, params: true },
    });
    const units = { a: 0, b: 0 };
    for (const j of started) units[j.teamId === a.id ? 'a' : 'b'] += (j.params as { cost: { units: number } }).cost.units;
    const total = units.a + units.b;
    console.log(
      `both saturating, 20 s: ${started.length} jobs started; share of positions computed A ${((100 * units.a) / total).toFixed(1)}%, B ${((100 * units.b) / total).toFixed(1)}% (equal weights)`,
    );
    console.log(`SSE event latency (stored → client): p50 ${pct(latencies, 0.5)} ms, p95 ${pct(latencies, 0.95)} ms over ${latencies.length} events`);
  } finally {
    await Promise.allSettled(workers.map((w) => w.kill('SIGKILL')));
    await prisma.$disconnect();
    await p.close();
  }
}

async function memory(): Promise<void> {
  console.log('\n(c) memory against queue length (settled RSS, MiB)');
  const settled = async (pid: number) => {
    await sleep(15_000);
    return rss(pid);
  };
  const rows: { queued: number; api: number; worker: number }[] = [];
  for (const n of [1000, 10_000]) {
    const p = await startPlatform({ apiEnv: { MAX_QUEUED_JOBS: '0', OUTBOX_INTERVAL_MS: '2000', OUTBOX_FULL_SCAN_MS: '60000' } });
    const { call, team } = client(p.url);
    let worker: WorkerProcess | null = null;
    try {
      const t = await team('memory');
      const idle = await settled(p.api.pid);
      const todo = Array.from({ length: n }, (_, i) => i);
      let accepted = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          for (let s = todo.shift(); s !== undefined; s = todo.shift()) {
            const r = await call('POST', '/v1/jobs', t.key, { task: 't2i', prompt: 'a red circle at the top left', steps: 4, seed: s });
            if (r.status === 202) accepted++;
          }
        }),
      );
      const api = await settled(p.api.pid);
      worker = new WorkerProcess({ ...p.workerEnv, BATCH_SLOTS: '8', LOCK_DURATION_MS: '30000', PREVIEW_EVERY_STEPS: '0' });
      await worker.ready();
      await sleep(5_000);
      const w = await settled(worker.pid);
      rows.push({ queued: n, api, worker: w });
      console.log(
        `${String(n).padStart(6)} queued (${accepted} accepted): API idle ${idle.toFixed(0)}, settled ${api.toFixed(0)}; worker after 20 s sampling ${w.toFixed(0)}`,
      );
    } finally {
      await worker?.kill('SIGKILL').catch(() => undefined);
      await p.close();
    }
  }
  const [small, large] = rows as [(typeof rows)[0], (typeof rows)[0]];
  console.log(`10,000 ÷ 1,000 queued: API ${(large.api / small.api).toFixed(2)}×, worker ${(large.worker / small.worker).toFixed(2)}× (goal within 10%)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

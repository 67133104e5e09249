/**
 * The reliability scenarios (issue 11). Each starts a fresh platform, runs a stream of jobs through a fault and
 * returns its judged row (harness.ts). Goal for every row: 0 lost, 0 sampled or stored twice without need, every image
 * equal to the engine's for its seed. A crash mid-job may re-sample the jobs it held: `resampled` says how many.
 */
import { Redis } from 'ioredis';
import { sleep } from '@dimoo/platform';
import type { Row } from './harness';
import { Chaos, edits, t2i } from './harness';

export interface Scenario {
  name: string;
  /** in the CI subset (npm run test:chaos:ci) */
  ci: boolean;
  /** a crash is part of the scenario: jobs it held may be sampled again */
  crashes: boolean;
  run(): Promise<Row>;
}

async function withChaos(options: Parameters<typeof Chaos.start>[0], body: (c: Chaos) => Promise<Row>): Promise<Row> {
  const c = await Chaos.start(options);
  try {
    return await body(c);
  } finally {
    await c.close();
  }
}

/** One store down `ms` while a batch runs (4 slots, 12 jobs queued behind). */
const outage = (name: string, store: 'postgres' | 'redis', ci: boolean): Scenario => ({
  name,
  ci,
  crashes: false,
  run: () =>
    withChaos({}, async (c) => {
      await c.startWorker({ BATCH_SLOTS: '4', LOCK_DURATION_MS: '30000' });
      const ids = await Promise.all(t2i(12, 32).map((r) => c.submit(r)));
      await c.running(ids, 2);
      const t0 = Date.now();
      await c.p.faults![store].during({ kind: 'reset' }, () => sleep(5000));
      return c.row(name, ids, `outage ${((Date.now() - t0) / 1000).toFixed(1)} s mid-batch`);
    }),
});

export const SCENARIOS: Scenario[] = [
  outage('Postgres down 5 s mid-batch', 'postgres', true),
  outage('Redis down 5 s mid-batch', 'redis', true),
  {
    name: 'S3 down 5 s at download and at upload',
    ci: true,
    crashes: false,
    run: () =>
      withChaos({}, async (c) => {
        await c.startWorker({ BATCH_SLOTS: '2', LOCK_DURATION_MS: '30000' });
        // two t2i jobs run (their results upload in the outage); six edits wait behind them (their inputs download in it)
        const running = await Promise.all(t2i(2, 48).map((r) => c.submit(r)));
        await c.running(running, 2);
        const { reqs, image } = await edits(6, 16);
        const waiting = await Promise.all(reqs.map((r) => c.submit(r, true, image)));
        await c.p.faults!.s3.during({ kind: 'reset' }, () => sleep(5000));
        return c.row('S3 down 5 s at download and at upload', [...running, ...waiting], 'outage 5 s: 2 jobs uploading, 6 edits downloading their input');
      }),
  },
  {
    name: 'S3 slow (2 s per request)',
    ci: false,
    crashes: false,
    run: () =>
      withChaos({}, async (c) => {
        await c.startWorker({ BATCH_SLOTS: '4', LOCK_DURATION_MS: '30000' });
        c.p.faults!.s3.set({ kind: 'latency', ms: 2000 });
        const t0 = Date.now();
        const ids = await Promise.all(t2i(8, 16).map((r) => c.submit(r)));
        const row = await c.row('S3 slow (2 s per request)', ids, '');
        row.figure = `all done in ${((Date.now() - t0) / 1000).toFixed(1)} s with 2 s per S3 request`;
        return row;
      }),
  },
  {
    name: '20 worker SIGKILLs at random steps, three workers',
    ci: false,
    crashes: true,
    run: () =>
      withChaos({}, async (c) => {
        // a job may lose its worker many times here; 2 (the default) would fail the unlucky ones as poison pills
        const env = { BATCH_SLOTS: '4', LOCK_DURATION_MS: '3000', MAX_STALLED_COUNT: '20' };
        const live = await Promise.all([0, 1, 2].map(() => c.startWorker(env)));
        const ids: string[] = [];
        let kills = 0;
        const feeding = (async () => {
          for (const r of t2i(40, 24)) {
            ids.push(await c.submit(r));
            await sleep(150);
          }
        })();
        let seed = 7;
        const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
        while (kills < 20) {
          await sleep(800 + random() * 1200);
          const i = Math.floor(random() * live.length);
          await live[i]!.kill('SIGKILL');
          kills++;
          live[i] = await c.startWorker(env);
        }
        await feeding;
        return c.row('20 worker SIGKILLs at random steps, three workers', ids, `${kills} kills`);
      }),
  },
  {
    name: 'SIGTERM drain under load',
    ci: false,
    crashes: true,
    run: () =>
      withChaos({}, async (c) => {
        const env = { BATCH_SLOTS: '4', LOCK_DURATION_MS: '5000', SHUTDOWN_GRACE_MS: '1500' };
        const live = await Promise.all([0, 1].map(() => c.startWorker(env)));
        const ids = await Promise.all(t2i(24, 48).map((r) => c.submit(r)));
        let terms = 0;
        for (let round = 0; round < 4; round++) {
          await c.running(ids, 1);
          await live[round % 2]!.kill('SIGTERM'); // drains 1.5 s, then hands the rest back
          terms++;
          live[round % 2] = await c.startWorker(env);
        }
        return c.row('SIGTERM drain under load', ids, `${terms} SIGTERMs, 1.5 s grace each`);
      }),
  },
  {
    name: 'API restart with open event streams',
    ci: true,
    crashes: false,
    run: () =>
      withChaos({}, async (c) => {
        await c.startWorker({ BATCH_SLOTS: '4', LOCK_DURATION_MS: '30000', PROGRESS_INTERVAL_MS: '50' });
        const ids = await Promise.all(t2i(10, 48).map((r) => c.submit(r)));
        await c.running(ids, 2);
        const t0 = Date.now();
        await c.p.restartApi();
        const down = Date.now() - t0;
        const row = await c.row('API restart with open event streams', ids, '');
        const reconnects = [...c.streams.values()].reduce((n, s) => n + s.reconnects, 0);
        row.figure = `API down ${(down / 1000).toFixed(1)} s; ${reconnects} reconnects with Last-Event-ID`;
        return row;
      }),
  },
  {
    name: 'engine-thread crash',
    ci: true,
    crashes: true,
    run: () =>
      withChaos({}, async (c) => {
        await c.startWorker({ BATCH_SLOTS: '4', FAULT_ENGINE_EXIT_AFTER_STEPS: '40' });
        const ids = await Promise.all(t2i(8, 32).map((r) => c.submit(r)));
        await c.running(ids, 1);
        const code = await c.workers[0]!.exited();
        await c.startWorker({ BATCH_SLOTS: '4' });
        return c.row('engine-thread crash', ids, `the crashed worker exited ${code}; a second worker took over`);
      }),
  },
  {
    name: 'Redis flushed with 5,000 jobs queued',
    ci: false,
    crashes: false,
    run: () =>
      withChaos({ apiEnv: { OUTBOX_PAGE_SIZE: '500' } }, async (c) => {
        // accepted with no worker up, then Redis loses everything
        const reqs = t2i(5000, 1);
        const ids: string[] = [];
        for (let i = 0; i < reqs.length; i += 16) ids.push(...(await Promise.all(reqs.slice(i, i + 16).map((r) => c.submit(r, false)))));
        const redis = new Redis(c.p.redis.port, '127.0.0.1');
        await redis.flushall();
        await redis.quit();
        const t0 = Date.now();
        await Promise.all([0, 1, 2].map(() => c.startWorker({ BATCH_SLOTS: '16', LOCK_DURATION_MS: '30000', PROGRESS_INTERVAL_MS: '1000' })));
        const row = await c.row('Redis flushed with 5,000 jobs queued', ids, '', { sampleSize: 50, timeoutMs: 1_200_000, notifications: false });
        row.figure = `all 5,000 done ${((Date.now() - t0) / 1000).toFixed(0)} s after the flush (3 workers × 16 slots, 1-step jobs); notifications not followed`;
        return row;
      }),
  },
];

/**
 * The fair queue on a private Redis (issue 12): admission order across teams (weighted deficit round robin on cost)
 * and within a team (priority), the prefetch bound, running limits, quotas and the queue cap, and a dispatcher that
 * dies between BullMQ and the fair queue.
 */
import { Redis } from 'ioredis';
import type { DispatchedJob, DispatchTarget, TeamShare } from '@dimoo/queue';
import { DEFAULT_SHARE, FairQueue } from '@dimoo/queue';
import { freePort, RedisServer } from '@dimoo/platform';

let server: RedisServer;
let redis: Redis;
let n = 0;

beforeAll(async () => {
  server = new RedisServer(await freePort());
  await server.start();
  redis = new Redis({ port: server.port, host: '127.0.0.1', maxRetriesPerRequest: null });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** A stand-in for BullMQ's wait list: workers take from its front. */
function target(): DispatchTarget & { list: DispatchedJob[]; take(k: number): DispatchedJob[] } {
  const list: DispatchedJob[] = [];
  return {
    list,
    waiting: () => Promise.resolve(list.length),
    add: (jobs) => Promise.resolve(void list.push(...jobs)),
    take: (k) => list.splice(0, k),
  };
}

const share = (s: Partial<TeamShare> = {}): TeamShare => ({ ...DEFAULT_SHARE, ...s });

describe('FairQueue', () => {
  it('admits three saturating teams by weight on cost units, and a quiet team within one turn', async () => {
    const fair = new FairQueue(redis, `t${++n}`, 4);
    const weights = { a: 1, b: 2, c: 1 } as const; // 300 jobs each: none runs out in the 240 started here
    const costs = { a: 100, b: 37, c: 250 } as const;
    for (let i = 0; i < 300; i++) {
      for (const t of ['a', 'b', 'c'] as const) {
        await fair.push({ jobId: `${t}-${i}`, teamId: t, cost: costs[t], priority: 'normal' }, share({ weight: weights[t] }));
      }
    }
    const out = target();
    const started: string[] = [];
    for (let round = 0; round < 60; round++) {
      expect(await fair.dispatch(out)).toBeGreaterThan(0);
      expect(out.list.length).toBe(4); // never more than `ahead` waiting in BullMQ
      started.push(...out.take(4).map((j) => j.teamId));
    }
    const units = { a: 0, b: 0, c: 0 };
    for (const t of started as (keyof typeof units)[]) units[t] += costs[t];
    const total = units.a + units.b + units.c;
    expect(units.a / total).toBeCloseTo(0.25, 1);
    expect(units.b / total).toBeCloseTo(0.5, 1);
    expect(units.c / total).toBeCloseTo(0.25, 1);

    // d submits one job while a, b and c still have hundreds waiting: it starts within one turn of each
    await fair.push({ jobId: 'd-0', teamId: 'd', cost: 100, priority: 'normal' }, share());
    const before: string[] = [];
    for (let i = 0; i < 10 && !before.includes('d'); i++) {
      await fair.dispatch(out);
      before.push(...out.take(4).map((j) => j.teamId));
    }
    const ahead = before.indexOf('d');
    expect(ahead).toBeGreaterThanOrEqual(0);
    // one turn each: a 2.5 jobs, b 13.5, c 1 (quantum 250) plus what BullMQ already held
    expect(ahead).toBeLessThanOrEqual(4 + 3 + 14 + 1);
  });

  it('orders a team by priority, then submission', async () => {
    const fair = new FairQueue(redis, `t${++n}`, 10);
    const order = ['low', 'normal', 'high', 'normal', 'high', 'low'] as const;
    for (const [i, priority] of order.entries()) await fair.push({ jobId: `j${i}`, teamId: 'a', cost: 1, priority }, share());
    const out = target();
    await fair.dispatch(out);
    expect(out.list.map((j) => j.jobId)).toEqual(['j2', 'j4', 'j1', 'j3', 'j0', 'j5']);
  });

  it('holds a team at its running limit while others run, until its jobs finish', async () => {
    const fair = new FairQueue(redis, `t${++n}`, 10);
    for (let i = 0; i < 5; i++) await fair.push({ jobId: `a${i}`, teamId: 'a', cost: 1, priority: 'normal' }, share({ maxRunning: 2 }));
    for (let i = 0; i < 5; i++) await fair.push({ jobId: `b${i}`, teamId: 'b', cost: 1, priority: 'normal' }, share());
    const out = target();
    await fair.dispatch(out);
    expect(out.list.filter((j) => j.teamId === 'a').map((j) => j.jobId)).toEqual(['a0', 'a1']);
    expect(out.list.filter((j) => j.teamId === 'b')).toHaveLength(5);
    out.take(10);
    await fair.dispatch(out);
    expect(out.list).toHaveLength(0);
    await fair.finished('a', 'a0');
    await fair.dispatch(out);
    expect(out.list.map((j) => j.jobId)).toEqual(['a2']);
  });

  it('refuses over the team queue limit, the submission rate and the global cap, and recovers', async () => {
    const fair = new FairQueue(redis, `t${++n}`, 1);
    const limited = share({ maxQueued: 2, submitsPerMinute: 3 });
    expect(await fair.admit('a', limited, 0)).toEqual({ ok: true, rate: { limit: 3, remaining: 2, resetMs: expect.any(Number) } });
    await fair.push({ jobId: 'a0', teamId: 'a', cost: 1, priority: 'normal' }, limited);
    expect((await fair.admit('a', limited, 0)).ok).toBe(true);
    await fair.push({ jobId: 'a1', teamId: 'a', cost: 1, priority: 'normal' }, limited);
    expect(await fair.admit('a', limited, 0)).toEqual({ ok: false, reason: 'team-queue-full', retryAfterMs: expect.any(Number) });
    await fair.dispatch(target()); // one leaves for BullMQ
    const third = await fair.admit('a', limited, 0);
    expect(third).toEqual({ ok: true, rate: { limit: 3, remaining: 0, resetMs: expect.any(Number) } });
    const refused = await fair.admit('a', limited, 0);
    expect(refused.ok === false && refused.reason).toBe('rate');
    expect(refused.ok === false && refused.retryAfterMs).toBeGreaterThan(50_000);
    // the window ends: admitted again
    await redis.pexpire(`t${n}:{fair}:rate:a`, 1);
    await new Promise((r) => setTimeout(r, 20));
    expect((await fair.admit('a', share({ submitsPerMinute: 3 }), 0)).ok).toBe(true);
    // the global cap counts every team's waiting jobs
    expect(await fair.admit('b', share(), 1)).toEqual({ ok: false, reason: 'queue-full', retryAfterMs: expect.any(Number) });
    expect((await fair.admit('b', share(), 2)).ok).toBe(true);
  });

  it('leaves a job in the fair queue when adding it to BullMQ fails, and never loses one', async () => {
    const fair = new FairQueue(redis, `t${++n}`, 4);
    for (let i = 0; i < 3; i++) await fair.push({ jobId: `a${i}`, teamId: 'a', cost: 1, priority: 'normal' }, share());
    const failing: DispatchTarget = { waiting: () => Promise.resolve(0), add: () => Promise.reject(new Error('redis went away')) };
    await expect(fair.dispatch(failing)).rejects.toThrow('redis went away');
    expect([...(await fair.waitingOf(['a0', 'a1', 'a2']))].sort()).toEqual(['a0', 'a1', 'a2']);
    // the lock was released: the next dispatcher moves them
    const out = target();
    expect(await fair.dispatch(out)).toBe(3);
    expect(await fair.size()).toBe(0);
    // a second push of a job still waiting is a no-op; after it left, a push (the outbox after a Redis loss) queues it again
    expect(await fair.push({ jobId: 'a0', teamId: 'a', cost: 1, priority: 'normal' }, share())).toBe(true);
    expect(await fair.push({ jobId: 'a0', teamId: 'a', cost: 1, priority: 'normal' }, share())).toBe(false);
  });

  it("carries each job's trace context (its submit's traceparent) to the dispatch target, and nothing else in its place", async () => {
    const fair = new FairQueue(redis, `t${++n}`, 4);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await fair.push({ jobId: 'a0', teamId: 'a', cost: 3, priority: 'normal', traceparent }, share());
    await fair.push({ jobId: 'a1', teamId: 'a', cost: 3, priority: 'normal' }, share());
    await fair.push({ jobId: 'a2', teamId: 'a', cost: 3, priority: 'normal', traceparent: 'not|a|traceparent' }, share());
    const out = target();
    expect(await fair.dispatch(out)).toBe(3);
    expect(out.list).toStrictEqual([
      { jobId: 'a0', teamId: 'a', traceparent },
      { jobId: 'a1', teamId: 'a' },
      { jobId: 'a2', teamId: 'a' },
    ]);
  });
});

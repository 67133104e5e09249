/**
 * The fair queue: where accepted jobs wait, per team, before BullMQ hands them to workers. BullMQ's own list is kept
 * short (`ahead` jobs, limited prefetch), so the order in which workers start jobs is decided here, across teams
 * (`pickFair`: weighted deficit round robin on cost units) and within a team (priority, then submission order), and
 * a team at its `maxRunning` waits while others run. One dispatcher at a time (a Redis lock) moves the next jobs into
 * BullMQ; the API nudges it after each submit, workers after each job they take or finish.
 *
 * Redis layout (under `<prefix>:{fair}:`, one hash slot): `team:<id>` ZSET waiting job ids by (priority rank, seq);
 * `jobs` HASH job id → `team|cost|traceparent` (every waiting job: the global queue size; the submit's trace context,
 * empty without tracing, travels to BullMQ with the job: `telemetry.ts`); `ring` ZSET teams with waiting jobs
 * by arrival; `weights`, `limits` (maxRunning), `deficits` HASH by team; `turn`; `running:<team>` ZSET job id → lease
 * expiry (dispatched and not finished); `rate:<team>` the submission window; `lock`.
 *
 * A job is added to BullMQ before it leaves the fair queue: a dispatcher that dies in between leaves a duplicate entry
 * (BullMQ's job id is the job's id, and a worker takes a job once), never a loss. Redis losing it all is repaired by
 * the API's outbox, which pushes every queued job Redis no longer holds again.
 */
import { randomUUID } from 'node:crypto';
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobPriority } from '@dimoo/contracts';
import { JOB_PRIORITIES } from '@dimoo/contracts';
import type { TeamQueue, Turn } from './fair-share';
import { clampWeight, DEFAULT_WEIGHT, pickFair } from './fair-share';
import { GENERATION_JOB_OPTIONS } from './job-options';
import type { QueuePayload } from './queues';
import { QUEUE_NAMES } from './queues';
import { dispatchSpan, validTraceparent } from './telemetry';

export interface FairJob {
  jobId: string;
  teamId: string;
  /** cost units of the resolved job (what a fair share charges) */
  cost: number;
  priority: JobPriority;
  /** the submit's trace context (W3C traceparent): the worker's spans of the job join the submit's trace */
  traceparent?: string;
}

/** A job the dispatcher hands to BullMQ. */
export interface DispatchedJob {
  jobId: string;
  teamId: string;
  traceparent?: string;
}

/** A team's share and limits, as the admin set them (null: no limit). */
export interface TeamShare {
  weight: number;
  maxQueued: number | null;
  maxRunning: number | null;
  submitsPerMinute: number | null;
}

export const DEFAULT_SHARE: TeamShare = { weight: DEFAULT_WEIGHT, maxQueued: null, maxRunning: null, submitsPerMinute: null };

export type Admission =
  | { ok: true; rate: { limit: number; remaining: number; resetMs: number } | null }
  | { ok: false; reason: 'queue-full' | 'team-queue-full'; retryAfterMs: number }
  | { ok: false; reason: 'rate'; retryAfterMs: number; rate: { limit: number; remaining: 0; resetMs: number } };

/** Where dispatched jobs go (BullMQ): how many wait there now, and adding some. */
export interface DispatchTarget {
  waiting(): Promise<number>;
  add(jobs: DispatchedJob[]): Promise<void>;
}

const RATE_WINDOW_MS = 60_000;
/** A dispatched job counts as running for its team's limit until its worker says it finished, or this long after its
 * last progress (a crashed worker's jobs stop counting). */
export const RUNNING_LEASE_MS = 5 * 60_000;
const LOCK_MS = 10_000;
/** A dispatcher reports failed passes at most this often. */
const ERROR_REPORT_MS = 10_000;
/** Back-to-back dispatcher passes are this far apart at least. */
const MIN_GAP_MS = 5;

const PUSH = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) * 1e13 + seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[4] .. '|' .. ARGV[7])
redis.call('ZADD', KEYS[3], 'NX', seq, ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[6], ARGV[2], ARGV[6])
return 1`;

// queue cap, then the team's waiting jobs, then its submission rate (charged only when admitted)
const ADMIT = `
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('HLEN', KEYS[2]) >= cap then return {'queue-full', 0, 0} end
local maxq = tonumber(ARGV[1])
if maxq > 0 and redis.call('ZCARD', KEYS[1]) >= maxq then return {'team-queue-full', 0, 0} end
local limit = tonumber(ARGV[2])
if limit <= 0 then return {'ok', 0, 0} end
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
local ttl = redis.call('PTTL', KEYS[3])
if used >= limit and ttl > 0 then return {'rate', used, ttl} end
if ttl <= 0 then redis.call('SET', KEYS[3], 0, 'PX', ARGV[4]); ttl = tonumber(ARGV[4]) end
used = redis.call('INCR', KEYS[3])
return {'ok', used, ttl}`;

// a team leaves the ring only if nothing arrived for it since the dispatcher read it
const PRUNE = `
for i = 3, #KEYS do
  if redis.call('ZCARD', KEYS[i]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[i - 2])
    redis.call('HDEL', KEYS[2], ARGV[i - 2])
  end
end
return 0`;

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type Scripted = Redis & {
  fairPush(...args: (string | number)[]): Promise<number>;
  fairAdmit(...args: (string | number)[]): Promise<[string, number, number]>;
  fairPrune(keys: number, ...args: string[]): Promise<number>;
  fairUnlock(key: string, token: string): Promise<number>;
};

export class FairQueue {
  private readonly redis: Scripted;
  private readonly root: string;

  /** @param ahead jobs BullMQ may hold waiting at once (the prefetch): at most this many start before a newcomer's */
  constructor(
    redis: Redis,
    prefix: string,
    private readonly ahead: number,
  ) {
    this.root = `${prefix}:{fair}:`;
    this.redis = redis as Scripted;
    this.redis.defineCommand('fairPush', { numberOfKeys: 6, lua: PUSH });
    this.redis.defineCommand('fairAdmit', { numberOfKeys: 3, lua: ADMIT });
    this.redis.defineCommand('fairPrune', { lua: PRUNE });
    this.redis.defineCommand('fairUnlock', { numberOfKeys: 1, lua: UNLOCK });
  }

  private key(name: string): string {
    return this.root + name;
  }

  /**
   * Whether a team may submit another job now: the global queue cap (`queueCap`, 0: none), the team's waiting jobs and
   * its submissions per minute (charged when admitted). One round trip, atomic across API replicas.
   */
  async admit(teamId: string, share: TeamShare, queueCap: number): Promise<Admission> {
    const [verdict, used, ttl] = await this.redis.fairAdmit(
      this.key(`team:${teamId}`),
      this.key('jobs'),
      this.key(`rate:${teamId}`),
      share.maxQueued ?? 0,
      share.submitsPerMinute ?? 0,
      queueCap,
      RATE_WINDOW_MS,
    );
    const limit = share.submitsPerMinute ?? 0;
    if (verdict === 'ok') return { ok: true, rate: limit > 0 ? { limit, remaining: Math.max(0, limit - used), resetMs: ttl } : null };
    if (verdict === 'rate') return { ok: false, reason: 'rate', retryAfterMs: ttl, rate: { limit, remaining: 0, resetMs: ttl } };
    // a full queue drains at the fleet's pace: a few seconds is as good a guess as any
    return { ok: false, reason: verdict as 'queue-full' | 'team-queue-full', retryAfterMs: 5000 };
  }

  /** Puts a recorded job in its team's queue; a job already waiting stays where it is. */
  async push(job: FairJob, share: TeamShare): Promise<boolean> {
    const added = await this.redis.fairPush(
      this.key(`team:${job.teamId}`),
      this.key('jobs'),
      this.key('ring'),
      this.key('seq'),
      this.key('weights'),
      this.key('limits'),
      job.jobId,
      job.teamId,
      JOB_PRIORITIES.indexOf(job.priority),
      Math.max(1, Math.round(job.cost)),
      clampWeight(share.weight),
      share.maxRunning ?? -1,
      validTraceparent(job.traceparent) ?? '',
    );
    return added === 1;
  }

  /** Takes a waiting job out (it was canceled); its team leaves the ring at the next dispatch if it was the last. */
  async remove(teamId: string, jobId: string): Promise<boolean> {
    const [[, removed]] = (await this.redis
      .multi()
      .zrem(this.key(`team:${teamId}`), jobId)
      .hdel(this.key('jobs'), jobId)
      .exec()) as [[unknown, number]];
    return removed === 1;
  }

  /**
   * True the first time it is called after Redis lost its data (and on first use): a key that only a reset removes.
   * The outbox then looks for every queued job at once instead of at its slow periodic pace.
   */
  async wasReset(): Promise<boolean> {
    return (await this.redis.set(this.key('sentinel'), '1', 'NX')) === 'OK';
  }

  /** Which of these jobs wait here. */
  async waitingOf(jobIds: readonly string[]): Promise<Set<string>> {
    if (jobIds.length === 0) return new Set();
    const found = await this.redis.hmget(this.key('jobs'), ...jobIds);
    return new Set(jobIds.filter((_, i) => found[i] !== null));
  }

  /**
   * Where a waiting job stands: how many of its team's jobs are ahead of it (null once it left for BullMQ, or when it
   * is not here) and how many teams have jobs waiting (the round robin takes one turn per team). One round trip.
   */
  async placeOf(teamId: string, jobId: string): Promise<{ teamAhead: number | null; teamsWaiting: number }> {
    const [[, rank], [, teams]] = (await this.redis
      .multi()
      .zrank(this.key(`team:${teamId}`), jobId)
      .zcard(this.key('ring'))
      .exec()) as [[unknown, number | null], [unknown, number]];
    return { teamAhead: rank, teamsWaiting: teams };
  }

  /** Jobs waiting here, in all. */
  async size(): Promise<number> {
    return this.redis.hlen(this.key('jobs'));
  }

  /** These jobs' workers are still at them: their teams' running counts keep them (one round trip). */
  async touch(jobs: readonly { teamId: string; jobId: string }[]): Promise<void> {
    if (jobs.length === 0) return;
    const until = Date.now() + RUNNING_LEASE_MS;
    const p = this.redis.pipeline();
    for (const { teamId, jobId } of jobs) p.zadd(this.key(`running:${teamId}`), 'XX', until, jobId);
    await p.exec();
  }

  /** A job ended (or went back to the queue): it no longer counts against its team's running limit. */
  async finished(teamId: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(`running:${teamId}`), jobId);
  }

  /**
   * Moves the next jobs, in fair order, into `target` until it holds `ahead` waiting. Returns how many moved, or
   * 'busy' when another dispatcher holds the lock.
   */
  async dispatch(target: DispatchTarget): Promise<number | 'busy'> {
    const token = randomUUID();
    const lock = this.key('lock');
    if ((await this.redis.set(lock, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return 'busy';
    try {
      const n = this.ahead - (await target.waiting());
      if (n <= 0) return 0;
      const teams = await this.redis.zrange(this.key('ring'), 0, -1);
      if (teams.length === 0) return 0;
      const now = Date.now();
      const read = this.redis.pipeline();
      for (const t of teams) {
        read.zrange(this.key(`team:${t}`), 0, n - 1);
        read.zcard(this.key(`team:${t}`));
        read.zremrangebyscore(this.key(`running:${t}`), '-inf', now);
        read.zcard(this.key(`running:${t}`));
      }
      read.hmget(this.key('weights'), ...teams);
      read.hmget(this.key('limits'), ...teams);
      read.hmget(this.key('deficits'), ...teams);
      read.get(this.key('turn'));
      const res = (await read.exec())!.map(([err, v]) => {
        if (err) throw err;
        return v;
      });
      const heads = teams.map((_, i) => res[i * 4] as string[]);
      const [weights, limits, deficits] = [0, 1, 2].map((k) => res[teams.length * 4 + k] as (string | null)[]);
      const turnRaw = res[teams.length * 4 + 3] as string | null;
      const allHeads = heads.flat();
      const entries = allHeads.length ? await this.redis.hmget(this.key('jobs'), ...allHeads) : [];
      const entryOf = new Map(allHeads.map((id, i) => [id, entries[i]?.split('|') ?? []]));
      const costOf = new Map(allHeads.map((id) => [id, Number(entryOf.get(id)![1] ?? 1)]));
      const ring: TeamQueue[] = teams.map((teamId, i) => {
        const maxRunning = Number(limits![i] ?? -1);
        return {
          teamId,
          weight: Number(weights![i] ?? DEFAULT_WEIGHT),
          deficit: Number(deficits![i] ?? 0),
          head: heads[i]!.map((jobId) => ({ jobId, cost: costOf.get(jobId)! })),
          size: res[i * 4 + 1] as number,
          room: maxRunning < 0 ? Infinity : Math.max(0, maxRunning - (res[i * 4 + 3] as number)),
        };
      });
      const plan = pickFair(ring, turnRaw ? (JSON.parse(turnRaw) as Turn) : null, n);
      if (plan.picks.length > 0) {
        await target.add(
          plan.picks.map(({ jobId, teamId }) => {
            const traceparent = validTraceparent(entryOf.get(jobId)![2]);
            return traceparent ? { jobId, teamId, traceparent } : { jobId, teamId };
          }),
        );
      }
      const write = this.redis.multi();
      for (const p of plan.picks) {
        write.zrem(this.key(`team:${p.teamId}`), p.jobId);
        write.hdel(this.key('jobs'), p.jobId);
        write.zadd(this.key(`running:${p.teamId}`), now + RUNNING_LEASE_MS, p.jobId);
      }
      const kept = [...plan.deficits].filter(([id]) => !plan.emptied.includes(id));
      if (kept.length > 0) write.hset(this.key('deficits'), Object.fromEntries(kept.map(([id, d]) => [id, String(d)])));
      if (plan.turn) write.set(this.key('turn'), JSON.stringify(plan.turn));
      else write.del(this.key('turn'));
      await write.exec();
      if (plan.emptied.length > 0) {
        await this.redis.fairPrune(
          2 + plan.emptied.length,
          this.key('ring'),
          this.key('deficits'),
          ...plan.emptied.map((t) => this.key(`team:${t}`)),
          ...plan.emptied,
        );
      }
      return plan.picks.length;
    } finally {
      await this.redis.fairUnlock(lock, token).catch(() => undefined);
    }
  }

  /** Per team: jobs waiting here and jobs dispatched and not finished (for metrics and the dashboard). */
  async teams(): Promise<{ teamId: string; waiting: number; running: number }[]> {
    const teams = await this.redis.zrange(this.key('ring'), 0, -1);
    const p = this.redis.pipeline();
    for (const t of teams) p.zcard(this.key(`team:${t}`)).zcard(this.key(`running:${t}`));
    const res = (await p.exec()) ?? [];
    return teams.map((teamId, i) => ({ teamId, waiting: res[i * 2]![1] as number, running: res[i * 2 + 1]![1] as number }));
  }
}

/**
 * Runs `dispatch` when nudged, coalescing nudges that arrive while one runs (a burst of submits costs a pass every
 * `MIN_GAP_MS`, not one each), retrying shortly while another process holds the lock, and every `intervalMs` in any
 * case (a lost nudge, a lock left by a dead process).
 */
export class Dispatcher {
  private active: Promise<void> | null = null;
  private again = false;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private lastReport = 0;
  /** dispatch passes that moved at least one job (tests and metrics) */
  public moved = 0;

  /** @param onError told of a failed pass, at most every ERROR_REPORT_MS (an outage fails every pass) */
  constructor(
    private readonly fair: FairQueue,
    private readonly target: DispatchTarget,
    intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.timer = setInterval(() => this.nudge(), intervalMs);
    this.timer.unref();
  }

  nudge(): void {
    if (this.closed) return;
    if (this.active) {
      this.again = true;
      return;
    }
    // a pass moves many teams' jobs: it belongs to no request's trace (each job's own goes with it, see telemetry.ts)
    this.active = context.with(ROOT_CONTEXT, () => this.run()).finally(() => (this.active = null));
  }

  private async run(): Promise<void> {
    do {
      this.again = false;
      try {
        const r = await this.fair.dispatch(this.target);
        if (r === 'busy') {
          await new Promise((resolve) => setTimeout(resolve, 20));
          this.again = true;
        } else if (r > 0) this.moved++;
        if (this.again) await new Promise((resolve) => setTimeout(resolve, MIN_GAP_MS));
      } catch (err) {
        if (Date.now() - this.lastReport > ERROR_REPORT_MS) this.onError(err);
        this.lastReport = Date.now();
        return;
      }
    } while (this.again && !this.closed);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.active;
  }
}

/** BullMQ's generation queue as the dispatcher's target: jobs added with the job's id as BullMQ id (a second add of a
 * live job is a no-op), each with its trace context (a `dispatch` span in the submit's trace). */
export function bullTarget(queue: Queue<QueuePayload>): DispatchTarget {
  return {
    waiting: () => queue.getWaitingCount(),
    add: async (jobs) => {
      const spans = jobs.map((job) => dispatchSpan(job, QUEUE_NAMES.generation));
      try {
        await queue.addBulk(
          jobs.map(({ jobId, teamId }, i) => {
            const metadata = spans[i]!.metadata;
            return {
              name: QUEUE_NAMES.generation,
              data: { jobId, teamId },
              opts: { ...GENERATION_JOB_OPTIONS, jobId, ...(metadata ? { telemetry: { metadata } } : {}) },
            };
          }),
        );
      } catch (err) {
        for (const span of spans) span.end(err);
        throw err;
      }
      for (const span of spans) span.end();
    },
  };
}

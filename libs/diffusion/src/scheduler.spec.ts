/**
 * The batch scheduler without a model: fake runners that advance sequences by rule (the host one step, the segment
 * path a whole segment), so admission, path choice, moves between runners, previews, cancel and failures are tested
 * on their own. The engines' own numerics are tested against the graphs in libs/runtime.
 */
import type { BatchPolicy } from './batch-plan';
import type { CacheSettings } from './cache-policy';
import { isFullStep } from './cache-policy';
import type { CallRecord, StepReport, StepRunner } from './runner';
import type { TokenLayout } from './layout';
import { answerSequence, testLayout } from './testing/fixtures';
import { textToImage } from './layout';
import type { AdmissionOrder, JobTicket, SchedulerStep, SegmentPath } from './scheduler';
import { BatchScheduler, StepFailed } from './scheduler';
import { segmentLength } from './segment';
import { Sequence } from './sequence';

const L: TokenLayout = testLayout(20);
const CACHE: CacheSettings = { cacheRatio: 0.9, warmupRatio: 0.25, refreshInterval: 4 };

/** An image sequence of `rows`×2 cells (the cost grows with rows); `cache` on for the ML-Cache schedule. */
function image(id: string, steps: number, { rows = 1, cache = false }: { rows?: number; cache?: boolean } = {}): Sequence {
  const spec = textToImage(L, { prompt: Int32Array.of(10, 11), uncondPrompt: Int32Array.of(10, 5), rows, cols: 2 }, { kind: 'none' });
  return new Sequence(id, L, spec, { steps, temperature: 0, seed: 1, guidance: { kind: 'none' }, cache: cache ? CACHE : null, sampler: { kind: 'maskgit' } });
}

const answer = (id: string) => answerSequence(id, L, { cache: CACHE });

/** Advances each sequence by `stride(seq)` steps per call, never unmasking (the schedule alone ends a sequence). */
class FakeRunner implements StepRunner {
  readonly members = new Map<string, Sequence>();
  /** ids per call of step() */
  readonly log: string[][] = [];
  failNext = false;

  constructor(
    private readonly kind: CallRecord['kind'],
    private readonly stride: (seq: Sequence) => number = () => 1,
  ) {}

  get size(): number {
    return this.members.size;
  }

  add(seq: Sequence): void {
    if (this.members.has(seq.id)) throw new Error(`${seq.id} already here`);
    this.members.set(seq.id, seq);
  }

  remove(id: string): boolean {
    return this.members.delete(id);
  }

  step(): Promise<StepReport> {
    if (this.failNext) return Promise.reject(new Error('device lost'));
    this.log.push([...this.members.keys()]);
    const finished: Sequence[] = [];
    for (const seq of this.members.values()) {
      seq.step += this.stride(seq);
      if (seq.step >= seq.params.steps) finished.push(seq);
    }
    for (const s of finished) this.members.delete(s.id);
    const call: CallRecord = {
      kind: this.kind,
      sequences: this.members.size + finished.length,
      rows: 1,
      length: 8,
      positions: 8,
      fullPositions: 8,
      steps: 1,
      ms: 1,
    };
    return Promise.resolve({ calls: [call], finished, cacheBytes: 0 });
  }
}

class FakeSegments extends FakeRunner implements SegmentPath {
  constructor() {
    super('segment', (seq) => segmentLength(seq.step, seq.params.steps, seq.params.cache));
  }

  accepts(seq: Sequence): boolean {
    return seq.params.sampler.kind === 'maskgit' && seq.params.cache !== null;
  }

  override add(seq: Sequence): void {
    // the segment path starts every run at a full step (checkSegmentable)
    if (!isFullStep(seq.step, seq.params.steps, seq.params.cache)) throw new Error(`${seq.id} at step ${seq.step} does not start a segment`);
    super.add(seq);
  }
}

const continuous: BatchPolicy = { mode: 'continuous', costBudget: 10_000, waitMs: 0 };
const ticket = (seq: Sequence, extra: Partial<JobTicket> = {}): JobTicket => ({ seq, team: 'a', priority: 0, previewEvery: 0, meta: seq.id, ...extra });

async function drain(s: BatchScheduler): Promise<SchedulerStep[]> {
  const steps: SchedulerStep[] = [];
  for (;;) {
    const r = await s.step();
    if (r.idle) return steps;
    steps.push(r.step);
  }
}

describe('BatchScheduler', () => {
  it('runs admitted jobs step by step on the host runner and reports progress and finished jobs', async () => {
    const host = new FakeRunner('full');
    let t = 0;
    const s = new BatchScheduler(host, null, { policy: continuous, lengthBucket: 8, now: () => (t += 10) });
    s.submit(ticket(image('a', 3)));
    s.submit(ticket(image('b', 2)));
    const steps = await drain(s);
    expect(steps.map((x) => x.jobs)).toEqual([['a', 'b'], ['a', 'b'], ['a']]);
    expect(steps[0]!.progress).toEqual([
      { id: 'a', step: 1, steps: 3 },
      { id: 'b', step: 1, steps: 2 },
    ]);
    expect(steps.map((x) => x.finished.map((f) => f.seq.id))).toEqual([[], ['b'], ['a']]);
    expect(steps.map((x) => x.running)).toEqual([2, 1, 0]);
    expect(steps[2]!.finished[0]!.samplingMs).toBeGreaterThan(0);
    expect(steps[2]!.finished[0]!.meta).toBe('a'); // the caller's data comes back with the job
    expect(await s.step()).toEqual({ idle: true, retryInMs: null });
  });

  it('charges each job its padded length × rows against the budget, and waits for room', async () => {
    const host = new FakeRunner('full');
    // rows 1: 2 + 2 + (1×3) + 2 = 9 positions, padded to 16; rows 3: 2 + 2 + 9 + 2 = 15 → 16 as well; rows 4 → 24
    const s = new BatchScheduler(host, null, { policy: { ...continuous, costBudget: 40 }, lengthBucket: 8 });
    s.submit(ticket(image('small', 2)));
    s.submit(ticket(image('big', 2, { rows: 4 })));
    s.submit(ticket(image('next', 1)));
    const first = await s.step();
    expect(!first.idle && first.step.jobs).toEqual(['small', 'big']);
    expect(!first.idle && [first.step.batchCost, first.step.waiting]).toEqual([16 + 24, 1]);
    const steps = await drain(s);
    expect(steps[0]!.jobs).toEqual(['small', 'big']); // next does not fit until both leave
    expect(steps[1]!.jobs).toEqual(['next']);
  });

  it('takes a pluggable admission order: team, priority and cost are what it sees', async () => {
    const host = new FakeRunner('full');
    const seen: { id: string; team: string; priority: number; cost: number }[] = [];
    const byPriority: AdmissionOrder = (waiting) => {
      seen.push(...waiting.map(({ id, team, priority, cost }) => ({ id, team, priority, cost })));
      return [...waiting].sort((x, y) => y.priority - x.priority || x.arrivedAt - y.arrivedAt);
    };
    // room for one job at a time: the order alone decides who runs first
    const s = new BatchScheduler(host, null, { policy: { ...continuous, costBudget: 16 }, lengthBucket: 8, order: byPriority });
    s.submit(ticket(image('low', 1), { team: 't1', priority: 0 }));
    s.submit(ticket(image('high', 1), { team: 't2', priority: 5 }));
    s.submit(ticket(image('mid', 1), { team: 't1', priority: 2 }));
    const steps = await drain(s);
    expect(steps.map((x) => x.jobs)).toEqual([['high'], ['mid'], ['low']]);
    expect(seen[0]).toEqual({ id: 'low', team: 't1', priority: 0, cost: 16 });

    // the default is first come, first served
    const fifo = new BatchScheduler(new FakeRunner('full'), null, { policy: { ...continuous, costBudget: 16 }, lengthBucket: 8 });
    for (const [id, priority] of [
      ['low', 0],
      ['high', 5],
    ] as const) {
      fifo.submit(ticket(image(id, 1), { priority }));
    }
    expect((await drain(fifo)).map((x) => x.jobs)).toEqual([['low'], ['high']]);
  });

  it('holds an idle batch for the wait window, then starts the burst together', async () => {
    let t = 0;
    const s = new BatchScheduler(new FakeRunner('full'), null, { policy: { ...continuous, waitMs: 50 }, lengthBucket: 8, now: () => t });
    s.submit(ticket(image('a', 1)));
    t = 20;
    expect(await s.step()).toEqual({ idle: true, retryInMs: 30 });
    s.submit(ticket(image('b', 1)));
    t = 50;
    const r = await s.step();
    expect(!r.idle && r.step.jobs).toEqual(['a', 'b']);
  });

  it('runs an ML-Cache image job on the segment path from its first segment, its warmup on the host with the others', async () => {
    const host = new FakeRunner('full');
    const gpu = new FakeSegments();
    const s = new BatchScheduler(host, gpu, { policy: continuous, lengthBucket: 8 });
    // 16 steps: warmup 4 → full steps 0…4, 8, 12; the segments start at 4, 8 and 12
    s.submit(ticket(image('cached', 16, { cache: true })));
    s.submit(ticket(image('plain', 6)));
    s.submit(ticket(answer('mmu'))); // understanding keeps the host path even with a cache
    const steps = await drain(s);
    expect(host.log.slice(0, 4)).toEqual([
      ['cached', 'plain', 'mmu'],
      ['cached', 'plain', 'mmu'],
      ['cached', 'plain', 'mmu'],
      ['cached', 'plain', 'mmu'],
    ]);
    expect(host.log.flat().filter((id) => id === 'cached')).toHaveLength(4); // steps 0…3: lone full steps
    expect(gpu.log).toEqual([['cached'], ['cached'], ['cached']]);
    expect(steps.find((x) => x.finished.some((f) => f.seq.id === 'cached'))!.calls.map((c) => c.kind)).toEqual(['segment']);
  });

  it('sends a preview whenever a step passes a multiple of previewEvery, segments included', async () => {
    const host = new FakeRunner('full');
    const gpu = new FakeSegments();
    const s = new BatchScheduler(host, gpu, { policy: continuous, lengthBucket: 8 });
    s.submit(ticket(image('host', 9), { previewEvery: 4 }));
    s.submit(ticket(image('seg', 16, { cache: true }), { previewEvery: 3 }));
    const previews: [string, number][] = [];
    // the step a preview shows is read when it is due (a sequence moves on afterwards)
    for (let r = await s.step(); !r.idle; r = await s.step()) previews.push(...r.step.previews.map((q): [string, number] => [q.id, q.step]));
    expect(previews.filter(([id]) => id === 'host')).toEqual([
      ['host', 4],
      ['host', 8],
    ]);
    // seg: steps 1, 2, 3, 4 on the host, then segments to 8 and 12 (16 finishes: no preview of a finished job)
    expect(previews.filter(([id]) => id === 'seg')).toEqual([
      ['seg', 3],
      ['seg', 8],
      ['seg', 12],
    ]);
  });

  it('cancels a waiting or a running job, on whichever runner holds it', async () => {
    const host = new FakeRunner('full');
    const gpu = new FakeSegments();
    const s = new BatchScheduler(host, gpu, { policy: { ...continuous, costBudget: 16 }, lengthBucket: 8 });
    s.submit(ticket(image('seg', 32, { cache: true })));
    s.submit(ticket(image('waits', 2)));
    for (let i = 0; i < 10; i++) await s.step();
    expect(gpu.members.has('seg')).toBe(true);
    expect(s.cancel('waits')).toBe(true);
    expect(s.cancel('seg')).toBe(true);
    expect(s.cancel('seg')).toBe(false);
    expect([gpu.size, host.size, s.running, s.queued]).toEqual([0, 0, 0, 0]);
  });

  it('on a failed model call drops every job of the step and names them', async () => {
    const host = new FakeRunner('full');
    const s = new BatchScheduler(host, null, { policy: continuous, lengthBucket: 8 });
    s.submit(ticket(image('a', 4)));
    s.submit(ticket(image('b', 4)));
    await s.step();
    host.failNext = true;
    const err = await s.step().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepFailed);
    expect((err as StepFailed).ids).toEqual(['a', 'b']);
    expect([host.size, s.running]).toEqual([0, 0]);
  });

  it('static batches never take a job mid-way', async () => {
    const s = new BatchScheduler(new FakeRunner('full'), null, { policy: { ...continuous, mode: 'static' }, lengthBucket: 8 });
    s.submit(ticket(image('first', 3)));
    await s.step();
    s.submit(ticket(image('late', 1)));
    const steps = await drain(s);
    expect(steps.map((x) => x.jobs)).toEqual([['first'], ['first'], ['late']]);
  });
});

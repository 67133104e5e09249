/**
 * The batch scheduler: which prepared jobs join the running batch (admission), which runner steps each of them (path
 * choice), and when a job's preview is due. Pure: the model, the clock and the messages are the caller's; the engine
 * thread (libs/runtime) drives it one step at a time.
 *
 * - **Admission**: every step, the waiting jobs are put in admission order (`AdmissionOrder`: first come, first served
 *   by default; a fair or priority policy plugs in here, seeing each job's team, priority and cost) and the batch
 *   policy (batch-plan.ts: cost budget, wait window, continuous or static) admits what fits.
 * - **Path choice**: with a segment runner (the GPU ML-Cache path, segment.ts), an ML-Cache image job it accepts runs
 *   there from the full step that starts its first segment; its warmup steps are lone full steps, which the host
 *   engine runs with `denoise`, batched with everyone else (through `denoise_segment` a lone full step also pays for
 *   the graph's unrolled inactive steps: 1.3–5.5× on an H200, docs/performance.md "On a GPU"). Every other job runs on
 *   the host engine (engine.ts).
 * - **Previews**: a job with `previewEvery` k is due for a preview whenever its step passes a multiple of k (a segment
 *   advances several steps at once).
 */
import type { BatchPolicy, Waiting } from './batch-plan';
import { paddedLength, planAdmission, sequenceCost } from './batch-plan';
import type { CallRecord, StepRunner } from './runner';
import type { Sequence } from './sequence';

/** A job's priority when nobody set one. */
export const DEFAULT_PRIORITY = 0;

/** A prepared job, as the scheduler receives it; `meta` is the caller's, handed back when the job finishes. */
export interface JobTicket<T = unknown> {
  seq: Sequence;
  team: string;
  /** higher runs sooner under a priority-aware order (ignored by first come, first served) */
  priority: number;
  /** a preview every this many steps (0: none) */
  previewEvery: number;
  meta: T;
}

/** What admission sees of a waiting job. */
export interface Candidate extends Waiting {
  team: string;
  priority: number;
}

/**
 * Puts the waiting jobs in the order admission tries them (the first that does not fit stops it). `running` is what the
 * batch holds now, for policies that balance teams.
 */
export type AdmissionOrder = (waiting: readonly Candidate[], running: readonly Candidate[]) => readonly Candidate[];

export const firstComeFirstServed: AdmissionOrder = (waiting) => [...waiting].sort((a, b) => a.arrivedAt - b.arrivedAt);

/** The GPU segment path, as the scheduler uses it. */
export interface SegmentPath extends StepRunner {
  /** whether it can run the sequence (an image task whose segments fit the graph) */
  accepts(seq: Sequence): boolean;
}

export interface SchedulerOptions {
  policy: BatchPolicy;
  /** rows are padded to a multiple of this (the manifest's lengthBucket): a job's cost is its padded length × rows */
  lengthBucket: number;
  order?: AdmissionOrder;
  /** ms clock */
  now?: () => number;
}

export interface FinishedJob<T = unknown> {
  seq: Sequence;
  meta: T;
  /** prepared and waiting for admission */
  admitWaitMs: number;
  /** admitted until its last step */
  samplingMs: number;
}

/** What a step did, as batch records and metrics see it. */
export interface StepStats {
  /** ids of the jobs that ran this step */
  jobs: string[];
  calls: CallRecord[];
  stepMs: number;
  /** ML-Cache memory held after the step */
  cacheBytes: number;
  /** summed cost (padded length × rows) of the batch after the step, and how many prepared jobs wait to join it */
  batchCost: number;
  waiting: number;
  /** jobs still in the batch (0: it drained) */
  running: number;
}

export interface SchedulerStep<T = unknown> extends StepStats {
  /** every job of the step: where it stands */
  progress: { id: string; step: number; steps: number }[];
  /** jobs whose preview is due, still running */
  previews: Sequence[];
  finished: FinishedJob<T>[];
}

/** A model call failed: every job of the step left the batch (their runs are retried by the queue). */
export class StepFailed extends Error {
  constructor(
    readonly ids: string[],
    cause: unknown,
  ) {
    super(`a step of ${ids.length} job(s) failed: ${String(cause)}`, { cause });
    this.name = 'StepFailed';
  }
}

interface Waiter<T> extends Candidate {
  ticket: JobTicket<T>;
}

interface Active<T> {
  ticket: JobTicket<T>;
  candidate: Candidate;
  startedAt: number;
  /** the step of the last preview due */
  lastPreview: number;
  /** an ML-Cache job the segment runner serves, except for its lone full steps */
  segmentPath: boolean;
}

export class BatchScheduler<T = unknown> {
  private readonly waiting: Waiter<T>[] = [];
  private readonly active = new Map<string, Active<T>>();
  private readonly order: AdmissionOrder;
  private readonly now: () => number;

  constructor(
    private readonly host: StepRunner,
    private readonly segment: SegmentPath | null,
    private readonly options: SchedulerOptions,
  ) {
    this.order = options.order ?? firstComeFirstServed;
    this.now = options.now ?? (() => performance.now());
  }

  get running(): number {
    return this.active.size;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** A prepared job waits for admission. */
  submit(ticket: JobTicket<T>): void {
    const { seq } = ticket;
    if (this.active.has(seq.id) || this.waiting.some((w) => w.id === seq.id)) throw new Error(`job ${seq.id} is already scheduled`);
    const cost = sequenceCost(paddedLength(seq, this.options.lengthBucket), seq.branches);
    this.waiting.push({ id: seq.id, team: ticket.team, priority: ticket.priority, cost, arrivedAt: this.now(), ticket });
  }

  /** Drops a job, waiting or running (it leaves before the next step); false when the scheduler does not hold it. */
  cancel(id: string): boolean {
    const w = this.waiting.findIndex((x) => x.id === id);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      return true;
    }
    if (!this.active.delete(id)) return false;
    this.host.remove(id);
    this.segment?.remove(id);
    return true;
  }

  /**
   * Admits what the policy allows, then runs one step of every admitted job. Idle (nothing admitted, nothing running):
   * `retryInMs` is when the wait window closes, or null to wait for the next submit.
   */
  async step(): Promise<{ idle: true; retryInMs: number | null } | { idle: false; step: SchedulerStep<T> }> {
    const retryInMs = this.admit();
    if (this.active.size === 0) return { idle: true, retryInMs };

    const t0 = this.now();
    const jobs = [...this.active.keys()];
    let calls: CallRecord[];
    let finishedSeqs: Sequence[];
    let cacheBytes: number;
    try {
      const host = this.host.size > 0 ? await this.host.step() : { calls: [], finished: [], cacheBytes: 0 };
      const gpu = this.segment && this.segment.size > 0 ? await this.segment.step() : { calls: [], finished: [], cacheBytes: 0 };
      calls = [...host.calls, ...gpu.calls];
      finishedSeqs = [...host.finished, ...gpu.finished];
      cacheBytes = host.cacheBytes + gpu.cacheBytes;
    } catch (err) {
      for (const id of jobs) this.cancel(id);
      throw new StepFailed(jobs, err);
    }
    const done = new Set(finishedSeqs.map((s) => s.id));
    const t1 = this.now();

    const progress: SchedulerStep['progress'] = [];
    const previews: Sequence[] = [];
    let batchCost = 0;
    for (const [id, a] of this.active) {
      const { seq, previewEvery } = a.ticket;
      progress.push({ id, step: seq.step, steps: seq.params.steps });
      if (done.has(id)) continue;
      batchCost += a.candidate.cost;
      // the full step that starts the first segment: the job moves to the segment path
      if (a.segmentPath && seq.leavesCache && this.host.remove(id)) this.segment!.add(seq);
      if (previewEvery > 0 && Math.floor(seq.step / previewEvery) > Math.floor(a.lastPreview / previewEvery)) {
        a.lastPreview = seq.step;
        previews.push(seq);
      }
    }
    const finished = finishedSeqs.map((seq) => {
      const a = this.active.get(seq.id)!;
      this.active.delete(seq.id);
      return { seq, meta: a.ticket.meta, admitWaitMs: a.startedAt - a.candidate.arrivedAt, samplingMs: t1 - a.startedAt };
    });
    return {
      idle: false,
      step: { jobs, calls, stepMs: t1 - t0, cacheBytes, batchCost, waiting: this.waiting.length, running: this.active.size, progress, previews, finished },
    };
  }

  private admit(): number | null {
    const now = this.now();
    const running = [...this.active.values()].map((a) => a.candidate);
    const ordered = this.order(this.waiting, running);
    const plan = planAdmission(this.options.policy, ordered, { count: running.length, cost: running.reduce((n, c) => n + c.cost, 0) }, now);
    for (const id of plan.admit) {
      const i = this.waiting.findIndex((w) => w.id === id);
      const { ticket, ...candidate } = this.waiting.splice(i, 1)[0]!;
      const seq = ticket.seq;
      const segmentPath = this.segment !== null && seq.params.cache !== null && this.segment.accepts(seq);
      if (segmentPath && seq.leavesCache) this.segment.add(seq);
      else this.host.add(seq);
      this.active.set(id, { ticket, candidate, startedAt: now, lastPreview: 0, segmentPath });
    }
    return plan.retryInMs;
  }
}

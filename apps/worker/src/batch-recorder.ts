/**
 * Turns the engine's per-step reports into batch records: which jobs ran together, batch size over time, forward time
 * per step, ML-Cache saving and memory. A record covers one busy period of the engine (from the first step after idle
 * until the batch drains), cut every `maxSteps` steps so a saturated worker still writes records.
 */
import { randomUUID } from 'node:crypto';
import type { BatchRecordStats } from '@dimoo/contracts';
import type { StepStats } from '@dimoo/runtime';

// the shape admins read back (GET /v1/admin/batches) is the contract's
export type { BatchRecordStats } from '@dimoo/contracts';

export interface BatchRecord {
  /** given when the batch opens: the worker's registry row names the batch it is running */
  id: string;
  startedAt: Date;
  finishedAt: Date;
  jobIds: string[];
  stats: BatchRecordStats;
}

interface Open {
  id: string;
  startedAt: number;
  jobIds: Set<string>;
  stepMs: number[];
  sizes: [number, number][];
  sizeSum: number;
  calls: number;
  forwardMs: number;
  positions: number;
  fullPositions: number;
  maxCacheBytes: number;
  maxBatchCost: number;
}

export class BatchRecorder {
  private open: Open | null = null;

  constructor(
    private readonly sink: (record: BatchRecord) => Promise<void>,
    private readonly maxSteps = 500,
    private readonly now: () => number = Date.now,
  ) {}

  /** The id of the batch the engine is running (null while idle). */
  get currentId(): string | null {
    return this.open?.id ?? null;
  }

  /** Adds one step; writes the record (through the sink) when the batch drained or reached `maxSteps`. */
  onStep(s: StepStats): Promise<void> | null {
    const t = this.now();
    const o = (this.open ??= {
      id: randomUUID(),
      startedAt: t - s.stepMs,
      jobIds: new Set(),
      stepMs: [],
      sizes: [],
      sizeSum: 0,
      calls: 0,
      forwardMs: 0,
      positions: 0,
      fullPositions: 0,
      maxCacheBytes: 0,
      maxBatchCost: 0,
    });
    for (const id of s.jobs) o.jobIds.add(id);
    o.stepMs.push(s.stepMs);
    if (o.sizes.at(-1)?.[1] !== s.jobs.length) o.sizes.push([Math.round(t - o.startedAt), s.jobs.length]);
    o.sizeSum += s.jobs.length;
    for (const c of s.calls) {
      o.calls++;
      o.forwardMs += c.ms;
      o.positions += c.positions;
      o.fullPositions += c.fullPositions;
    }
    o.maxCacheBytes = Math.max(o.maxCacheBytes, s.cacheBytes);
    o.maxBatchCost = Math.max(o.maxBatchCost, s.batchCost);
    if (s.running === 0 || o.stepMs.length >= this.maxSteps) return this.flush();
    return null;
  }

  /** Writes the open record, if any (also at shutdown). */
  flush(): Promise<void> | null {
    const o = this.open;
    if (!o) return null;
    this.open = null;
    const sorted = [...o.stepMs].sort((a, b) => a - b);
    const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    const round = (x: number) => Math.round(x * 100) / 100;
    const stats: BatchRecordStats = {
      steps: o.stepMs.length,
      jobs: o.jobIds.size,
      sizeOverTime: o.sizes,
      maxSize: Math.max(...o.sizes.map(([, n]) => n)),
      meanSize: round(o.sizeSum / o.stepMs.length),
      modelCalls: o.calls,
      stepMs: { mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length), p50: round(pick(0.5)), p95: round(pick(0.95)), max: round(sorted.at(-1)!) },
      forwardMs: round(o.forwardMs),
      positions: o.positions,
      fullPositions: o.fullPositions,
      cacheHitRatio: o.fullPositions > 0 ? round(1 - o.positions / o.fullPositions) : 0,
      maxCacheBytes: o.maxCacheBytes,
      maxBatchCost: o.maxBatchCost,
    };
    return this.sink({ id: o.id, startedAt: new Date(o.startedAt), finishedAt: new Date(this.now()), jobIds: [...o.jobIds], stats });
  }
}

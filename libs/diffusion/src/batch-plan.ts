/**
 * Batch formation: which waiting sequences enter the running batch, and when.
 *
 * - **Cost** of a sequence = its padded row length × guidance branches: the positions one full step computes for it,
 *   which is what model time and ML-Cache memory grow with. A batch never holds more than `costBudget` (a sequence
 *   costlier than the whole budget runs alone rather than never).
 * - **Wait window**: an idle engine that receives a sequence waits up to `waitMs` from that first arrival for more to
 *   come, so a burst starts as one batch; it starts at once when the waiting cost already fills the budget.
 * - **continuous** (default): while a batch runs, waiting sequences join it at the next step as soon as they fit.
 *   **static** (for comparison): nothing joins a running batch; the next one forms when it is empty.
 * - Order: the scheduler's admission order (scheduler.ts; first come, first served by default). A sequence that
 *   does not fit is not overtaken by a smaller one behind it in that order.
 *
 * Grouping by shape happens inside the batch (engine.ts): sequences of different padded lengths, branch counts or
 * cache phases take separate model calls in the same step, so padding never exceeds one length bucket.
 */

import type { Sequence } from './sequence';

export type BatchMode = 'continuous' | 'static';

export interface BatchPolicy {
  mode: BatchMode;
  /** most positions (padded length × branches, summed over the batch) in one batch */
  costBudget: number;
  /** how long an idle engine waits, from the first arrival, for a batch to fill */
  waitMs: number;
}

/**
 * Continuous batching, no wait window: a job that arrives later joins at the next step anyway, so waiting only adds
 * latency (measured: 10 ms per lone job, bench:serve); a window pays off for static batches and on GPUs where a
 * larger first step is nearly free. The budget (padded length × branches) fits 16 guided 128² sequences of the tiny
 * model (cost 224 each); a CPU gains little beyond 4 (docs/performance.md), so set it from bench:serve on a GPU.
 */
export const DEFAULT_BATCH_POLICY: BatchPolicy = { mode: 'continuous', costBudget: 4096, waitMs: 0 };

export interface Waiting {
  id: string;
  /** positions one full step computes for it (`sequenceCost`) */
  cost: number;
  /** ms timestamp of arrival */
  arrivedAt: number;
}

export interface Admission {
  /** ids to add to the batch now, in arrival order */
  admit: string[];
  /** when nothing is admitted although sequences wait: ms until the window closes (null: wait for the batch to drain) */
  retryInMs: number | null;
}

export function sequenceCost(paddedLength: number, branches: number): number {
  return paddedLength * branches;
}

/** The length every row of `seq` is padded to: its longest branch, rounded up to the model's length bucket. */
export function paddedLength(seq: Sequence, lengthBucket: number): number {
  const longest = Math.max(...seq.spec.branches.map((_, g) => seq.rowLength(g)));
  return Math.ceil(longest / lengthBucket) * lengthBucket;
}

/**
 * Splits the running sequences into model calls: one list per compatibility key (sequences that can share padded
 * rows), cut so that no call has more than `maxRows` rows (sequences × branches).
 */
export function callGroups<M extends { seq: Sequence }>(members: Iterable<M>, key: (m: M) => string, maxRows: number): M[][] {
  const byKey = new Map<string, M[]>();
  for (const m of members) {
    const k = key(m);
    byKey.set(k, [...(byKey.get(k) ?? []), m]);
  }
  const out: M[][] = [];
  for (const list of byKey.values()) {
    const per = Math.max(1, Math.floor(maxRows / list[0]!.seq.branches));
    for (let i = 0; i < list.length; i += per) out.push(list.slice(i, i + per));
  }
  return out;
}

/**
 * Decides admissions given what waits (in admission order) and what runs (its total cost and count).
 * Pure: the caller owns the clock and the queues.
 */
export function planAdmission(policy: BatchPolicy, waiting: readonly Waiting[], running: { count: number; cost: number }, now: number): Admission {
  if (waiting.length === 0) return { admit: [], retryInMs: null };
  if (running.count > 0 && policy.mode === 'static') return { admit: [], retryInMs: null };

  if (running.count === 0) {
    const waited = now - Math.min(...waiting.map((w) => w.arrivedAt));
    const waitingCost = waiting.reduce((n, w) => n + w.cost, 0);
    if (waited < policy.waitMs && waitingCost < policy.costBudget) return { admit: [], retryInMs: policy.waitMs - waited };
  }

  const admit: string[] = [];
  let cost = running.cost;
  for (const w of waiting) {
    const alone = running.count === 0 && admit.length === 0;
    if (!alone && cost + w.cost > policy.costBudget) break;
    admit.push(w.id);
    cost += w.cost;
  }
  return { admit, retryInMs: null };
}

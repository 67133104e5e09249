/**
 * What the two runners of sequences share — the host engine (engine.ts: one model call per group and step) and the GPU
 * segment path (segment.ts: one run per group and refresh segment): who is running, the step that advances them all,
 * who finished, and the record of every model call. The batch scheduler (scheduler.ts) drives them through `StepRunner`.
 */
import { paddedLength } from './batch-plan';
import type { Sequence } from './sequence';

export interface CallRecord {
  /** host path: a full step, a partial (ML-Cache) step, the draw from cached logits; GPU path: a segment run */
  kind: 'full' | 'partial' | 'sample' | 'segment';
  sequences: number;
  rows: number;
  length: number;
  /** positions run through the transformer (rows × real length for full steps, the selected subsets for partial) */
  positions: number;
  /** positions a full step of the same rows would run: 1 − positions / fullPositions is the ML-Cache saving */
  fullPositions: number;
  /** steps the call advanced its sequences (a segment run: up to the graph's unroll) */
  steps: number;
  ms: number;
}

export interface StepReport {
  calls: CallRecord[];
  finished: Sequence[];
  /** bytes of ML-Cache state held after the step */
  cacheBytes: number;
}

/** A runner of sequences, one step at a time. */
export interface StepRunner {
  readonly size: number;
  add(seq: Sequence): void;
  /** Leaves at once (cancel); false when it was not running here. */
  remove(id: string): boolean;
  /** Advances every sequence it holds; finished ones leave. */
  step(): Promise<StepReport>;
}

export interface RunnerOptions {
  /** rows of a call are padded to a multiple of this (the manifest's lengthBucket) */
  lengthBucket: number;
  /** most rows (sequences × branches) in one model call */
  maxRows: number;
  /** keep every call in `calls` (tests, benchmarks); a long-running runner reads each step's report instead. Default true. */
  keepCalls?: boolean;
}

/** A running sequence and the length its rows are padded to. */
export interface Running {
  seq: Sequence;
  length: number;
}

export abstract class SequenceRunner<M extends Running> implements StepRunner {
  protected readonly members = new Map<string, M>();
  /** every model call since construction, unless `keepCalls` is false (tests and benchmarks read it) */
  readonly calls: CallRecord[] = [];

  protected constructor(protected readonly options: RunnerOptions) {}

  get size(): number {
    return this.members.size;
  }

  add(seq: Sequence): void {
    if (this.members.has(seq.id)) throw new Error(`sequence ${seq.id} is already running`);
    this.members.set(seq.id, this.member(seq, paddedLength(seq, this.options.lengthBucket)));
  }

  remove(id: string): boolean {
    return this.members.delete(id);
  }

  /** Runs the given sequences to completion together. */
  async run(seqs: Sequence[]): Promise<void> {
    for (const s of seqs) this.add(s);
    while (this.members.size > 0) await this.step();
  }

  async step(): Promise<StepReport> {
    const calls: CallRecord[] = [];
    await this.advance(calls);
    const finished: Sequence[] = [];
    for (const [id, m] of this.members) {
      if (m.seq.done) {
        this.members.delete(id);
        finished.push(m.seq);
      }
    }
    if (this.options.keepCalls !== false) this.calls.push(...calls);
    return { calls, finished, cacheBytes: this.cacheBytes() };
  }

  /** A new member (throws when this runner cannot run the sequence). */
  protected abstract member(seq: Sequence, length: number): M;

  /** Advances every member by this runner's step, recording each model call. */
  protected abstract advance(calls: CallRecord[]): Promise<void>;

  /** ML-Cache memory held between steps. */
  protected abstract cacheBytes(): number;
}

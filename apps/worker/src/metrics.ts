/**
 * The worker's Prometheus metrics, served at `/metrics` on its health port (`health.ts`, HEALTH_PORT). The names are a
 * contract with the deployment (`deploy/prometheus/alerts.yaml`, `deploy/grafana/dimoo.json`): rename nothing without
 * them.
 *
 * - Jobs: the wait from submit to start (observed when this worker takes a job), the run from start to its end and
 *   the jobs ended, by task and status (succeeded, failed, canceled: what this worker recorded).
 * - The engine, from its per-step report (`EngineHost.addStepListener`): batch size (sequences in a step), step time,
 *   positions the transformer computed and what full steps would have computed (their ratio is ML-Cache's saving),
 *   model calls, the batch's cost and the ML-Cache memory held.
 * - The worker's heartbeat: when its periodic writes (progress, heartbeats, cancel checks) last completed.
 * - prom-client's process metrics, prefixed `dimoo_worker_`.
 * Recording costs a few additions per step on the event loop; the exposition is built only when scraped.
 */
import { processRegistry } from '@dimoo/config';
import { Counter, Gauge, Histogram } from 'prom-client';
import { JOB_TASKS } from '@dimoo/contracts';
import type { StepStats } from '@dimoo/runtime';

/** What the worker records at the end of a job it ran. */
export const FINISHED_STATUSES = ['succeeded', 'failed', 'canceled'] as const;
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

export class WorkerMetrics {
  readonly registry = processRegistry('dimoo_worker_');
  private readonly wait: Histogram;
  private readonly run: Histogram<'task' | 'status'>;
  private readonly finished: Counter<'task' | 'status'>;
  private readonly batchSize: Histogram;
  private readonly stepSeconds: Histogram;
  private readonly positions: Counter;
  private readonly fullPositions: Counter;
  private readonly modelCalls: Counter;
  private readonly cacheBytes: Gauge;
  private readonly batchCost: Gauge;
  private readonly heartbeat: Gauge<'worker'>;
  private readonly jobsHeld: Gauge;

  constructor(private readonly workerId: string) {
    const registers = [this.registry];
    this.wait = new Histogram({
      name: 'dimoo_job_wait_seconds',
      help: 'Time from a job’s submit to its first start on a worker (observed at the take)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.run = new Histogram({
      name: 'dimoo_job_run_seconds',
      help: 'Time from a job’s start to its end on this worker (inputs, sampling, upload), by task and status',
      labelNames: ['task', 'status'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    this.finished = new Counter({
      name: 'dimoo_jobs_finished_total',
      help: 'Jobs this worker ended, by task and status (succeeded, failed, canceled)',
      labelNames: ['task', 'status'],
      registers,
    });
    // every series from the start at 0: `increase()` then counts a series' first job too (alerts on the failure rate)
    for (const task of JOB_TASKS) for (const status of FINISHED_STATUSES) this.finished.inc({ task, status }, 0);
    this.batchSize = new Histogram({
      name: 'dimoo_batch_size',
      help: 'Sequences in an engine step (each image of a job is one)',
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256],
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'dimoo_step_seconds',
      help: 'Wall time of an engine step (all its model calls and host work)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.positions = new Counter({
      name: 'dimoo_positions_computed_total',
      help: 'Positions the transformer computed (rows × tokens recomputed)',
      registers,
    });
    this.fullPositions = new Counter({
      name: 'dimoo_positions_full_total',
      help: 'Positions full steps of the same rows would have computed (1 − computed/full: what ML-Cache saved)',
      registers,
    });
    this.modelCalls = new Counter({ name: 'dimoo_model_calls_total', help: 'Model calls the engine made', registers });
    this.cacheBytes = new Gauge({ name: 'dimoo_ml_cache_bytes', help: 'ML-Cache memory the running batch held after its last step', registers });
    this.batchCost = new Gauge({
      name: 'dimoo_batch_cost',
      help: 'Summed cost (padded length × rows) of the running batch after its last step',
      registers,
    });
    this.heartbeat = new Gauge({
      name: 'dimoo_worker_heartbeat_timestamp_seconds',
      help: 'When this worker’s periodic writes (progress, job heartbeats, cancel checks) last completed, Unix seconds',
      labelNames: ['worker'],
      registers,
    });
    this.jobsHeld = new Gauge({ name: 'dimoo_worker_jobs_held', help: 'Jobs this worker holds (in the engine or on their way to it)', registers });
  }

  /** A job was taken: its first start observes its wait since submit (both times by Postgres' clock). */
  taken(job: { createdAt: Date; startedAt: Date | null; attempts: number }): void {
    if (job.startedAt && job.attempts === 1) this.wait.observe(Math.max(0, (job.startedAt.getTime() - job.createdAt.getTime()) / 1000));
  }

  /** This worker recorded the end of a job it started `runMs` ago. */
  ended(task: string, status: FinishedStatus, runMs: number): void {
    this.finished.inc({ task, status });
    this.run.observe({ task, status }, runMs / 1000);
  }

  /** One engine step's report. */
  onStep(s: StepStats): void {
    if (s.jobs.length > 0) this.batchSize.observe(s.jobs.length);
    this.stepSeconds.observe(s.stepMs / 1000);
    let positions = 0;
    let full = 0;
    for (const c of s.calls) {
      positions += c.positions;
      full += c.fullPositions;
    }
    this.positions.inc(positions);
    this.fullPositions.inc(full);
    this.modelCalls.inc(s.calls.length);
    this.cacheBytes.set(s.cacheBytes);
    this.batchCost.set(s.batchCost);
  }

  /** How many jobs the worker holds now. */
  held(n: number): void {
    this.jobsHeld.set(n);
  }

  /** The worker's periodic writes completed (or had nothing to write) now. */
  beat(at = Date.now()): void {
    this.heartbeat.set({ worker: this.workerId }, at / 1000);
  }
}

/**
 * The API's Prometheus metrics (`GET /metrics`, `metrics.controller.ts`). The names are a contract with the deployment
 * (KEDA scaling, `deploy/prometheus/alerts.yaml`, `deploy/grafana/dimoo.json`): rename nothing without them.
 *
 * - What the whole service holds, read at scrape time: jobs per status and team, the oldest queued job's age and the
 *   stalest running heartbeat (one grouped statement, `JobRepository.statusCounts`), jobs waiting per team in the fair
 *   queue and in BullMQ, the workers BullMQ knows, the worker registry (live, stale, and live ones serving another model
 *   than this API's manifest). One reading serves every scrape for `CLUSTER_READ_TTL_MS`: several
 *   Prometheus replicas or an open dashboard cost one statement and a few Redis round trips per period. Every API
 *   replica reports the same values: aggregate them with `max`, not `sum`. A store that does not answer leaves its
 *   series out of that scrape (rather than report stale values) and counts `dimoo_metrics_source_errors_total`.
 * - This process's HTTP traffic: requests by method, route template (never the raw URL: ids would make a series
 *   each) and status, and their duration; requests answered before routing (404s, refused bodies) have the route
 *   `unmatched`.
 * - prom-client's process metrics (CPU, memory, event loop lag, GC), prefixed `dimoo_api_`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { OnApplicationBootstrap } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { InjectQueue } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { processRegistry } from '@dimoo/config';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { JobStatusCount } from '@dimoo/db';
import { JobRepository } from '@dimoo/db';
import { QUEUE_NAMES } from '@dimoo/queue';
import type { WorkerView } from '@dimoo/contracts';
import { WorkerRegistry } from '../admin/worker-registry';
import { DispatchService } from '../jobs/dispatch.service';

/** How long one reading of Postgres and Redis answers scrapes. */
export const CLUSTER_READ_TTL_MS = 5000;
/** A store that takes longer than this leaves its series out of the scrape. */
const SOURCE_TIMEOUT_MS = 2000;
/** The team label of the jobs BullMQ holds (already dispatched from the fair queue, not yet taken by a worker). */
export const DISPATCHED_TEAM = '_dispatched';
/** The route label of requests no route answered. */
export const UNMATCHED_ROUTE = 'unmatched';

interface ClusterReading {
  jobs: JobStatusCount[] | null;
  fair: { teamId: string; waiting: number }[] | null;
  /** BullMQ's waiting + prioritized + delayed jobs */
  dispatched: number | null;
  workers: number | null;
  registry: WorkerView[] | null;
}

const within = <T>(p: Promise<T>): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${SOURCE_TIMEOUT_MS} ms`)), SOURCE_TIMEOUT_MS))),
  ]).finally(() => clearTimeout(timer));
};

@Injectable()
export class ApiMetrics implements OnApplicationBootstrap {
  readonly registry = processRegistry('dimoo_api_');
  private reading: { at: number; value: Promise<ClusterReading> } | null = null;
  private readonly sourceErrors: Counter<'source'>;
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly durations: Histogram<'method' | 'route'>;

  constructor(
    private readonly jobs: JobRepository,
    private readonly dispatch: DispatchService,
    private readonly workerRegistry: WorkerRegistry,
    @InjectQueue(QUEUE_NAMES.generation) private readonly queue: Queue,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    const registers = [this.registry];
    this.sourceErrors = new Counter({
      name: 'dimoo_metrics_source_errors_total',
      help: 'Scrapes whose reading of a store (postgres, redis) failed or timed out; its series were left out',
      labelNames: ['source'],
      registers,
    });
    for (const source of ['postgres', 'redis']) this.sourceErrors.inc({ source }, 0);
    this.requests = new Counter({
      name: 'dimoo_http_requests_total',
      help: 'HTTP requests answered by this API process, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.durations = new Histogram({
      name: 'dimoo_http_request_duration_seconds',
      help: 'Time from a request to the end of its answer (event streams: until they close), by method and route template',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const read = () => this.read();
    new Gauge({
      name: 'dimoo_jobs',
      help: 'Jobs in the record (Postgres) by status and team id; the same on every API replica (aggregate with max)',
      labelNames: ['status', 'team'],
      registers,
      async collect() {
        const { jobs } = await read();
        this.reset();
        for (const r of jobs ?? []) this.set({ status: r.status, team: r.teamId }, r.jobs);
      },
    });
    new Gauge({
      name: 'dimoo_team_info',
      help: 'Always 1: the name of each team id that has jobs (join on `team` to show names)',
      labelNames: ['team', 'name'],
      registers,
      async collect() {
        const { jobs } = await read();
        this.reset();
        for (const r of jobs ?? []) this.set({ team: r.teamId, name: r.teamName }, 1);
      },
    });
    new Gauge({
      name: 'dimoo_queue_oldest_waiting_seconds',
      help: 'Age of the oldest queued job (since its submit, from Postgres); 0 when none waits',
      registers,
      async collect() {
        const { jobs } = await read();
        this.reset();
        if (jobs) this.set(Math.max(0, ...jobs.map((r) => r.oldestQueuedSeconds ?? 0)));
      },
    });
    new Gauge({
      name: 'dimoo_jobs_running_oldest_heartbeat_seconds',
      help: "Time since the stalest running job's worker last wrote its heartbeat (from Postgres); 0 when none runs",
      registers,
      async collect() {
        const { jobs } = await read();
        this.reset();
        if (jobs) this.set(Math.max(0, ...jobs.map((r) => r.oldestHeartbeatSeconds ?? 0)));
      },
    });
    new Gauge({
      name: 'dimoo_queue_waiting_jobs',
      help: `Jobs waiting: in the fair queue per team id, and in BullMQ (team="${DISPATCHED_TEAM}": waiting + prioritized + delayed)`,
      labelNames: ['team'],
      registers,
      async collect() {
        const { fair, dispatched } = await read();
        this.reset();
        for (const t of fair ?? []) this.set({ team: t.teamId }, t.waiting);
        if (dispatched !== null) this.set({ team: DISPATCHED_TEAM }, dispatched);
      },
    });
    new Gauge({
      name: 'dimoo_workers',
      help: 'Workers connected to the generation queue (BullMQ getWorkers: live Redis connections of workers taking jobs)',
      registers,
      async collect() {
        const { workers } = await read();
        this.reset();
        if (workers !== null) this.set(workers);
      },
    });
    new Gauge({
      name: 'dimoo_registered_workers',
      help: 'Workers in the registry (Postgres): live, stale (no heartbeat for 3 of its periods), and mismatch: live ones whose model checksum is not that of the manifest this API serves',
      labelNames: ['state'],
      registers,
      async collect() {
        const { registry } = await read();
        this.reset();
        if (!registry) return;
        const live = registry.filter((w) => !w.stale);
        this.set({ state: 'live' }, live.length);
        this.set({ state: 'stale' }, registry.length - live.length);
        this.set({ state: 'mismatch' }, live.filter((w) => !w.modelMatches).length);
      },
    });
  }

  /** Counts every request the HTTP server answers, whatever answered it (routes, body errors, the 404 handler). */
  onApplicationBootstrap(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    server?.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const t0 = performance.now();
      res.once('close', () => this.observe(req, res, (performance.now() - t0) / 1000));
    });
  }

  private observe(req: IncomingMessage, res: ServerResponse, seconds: number): void {
    // Express sets `route` on the request when a route matched it: its path is the template (`/v1/jobs/:id`)
    const routed = req as IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };
    const template = typeof routed.route?.path === 'string' ? `${routed.baseUrl ?? ''}${routed.route.path}` : UNMATCHED_ROUTE;
    const method = req.method ?? 'UNKNOWN';
    this.requests.inc({ method, route: template, status: String(res.statusCode) });
    this.durations.observe({ method, route: template }, seconds);
  }

  /** Postgres and Redis as the scrape reports them: one reading per `CLUSTER_READ_TTL_MS`, shared by every gauge. */
  private read(): Promise<ClusterReading> {
    const now = Date.now();
    if (this.reading && now - this.reading.at < CLUSTER_READ_TTL_MS) return this.reading.value;
    const value = this.readNow();
    this.reading = { at: now, value };
    return value;
  }

  private async readNow(): Promise<ClusterReading> {
    const [jobs, registry, fair, counts, workers] = await Promise.allSettled([
      within(this.jobs.statusCounts()),
      within(this.workerRegistry.list()),
      within(this.dispatch.fair.teams()),
      within(this.queue.getJobCounts('waiting', 'prioritized', 'delayed')),
      within(this.queue.getWorkersCount()),
    ]);
    if ([jobs, registry].some((r) => r.status === 'rejected')) this.sourceErrors.inc({ source: 'postgres' });
    if ([fair, counts, workers].some((r) => r.status === 'rejected')) this.sourceErrors.inc({ source: 'redis' });
    const value = <T>(r: PromiseSettledResult<T>): T | null => (r.status === 'fulfilled' ? r.value : null);
    const c = value(counts);
    return {
      jobs: value(jobs),
      fair: value(fair),
      dispatched: c ? (c['waiting'] ?? 0) + (c['prioritized'] ?? 0) + (c['delayed'] ?? 0) : null,
      workers: value(workers),
      registry: value(registry),
    };
  }
}

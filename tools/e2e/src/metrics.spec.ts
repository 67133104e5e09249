/**
 * Metrics (issue 14): the API's, a worker's and the notifier's `/metrics` after real work. Two jobs submitted while no
 * worker runs show up as waiting (one in BullMQ, one in the team's fair queue: DISPATCH_AHEAD=1) with no worker; a
 * worker then runs them and a third; the expositions then hold the jobs by status, the wait and run histograms (one
 * observation per job), the batch sizes (their sum is every sequence's steps), positions, the HTTP counter under the
 * route template, the worker's heartbeat and the webhook delivery. Each exposition passes `promtool check metrics`,
 * and every metric the alert rules and the dashboard use is in one of them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { JobView } from '@dimoo/contracts';
import type { Platform } from '@dimoo/platform';
import { freePort, NotifierProcess, platformTeam, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (Prometheus format 0.0.4). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample named `name` whose labels include `labels` (undefined when there is none). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0]?.value;
}

const promtool = spawnSync('promtool', ['--version']).status === 0;

let p: Platform;
let worker: WorkerProcess | undefined;
let notifier: NotifierProcess;
let receiver: Server;
let hookUrl: string;
let team: { id: string; key: string };
let workerPort: number;
let notifierPort: number;
const workerId = 'metrics-worker-1';
const expositions: Record<'api' | 'worker' | 'notifier', string> = { api: '', worker: '', notifier: '' };

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** Scrapes until `ok` holds for the samples (the API reuses one reading of Postgres and Redis for 5 s). */
async function scrapeUntil(url: string, ok: (s: Sample[]) => boolean, what: string, timeoutMs = 15_000): Promise<string> {
  for (const t0 = Date.now(); ; await sleep(250)) {
    const text = await scrape(url);
    if (ok(parse(text))) return text;
    if (Date.now() - t0 > timeoutMs) {
      const ours = text.split('\n').filter((l) => l.startsWith('dimoo_') && !l.includes('_bucket'));
      throw new Error(`timed out waiting for ${what}:\n${ours.join('\n')}`);
    }
  }
}

async function submit(body: Record<string, unknown>): Promise<JobView> {
  const res = await fetch(`${p.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${team.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as JobView;
}

async function finished(id: string): Promise<JobView> {
  for (const t0 = Date.now(); ;) {
    const res = await fetch(`${p.url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${team.key}`, prefer: 'wait=20' } });
    const job = (await res.json()) as JobView;
    if (['succeeded', 'failed', 'canceled', 'expired'].includes(job.status)) return job;
    if (Date.now() - t0 > 60_000) throw new Error(`job ${id} did not finish: ${JSON.stringify(job)}\n${worker?.output.join('')}`);
  }
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  [workerPort, notifierPort] = [await freePort(), await freePort()];
  // one job at a time in BullMQ: the second waits in its team's fair queue
  p = await startPlatform({ apiEnv: { DISPATCH_AHEAD: '1' } });
  notifier = new NotifierProcess({
    DATABASE_URL: p.env['DATABASE_URL'],
    REDIS_URL: p.env['REDIS_URL'],
    QUEUE_PREFIX: p.env['QUEUE_PREFIX'],
    WEBHOOK_ALLOW: '127.0.0.1/32',
    NOTIFIER_SCAN_MS: '200',
    METRICS_PORT: String(notifierPort),
  });
  await notifier.ready();
  team = await platformTeam(p, 'metrics');
}, 120_000);

afterAll(async () => {
  await notifier?.kill('SIGTERM');
  await worker?.kill('SIGKILL');
  await p?.close();
  await new Promise((r) => receiver?.close(r));
});

const job = { task: 't2i', prompt: 'a red circle at the top left', steps: 4, seed: 3 };

it('reports waiting jobs and no worker, then the jobs a worker ran, on the API, the worker and the notifier', async () => {
  const queued = [await submit(job), await submit({ ...job, seed: 4, webhook: hookUrl, webhookEvents: ['completed'] })];
  const waiting = parse(
    await scrapeUntil(
      `${p.url}/metrics`,
      (s) => value(s, 'dimoo_jobs', { status: 'queued', team: team.id }) === 2 && value(s, 'dimoo_queue_waiting_jobs', { team: team.id }) === 1,
      'two queued jobs, one of them in the fair queue',
    ),
  );
  expect(value(waiting, 'dimoo_queue_waiting_jobs', { team: '_dispatched' })).toBe(1);
  expect(value(waiting, 'dimoo_workers')).toBe(0);
  expect(value(waiting, 'dimoo_queue_oldest_waiting_seconds')).toBeGreaterThan(0);
  expect(value(waiting, 'dimoo_queue_oldest_waiting_seconds')).toBeLessThan(60);
  expect(value(waiting, 'dimoo_team_info', { team: team.id, name: 'metrics' })).toBe(1);

  worker = new WorkerProcess({ ...p.workerEnv, HEALTH_PORT: String(workerPort), WORKER_ID: workerId });
  await worker.ready();
  queued.push(await submit({ ...job, seed: 5 }));
  const done = await Promise.all(queued.map((j) => finished(j.id)));
  expect(done.map((j) => j.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);

  // the API: the record by status, nothing waiting, one worker, the HTTP traffic by route template
  expositions.api = await scrapeUntil(
    `${p.url}/metrics`,
    (s) => value(s, 'dimoo_jobs', { status: 'succeeded', team: team.id }) === 3 && value(s, 'dimoo_workers') === 1,
    'three succeeded jobs and one worker',
  );
  const api = parse(expositions.api);
  expect(value(api, 'dimoo_jobs', { status: 'queued', team: team.id })).toBeUndefined();
  expect(value(api, 'dimoo_queue_waiting_jobs', { team: '_dispatched' })).toBe(0);
  expect(value(api, 'dimoo_queue_oldest_waiting_seconds')).toBe(0);
  expect(value(api, 'dimoo_jobs_running_oldest_heartbeat_seconds')).toBe(0);
  expect(value(api, 'dimoo_http_requests_total', { method: 'POST', route: '/v1/jobs', status: '202' })).toBe(3);
  expect(value(api, 'dimoo_http_request_duration_seconds_count', { method: 'POST', route: '/v1/jobs' })).toBe(3);
  expect(value(api, 'dimoo_http_requests_total', { method: 'GET', route: '/v1/jobs/:id', status: '200' })).toBeGreaterThanOrEqual(3);
  expect(api.filter((s) => s.name === 'dimoo_http_requests_total' && s.labels['route']!.includes(queued[0]!.id))).toEqual([]);
  expect(value(api, 'dimoo_api_process_resident_memory_bytes')).toBeGreaterThan(0);

  // the worker: one wait and one run per job, batch sizes summing to every job's steps, the engine's positions
  expositions.worker = await scrape(`http://127.0.0.1:${workerPort}/metrics`);
  const w = parse(expositions.worker);
  expect(value(w, 'dimoo_job_wait_seconds_count')).toBe(3);
  expect(value(w, 'dimoo_job_run_seconds_count', { task: 't2i', status: 'succeeded' })).toBe(3);
  expect(value(w, 'dimoo_jobs_finished_total', { task: 't2i', status: 'succeeded' })).toBe(3);
  expect(value(w, 'dimoo_jobs_finished_total', { task: 't2i', status: 'failed' })).toBe(0);
  // the first two jobs waited at least until the worker started; the third was taken at once
  expect(value(w, 'dimoo_job_wait_seconds_sum')).toBeGreaterThan(0);
  const steps = done.reduce((n, j) => n + j.step, 0);
  expect(steps).toBe(12);
  expect(value(w, 'dimoo_batch_size_sum')).toBe(steps);
  const stepCount = value(w, 'dimoo_step_seconds_count')!;
  expect(value(w, 'dimoo_batch_size_count')).toBe(stepCount);
  expect(stepCount).toBeGreaterThanOrEqual(4);
  expect(stepCount).toBeLessThanOrEqual(steps);
  const computed = value(w, 'dimoo_positions_computed_total')!;
  expect(computed).toBeGreaterThan(0);
  expect(computed).toBeLessThanOrEqual(value(w, 'dimoo_positions_full_total')!);
  expect(value(w, 'dimoo_model_calls_total')).toBeGreaterThanOrEqual(stepCount);
  expect(value(w, 'dimoo_worker_jobs_held')).toBe(0);
  const beat = value(w, 'dimoo_worker_heartbeat_timestamp_seconds', { worker: workerId })!;
  expect(Math.abs(Date.now() / 1000 - beat)).toBeLessThan(10);
  expect(value(w, 'dimoo_worker_process_resident_memory_bytes')).toBeGreaterThan(0);

  // the notifier: the one webhook asked for, delivered
  expositions.notifier = await scrapeUntil(
    `http://127.0.0.1:${notifierPort}/metrics`,
    (s) => value(s, 'dimoo_webhook_deliveries_total', { outcome: 'delivered' }) === 1,
    'one delivered webhook',
  );
  const n = parse(expositions.notifier);
  expect(value(n, 'dimoo_webhook_deliveries_total', { outcome: 'retry' })).toBe(0);
  expect(value(n, 'dimoo_webhook_delivery_seconds_count')).toBe(1);
}, 120_000);

it('an unrouted request is counted under route="unmatched", never its URL', async () => {
  const res = await fetch(`${p.url}/no/such/path-7f3a`);
  expect(res.status).toBe(404);
  const api = parse(
    await scrapeUntil(
      `${p.url}/metrics`,
      (s) => value(s, 'dimoo_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }) !== undefined,
      'the 404',
    ),
  );
  expect(value(api, 'dimoo_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
  expect(api.filter((s) => Object.values(s.labels).some((v) => v.includes('7f3a')))).toEqual([]);
});

it('every metric the alert rules and the dashboard use is exposed by the API, the worker or the notifier', () => {
  // sample names and metric families (a histogram's name besides its _bucket, _sum and _count samples)
  const families = (text: string) => [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  const exposed = new Set(Object.values(expositions).flatMap((text) => [...parse(text).map((s) => s.name), ...families(text)]));
  expect(exposed.size).toBeGreaterThan(50);
  const used = (file: string) => new Set(readFileSync(resolve(ROOT, file), 'utf8').match(/\bdimoo_[a-z0-9_]+/g) ?? []);
  const alerts = used('deploy/prometheus/alerts.yaml');
  const dashboard = used('deploy/grafana/dimoo.json');
  expect(alerts.size).toBeGreaterThanOrEqual(6);
  expect(dashboard.size).toBeGreaterThanOrEqual(15);
  expect([...alerts, ...dashboard].filter((name) => !exposed.has(name))).toEqual([]);
});

const checkMetrics = promtool ? it : it.skip;
checkMetrics(
  `each exposition passes promtool check metrics${promtool ? '' : ' (SKIPPED: promtool is not installed; .ci/run installs Debian prometheus)'}`,
  () => {
    for (const [name, text] of Object.entries(expositions)) {
      expect(text).toContain('dimoo_');
      const out = (() => {
        try {
          return execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string };
          throw new Error(`${name}: promtool check metrics failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
        }
      })();
      expect(`${name}: ${out}`).toBe(`${name}: `);
    }
  },
);

if (!promtool) console.warn('metrics.spec: promtool is not installed, `promtool check metrics` is skipped (.ci/run installs Debian prometheus)');

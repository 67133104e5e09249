/**
 * Signed webhooks (issue 13): the notifier process delivers a job's events to a receiver on 127.0.0.1 (allowed by
 * WEBHOOK_ALLOW), every request verifies with the team's secret (Standard Webhooks), a 500 is retried with backoff and
 * the delivery log shows both tries; a private address outside the allow-list is refused without retries; a rotated
 * secret signs next to the old one.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { JobView } from '@dimoo/contracts';
import type { Platform } from '@dimoo/platform';
import { NotifierProcess, platformTeam, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let p: Platform;
let worker: WorkerProcess;
let notifier: NotifierProcess;
let receiver: Server;
let base: string;
const received: Received[] = [];
let key: string;

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

async function until<T>(what: string, get: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  for (const t0 = Date.now(); ; await sleep(100)) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; received: ${received.map((r) => r.path).join(', ')}`);
  }
}

beforeAll(async () => {
  const flaky = new Set<string>();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      // /flaky answers 500 to the first delivery of each event, then 200
      const id = String(req.headers['webhook-id']);
      if (req.url === '/flaky' && !flaky.has(id)) {
        flaky.add(id);
        res.writeHead(500).end('try again');
      } else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  p = await startPlatform();
  worker = new WorkerProcess(p.workerEnv);
  notifier = new NotifierProcess({
    DATABASE_URL: p.env['DATABASE_URL'],
    REDIS_URL: p.env['REDIS_URL'],
    QUEUE_PREFIX: p.env['QUEUE_PREFIX'],
    WEBHOOK_ALLOW: '127.0.0.1/32',
    WEBHOOK_BACKOFF_MS: '200',
    WEBHOOK_ATTEMPTS: '4',
    NOTIFIER_SCAN_MS: '200',
  });
  await Promise.all([worker.ready(), notifier.ready()]);
  key = (await platformTeam(p, 'hooks')).key;
}, 120_000);

afterAll(async () => {
  await notifier?.kill('SIGTERM');
  await worker?.kill('SIGKILL');
  await p?.close();
  await new Promise((r) => receiver?.close(r));
});

const job = (webhook: string, events?: string[]) => ({
  task: 't2i',
  prompt: 'a red circle',
  seed: 1,
  steps: 4,
  webhook,
  ...(events ? { webhookEvents: events } : {}),
});

it('delivers the asked events signed, retries a 500, logs every try, and signs with both secrets during a rotation', async () => {
  const { secrets } = (await (await call('GET', '/v1/webhooks/secrets')).json()) as { secrets: string[] };
  expect(secrets).toHaveLength(1);
  const done = (await (
    await fetch(`${p.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'wait=30' },
      body: JSON.stringify(job(`${base}/flaky`, ['started', 'completed'])),
    })
  ).json()) as JobView;
  expect(done.status).toBe('succeeded');

  const ok = (r: Received) =>
    new Webhook(secrets[0]!).verify(r.body, r.headers as Record<string, string>) as { type: string; data: { job: JobView; event: { type: string } } };
  const completed = await until('the completed event delivered', () => {
    const hits = received.filter((r) => r.path === '/flaky' && JSON.parse(r.body).type === 'job.completed');
    return hits.length >= 2 ? hits : undefined;
  });
  for (const r of received) expect(() => ok(r)).not.toThrow();
  const payload = ok(completed[1]!);
  expect(payload.data.job).toMatchObject({ id: done.id, status: 'succeeded' });
  expect(payload.data.event.type).toBe('completed');
  expect(completed[0]!.headers['webhook-id']).toBe(completed[1]!.headers['webhook-id']);
  expect(received.filter((r) => JSON.parse(r.body).type === 'job.progress')).toEqual([]);

  const log = await until('both deliveries recorded', async () => {
    const l = (await (await call('GET', `/v1/jobs/${done.id}/webhooks`)).json()) as {
      data: { event: string; status: string; attempts: number; log: { status: number }[] }[];
    };
    return l.data.length === 2 && l.data.every((d) => d.status === 'delivered') ? l : undefined;
  });
  expect(log.data.map((d) => [d.event, d.attempts, d.log.map((a) => a.status)])).toEqual([
    ['started', 2, [500, 204]],
    ['completed', 2, [500, 204]],
  ]);

  // tampered body: the signature no longer verifies
  expect(() => new Webhook(secrets[0]!).verify(completed[1]!.body.replace('succeeded', 'failed'), completed[1]!.headers as Record<string, string>)).toThrow();

  const { secret: next } = (await (await call('POST', '/v1/webhooks/secrets/rotate', { graceSeconds: 3600 })).json()) as { secret: string };
  const second = (await (
    await fetch(`${p.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'wait=30' },
      body: JSON.stringify(job(`${base}/steady`)),
    })
  ).json()) as JobView;
  const steady = await until('the rotated delivery', () => received.find((r) => r.path === '/steady'));
  expect(String(steady.headers['webhook-signature']).split(' ')).toHaveLength(2);
  expect(() => new Webhook(next).verify(steady.body, steady.headers as Record<string, string>)).not.toThrow();
  expect(() => ok(steady)).not.toThrow();
  expect(JSON.parse(steady.body).data.job.id).toBe(second.id);
});

it('refuses a private address outside the allow-list without retrying, and bad webhook fields at submit', async () => {
  const res = await fetch(`${p.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'wait=30' },
    body: JSON.stringify(job('http://10.255.255.1:9/hook')),
  });
  const view = (await res.json()) as JobView;
  const log = await until('the refusal recorded', async () => {
    const l = (await (await call('GET', `/v1/jobs/${view.id}/webhooks`)).json()) as { data: { status: string; attempts: number; log: { error: string }[] }[] };
    return l.data[0]?.status === 'failed' ? l : undefined;
  });
  expect(log.data[0]!.attempts).toBe(1);
  expect(log.data[0]!.log[0]!.error).toMatch(/private or reserved/);

  for (const [body, field] of [
    [job('ftp://example.com/x'), 'webhook'],
    [job(`${base}/x`, ['finished']), 'webhookEvents.0'],
    [{ task: 't2i', prompt: 'x', webhookEvents: ['completed'] }, 'webhookEvents'],
  ] as const) {
    const bad = await call('POST', '/v1/jobs', body);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toContain(field);
  }
});

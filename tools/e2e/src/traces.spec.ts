/**
 * Logs and traces (issue 14) on real processes: an OTLP/HTTP receiver in this test collects the spans the API and a
 * worker export, and each job is one connected trace — the API's POST is its root, the dispatch into BullMQ and the
 * worker's spans (BullMQ's `process`, the job, the engine, its database statements) descend from it, and two jobs
 * make two traces. The processes' output is JSON lines: every line about a job names it and its team, request lines
 * carry a request id (the client's X-Request-Id, echoed), and neither the API key nor an input image's bytes appear.
 */
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { JobView } from '@dimoo/contracts';
import { encodePng } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformTeam, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number; arrayValue?: unknown };
type OtlpAttribute = { key: string; value: OtlpValue };
interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpAttribute[] }[] }[];
  }[];
}

const valueOf = (v: OtlpValue): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? v.arrayValue));
const attributes = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

/** An OTLP/HTTP collector for traces, JSON encoding (what the services' exporter sends). */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; bodies: string[]; close(): Promise<void> }> {
  const spans: Span[] = [];
  const bodies: string[] = [];
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    return (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
  };
  const server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
      res.writeHead(415).end();
      return;
    }
    void read(req).then((body) => {
      bodies.push(body);
      for (const rs of (JSON.parse(body) as OtlpExport).resourceSpans ?? []) {
        const service = String(attributes(rs.resource?.attributes)['service.name']);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              attributes: attributes(s.attributes),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, spans, bodies, close: () => new Promise((r) => server.close(() => r())) };
}

let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
let p: Platform;
let worker: WorkerProcess;
let team: { id: string; key: string };
let imageBase64: string;
const REQUEST_ID = 'client-request-7f3a';
const jobs: { view: JobView; requestId: string | null }[] = [];

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${team.key}`, 'content-type': 'application/json', ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

async function finished(id: string): Promise<JobView> {
  for (const t0 = Date.now(); Date.now() - t0 < 90_000; await sleep(100)) {
    const j = (await (await call('GET', `/v1/jobs/${id}`)).json()) as JobView;
    if (['succeeded', 'failed', 'canceled'].includes(j.status)) return j;
  }
  throw new Error(`job ${id} did not finish:\n${worker.output.join('').slice(-6000)}`);
}

const ofJob = (id: string) => receiver.spans.filter((s) => s.attributes['dimoo.job.id'] === id);
const byId = () => new Map(receiver.spans.map((s) => [s.spanId, s]));

/** The span's ancestors, nearest first, as far as the collected spans reach. */
function ancestors(span: Span): Span[] {
  const index = byId();
  const chain: Span[] = [];
  for (let s = index.get(span.parentSpanId); s; s = index.get(s.parentSpanId)) chain.push(s);
  return chain;
}

beforeAll(async () => {
  receiver = await otlpReceiver();
  // spans leave each process within 100 ms of ending
  const telemetry = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100', LOG_FORMAT: 'json', LOG_LEVEL: 'info' };
  p = await startPlatform({ apiEnv: telemetry });
  worker = new WorkerProcess({ ...p.workerEnv, ...telemetry });
  team = await platformTeam(p, 'traces');
  await worker.ready();

  const data = new Uint8Array(128 * 128 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9) * 13) % 256;
  imageBase64 = (await encodePng({ width: 128, height: 128, data })).toString('base64');
  const requests = [
    { body: { task: 't2i', prompt: 'a red circle at the top left', steps: 4, seed: 1 }, requestId: REQUEST_ID },
    { body: { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [imageBase64], steps: 4, seed: 2 }, requestId: null },
  ];
  for (const r of requests) {
    const res = await call('POST', '/v1/jobs', r.body, r.requestId ? { 'x-request-id': r.requestId } : {});
    expect(res.status).toBe(202);
    // the request id: the client's, else a new one; always echoed
    expect(res.headers.get('x-request-id')).toMatch(r.requestId ?? /^[0-9a-f-]{36}$/);
    jobs.push({ view: (await res.json()) as JobView, requestId: res.headers.get('x-request-id') });
  }
  for (const j of jobs) expect((await finished(j.view.id)).status).toBe('succeeded');
  for (const probe of ['/healthz', '/readyz', '/metrics']) expect((await fetch(`${p.url}${probe}`)).status).toBe(200);
  // the worker's last spans (its job span ends after the job's row says succeeded) reach the receiver shortly after
  for (const t0 = Date.now(); Date.now() - t0 < 15_000; await sleep(100)) {
    if (jobs.every((j) => ofJob(j.view.id).some((s) => s.service === 'dimoo-worker' && s.name === 'generation.job'))) break;
  }
}, 240_000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await p?.close();
  await receiver?.close();
});

describe('traces', () => {
  it("each job is one connected trace: the API's POST is its root; the dispatch and the worker's spans descend from it", () => {
    const traces = new Set<string>();
    for (const { view } of jobs) {
      const api = ofJob(view.id).find((s) => s.service === 'dimoo-api');
      const job = ofJob(view.id).find((s) => s.service === 'dimoo-worker' && s.name === 'generation.job');
      expect(api).toBeDefined();
      expect(job).toBeDefined();
      // every span naming the job, whichever process made it, is in one trace
      expect(new Set(ofJob(view.id).map((s) => s.traceId))).toEqual(new Set([api!.traceId]));
      traces.add(api!.traceId);

      // connected: worker job span → BullMQ's process span → the dispatch → the API's submit → … → the POST, the root
      const chain = ancestors(job!);
      expect(chain.map((s) => s.service)).toContain('dimoo-api');
      const process = chain.find((s) => s.service === 'dimoo-worker' && s.name === 'process dimoo-generation');
      const dispatch = chain.find((s) => s.name === 'dispatch dimoo-generation');
      expect(process).toBeDefined();
      expect(dispatch?.attributes['dimoo.job.id']).toBe(view.id);
      expect(chain.indexOf(process!)).toBeLessThan(chain.indexOf(dispatch!));
      expect(chain).toContainEqual(api);
      const root = chain.at(-1)!;
      expect(root.parentSpanId).toBe('');
      expect(root).toMatchObject({ service: 'dimoo-api', kind: 2 }); // SERVER
      expect(root.name).toMatch(/^POST\b/);
      expect(root.attributes['http.route'] ?? root.attributes['url.path'] ?? root.name).toMatch(/\/v1\/jobs$/);

      // inside the job: the engine's span, and the worker's and the API's own database statements (the SDK started
      // before pg was loaded in both processes)
      const inTrace = receiver.spans.filter((s) => s.traceId === api!.traceId);
      expect(inTrace.find((s) => s.name === 'generation.engine')?.parentSpanId).toBe(job!.spanId);
      for (const service of ['dimoo-api', 'dimoo-worker']) {
        expect(inTrace.some((s) => s.service === service && (s.attributes['db.system.name'] ?? s.attributes['db.system']) === 'postgresql')).toBe(true);
      }
    }
    expect(traces.size).toBe(jobs.length);
  });

  it('no span carries an API key or image bytes', () => {
    const exported = receiver.bodies.join('\n');
    expect(exported.length).toBeGreaterThan(0);
    for (const secret of [team.key, ADMIN_KEY, imageBase64.slice(200, 300)]) expect(exported).not.toContain(secret);
  });
});

describe('logs', () => {
  const lines = (out: string[]) =>
    out
      .join('')
      .split('\n')
      .filter((l) => l.trim() !== '');
  const parsed = (l: string): Record<string, unknown> | null => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return null;
    }
  };

  it('the processes write JSON lines; every line about a job names the job and its team, and its trace while tracing', () => {
    const all = [...lines(p.api.output).map((l) => ({ l, service: 'dimoo-api' })), ...lines(worker.output).map((l) => ({ l, service: 'dimoo-worker' }))];
    expect(all.filter(({ l }) => parsed(l) === null).map(({ l }) => l)).toEqual([]);
    for (const { l, service } of all) {
      expect(parsed(l)).toMatchObject({ service, level: expect.any(String), msg: expect.any(String), time: expect.any(String) });
    }
    for (const { view } of jobs) {
      const about = all.filter(({ l }) => l.includes(view.id)).map(({ l, service }) => ({ line: parsed(l)!, service }));
      // the submit's request line, polls of the job, and the worker's lines (sampled, stored)
      expect(about.filter((a) => a.service === 'dimoo-api').length).toBeGreaterThanOrEqual(2);
      expect(about.filter((a) => a.service === 'dimoo-worker').map((a) => a.line['msg'])).toEqual(
        expect.arrayContaining([expect.stringMatching(`^sampled ${view.id}`), `stored the result of ${view.id}`]),
      );
      for (const { line } of about) expect(line).toMatchObject({ jobId: view.id, teamId: team.id });
      // once each (a field bound twice would be two keys in the line)
      for (const l of all.filter((a) => a.l.includes(view.id))) expect([l.l.match(/"jobId":/g)?.length, l.l.match(/"teamId":/g)?.length]).toEqual([1, 1]);
      const traceId = ofJob(view.id)[0]!.traceId;
      const sampled = about.find((a) => String(a.line['msg']).startsWith('sampled'))!.line;
      expect(sampled).toMatchObject({ trace_id: traceId, span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    }
  });

  it("request lines carry the request's id (the client's X-Request-Id when it sent one), method, route and status, and nothing else of it", () => {
    const requests = lines(p.api.output)
      .map(parsed)
      .filter((l): l is Record<string, unknown> => l !== null && typeof l['req'] === 'object');
    expect(requests.length).toBeGreaterThan(jobs.length);
    for (const r of requests) {
      const req = r['req'] as Record<string, unknown>;
      expect(Object.keys(req).sort()).toEqual(['id', 'method', 'url']);
      expect(r['reqId']).toBe(req['id']);
      expect(r['res']).toEqual({ statusCode: expect.any(Number) });
    }
    for (const { view, requestId } of jobs) {
      const submit = requests.find((r) => r['jobId'] === view.id && (r['req'] as { method: string }).method === 'POST');
      expect(submit).toMatchObject({ reqId: requestId, teamId: team.id, res: { statusCode: 202 }, req: { url: '/v1/jobs' } });
    }
    // probes and scrapes write no request line
    expect(requests.filter((r) => /^\/(healthz|readyz|metrics)/.test(String((r['req'] as { url: string }).url)))).toEqual([]);
  });

  it('never writes an API key or the bytes of an input image', () => {
    const out = [...p.api.output, ...worker.output].join('');
    for (const secret of [team.key, ADMIN_KEY, imageBase64.slice(200, 300)]) expect(out).not.toContain(secret);
  });
});

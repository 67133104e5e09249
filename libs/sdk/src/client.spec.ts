/**
 * The SDK against small HTTP servers of the test's own (the platform end to end: tools/e2e/src/cli.spec.ts): the
 * generated types are fresh, `wait()` holds each request with `Prefer: wait` and gives up on time, the event iterator
 * resumes a cut stream with Last-Event-ID, downloads follow the 303 without the API key, and image helpers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { JobStreamEvent, JobView } from './client';
import { DimooClient, DimooError, DimooTimeoutError } from './client';
import { readEventStream } from './events';
import { imageBytes, imageInput, withImages } from './images';

const ROOT = resolve(__dirname, '../../..');
const ID = '0b6f3c5e-8d1a-4f7b-9c2e-5a4d3b2c1f00';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
async function serve(handler: Handler): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const view = (status: JobView['status']): JobView => ({
  id: ID,
  task: 't2i',
  status,
  progress: status === 'succeeded' ? 1 : 0.5,
  step: 4,
  steps: 8,
  seed: 1,
  model: { name: 'tiny', checksum: null },
  attempts: 1,
  apiKeyId: null,
  createdAt: new Date().toISOString(),
  startedAt: null,
  finishedAt: null,
  deadline: null,
  resultDeletedAt: null,
  timings: null,
  result: null,
  error: null,
});
const json = (res: ServerResponse, status: number, body: unknown, type = 'application/json') =>
  res.writeHead(status, { 'content-type': type }).end(JSON.stringify(body));

it('the committed types are what openapi-typescript makes of docs/openapi.json (npm run sdk:generate)', async () => {
  const cli = join(ROOT, 'node_modules/openapi-typescript/bin/cli.js');
  const args = ['docs/openapi.json', '-o', 'libs/sdk/src/generated/openapi.ts', '--default-non-nullable', 'false', '--check'];
  await expect(promisify(execFile)(process.execPath, [cli, ...args], { cwd: ROOT })).resolves.toBeDefined();
});

describe('wait()', () => {
  it('asks the API to hold each answer (Prefer: wait) until the job has finished', async () => {
    const prefer: string[] = [];
    const url = await serve((req, res) => {
      prefer.push(String(req.headers['prefer']));
      // the API holds the answer; here a little, and the job finishes on the third request
      setTimeout(() => json(res, 200, view(prefer.length < 3 ? 'running' : 'succeeded')), 250);
    });
    const job = await new DimooClient({ baseUrl: url, apiKey: 'k' }).wait(ID, { timeoutMs: 120_000 });
    expect(job.status).toBe('succeeded');
    expect(prefer).toHaveLength(3);
    for (const p of prefer) expect(p).toMatch(/^wait=(\d+)$/);
    expect(Number(prefer[0]!.slice(5))).toBe(60);
  });

  it('gives up after timeoutMs with the job as last seen, without spinning on answers that are not held', async () => {
    let calls = 0;
    const url = await serve((_req, res) => {
      calls++;
      json(res, 200, view('running'));
    });
    const t0 = Date.now();
    const err = await new DimooClient({ baseUrl: url }).wait(ID, { timeoutMs: 1200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DimooTimeoutError);
    expect((err as DimooTimeoutError).job.status).toBe('running');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
    expect(calls).toBeLessThanOrEqual(4);
  });

  it('retries an outage (503, Retry-After) and fails at once on a wrong request (404 problem)', async () => {
    let calls = 0;
    const url = await serve((req, res) => {
      calls++;
      if (req.url!.includes('missing')) {
        return json(res, 404, { type: 'about:blank#not-found', title: 'Not found', status: 404, detail: 'job missing not found' });
      }
      if (calls === 1) return res.writeHead(503, { 'retry-after': '0', 'content-type': 'application/problem+json' }).end('{"title":"x","status":503}');
      json(res, 200, view('failed'));
    });
    const client = new DimooClient({ baseUrl: url });
    expect((await client.wait(ID, { timeoutMs: 10_000 })).status).toBe('failed');
    const err = (await client.wait('missing').catch((e: unknown) => e)) as DimooError;
    expect(err).toBeInstanceOf(DimooError);
    expect([err.status, err.problem?.detail, err.transient]).toEqual([404, 'job missing not found', false]);
  });
});

describe('events()', () => {
  const message = (id: number, event: string, data: object) => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify({ jobId: ID, at: 'now', ...data })}\n\n`;

  it('yields typed events, reconnects with Last-Event-ID after a cut, and ends after the terminal event', async () => {
    const lastIds: (string | undefined)[] = [];
    const auth: (string | undefined)[] = [];
    const url = await serve((req, res) => {
      lastIds.push(req.headers['last-event-id'] as string | undefined);
      auth.push(req.headers['authorization']);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (lastIds.length === 1) {
        res.write('retry: 20\n\n');
        res.write(message(1, 'queued', {}));
        // one message split across writes, a heartbeat, and an event type this client does not know
        const progress = message(2, 'progress', { step: 1, steps: 4 });
        res.write(progress.slice(0, 9));
        res.write(`${progress.slice(9)}: keep-alive\n\n`);
        res.write(message(3, 'future-event', {}));
        setTimeout(() => res.destroy(), 30);
      } else {
        res.write(message(4, 'progress', { step: 2, steps: 4 }));
        res.end(message(5, 'completed', { url: `/v1/jobs/${ID}/result` }));
      }
    });
    const seen: JobStreamEvent[] = [];
    for await (const e of new DimooClient({ baseUrl: url, apiKey: 'secret' }).events(ID)) seen.push(e);
    expect(seen.map((e) => `${e.id} ${e.event}`)).toEqual(['1 queued', '2 progress', '4 progress', '5 completed']);
    const progress = seen[1]!;
    expect(progress.event === 'progress' && progress.data.step).toBe(1);
    expect(lastIds).toEqual([undefined, '3']);
    expect(auth).toEqual(['Bearer secret', 'Bearer secret']);
  });

  it('fails at once when the job is not there (404), and stops when aborted', async () => {
    const url = await serve((req, res) => {
      if (req.url!.includes(ID)) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.write(message(1, 'queued', {}));
      }
      json(res, 404, { type: 'about:blank#not-found', title: 'Not found', status: 404, detail: 'job x not found' }, 'application/problem+json');
    });
    const client = new DimooClient({ baseUrl: url });
    await expect(client.events('x').next()).rejects.toMatchObject({ status: 404 });
    const abort = new AbortController();
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of client.events(ID, { signal: abort.signal })) {
          seen.push(e.event);
          abort.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(seen).toEqual(['queued']);
  });

  it('parses multi-line data and CRLF line ends', async () => {
    const body = new Blob(['event: x\r\ndata: a\r\ndata: b\r\nid: 7\r\n\r\n']).stream();
    const items = [];
    for await (const item of readEventStream(body)) items.push(item);
    expect(items).toEqual([{ kind: 'message', id: '7', event: 'x', data: 'a\nb' }]);
  });
});

describe('downloadResult()', () => {
  it('follows the 303 to the object store without the API key; answers come back as text', async () => {
    const storeAuth: (string | undefined)[] = [];
    const store = await serve((req, res) => {
      storeAuth.push(req.headers['authorization']);
      res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.from([137, 80, 78, 71]));
    });
    const apiAuth: (string | undefined)[] = [];
    const api = await serve((req, res) => {
      apiAuth.push(req.headers['authorization']);
      if (req.url!.startsWith(`/v1/jobs/${ID}/result`)) return res.writeHead(303, { location: `${store}/bucket/result.png?X-Amz-Signature=abc` }).end();
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('The shape is red.');
    });
    const client = new DimooClient({ baseUrl: api, apiKey: 'secret' });
    const image = await client.downloadResult(ID);
    expect([...image.data]).toEqual([137, 80, 78, 71]);
    expect(image.contentType).toBe('image/png');
    expect(await client.resultUrl(ID)).toBe(`${store}/bucket/result.png?X-Amz-Signature=abc`);
    expect(storeAuth).toEqual([undefined]);
    expect(apiAuth).toEqual(['Bearer secret', 'Bearer secret']);
    const text = await client.downloadResult('7d2e9a41-3c6b-4e8f-a1d0-2b5c8e9f4a11');
    expect([text.data.toString(), text.contentType]).toEqual(['The shape is red.', 'text/plain; charset=utf-8']);
  });
});

describe('image helpers', () => {
  it('read files, bytes, base64 and data URLs into the base64 fields', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dimoo-sdk-'));
    await writeFile(join(dir, 'in.png'), Buffer.from('image'));
    await writeFile(join(dir, 'mask.png'), Buffer.from('mask'));
    expect(await imageInput(join(dir, 'in.png'))).toBe(Buffer.from('image').toString('base64'));
    expect(await imageInput(new Uint8Array([1, 2, 3]))).toBe('AQID');
    expect(await imageInput({ base64: 'AQID' })).toBe('AQID');
    expect(await imageInput('data:image/png;base64,AQID')).toBe('data:image/png;base64,AQID');
    expect([...(await imageBytes('data:image/png;base64,AQID'))]).toEqual([1, 2, 3]);
    const paint = await withImages({ task: 'paint', prompt: 'p', image: join(dir, 'in.png'), mask: Buffer.from('mask') });
    expect(paint).toEqual({ task: 'paint', prompt: 'p', image: 'aW1hZ2U=', mask: 'bWFzaw==' });
    const i2i = await withImages({ task: 'i2i', editType: 'style', prompt: 'p', images: [join(dir, 'in.png'), join(dir, 'mask.png')] });
    expect(i2i.images).toEqual(['aW1hZ2U=', 'bWFzaw==']);
    const retouch = await withImages({ task: 'paint', prompt: 'p', image: { jobId: 'j' }, mask: join(dir, 'mask.png') });
    expect(retouch).toMatchObject({ image: { jobId: 'j' }, mask: 'bWFzaw==' });
  });
});

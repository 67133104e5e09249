/**
 * The CLI and the SDK against a whole platform (API, worker, Redis, Postgres, S3): `dimoo generate` writes a PNG and
 * prints progress lines, `dimoo jobs ls` lists the job, `dimoo ask` prints the answer; the SDK's `wait()` and event
 * iterator (resuming with Last-Event-ID), its downloads, and its admin calls, each answer checked against the wire
 * schema the OpenAPI document publishes; and the served document is the committed docs/openapi.json.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  AuditPageSchema,
  CreatedKeySchema,
  CreatedTeamSchema,
  JobListSchema,
  JobStreamEventSchema,
  JobViewSchema,
  KeyListSchema,
  TeamViewSchema,
} from '@dimoo/contracts';
import { decodeImage, encodePng } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, ROOT, startPlatform, WorkerProcess } from '@dimoo/platform';
import type { JobStreamEvent } from '@dimoo/sdk';
import { DimooClient } from '@dimoo/sdk';

const execFileAsync = promisify(execFile);
const TSX = resolve(ROOT, 'node_modules/.bin/tsx');

let p: Platform;
let worker: WorkerProcess;
let key: string;
let dir: string;

/** The CLI from sources, as `npm run dimoo` runs it; stdout and stderr are pipes (not a terminal). */
async function dimoo(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(TSX, ['apps/cli/src/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, DIMOO_URL: p.url, DIMOO_API_KEY: key },
    timeout: 60_000,
  });
}

beforeAll(async () => {
  p = await startPlatform();
  worker = new WorkerProcess({ ...p.workerEnv, PREVIEW_EVERY_STEPS: '2' });
  const admin = new DimooClient({ baseUrl: p.url, apiKey: ADMIN_KEY });
  const [team] = await Promise.all([admin.createTeam('cli'), worker.ready()]);
  CreatedTeamSchema.parse(team);
  const created = CreatedKeySchema.parse(await admin.createKey(team.id, { name: 'cli' }));
  key = created.key;
  dir = await mkdtemp(join(tmpdir(), 'dimoo-cli-e2e-'));
}, 120_000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await p?.close();
});

describe('dimoo (the CLI over HTTP)', () => {
  it('generate writes a PNG, printing progress lines and saving previews; jobs ls shows the job', async () => {
    const out = join(dir, 'out.png');
    const previews = join(dir, 'previews');
    const { stdout, stderr } = await dimoo('generate', 'a red circle at the top left', '-o', out, '--steps', '8', '--seed', '3', '--previews', previews);
    expect(stdout).toMatch(new RegExp(`^wrote ${out} \\(image/png, \\d+ bytes, job [0-9a-f-]{36}, seed 3\\)\\n$`));
    const id = /job ([0-9a-f-]{36})/.exec(stdout)![1]!;
    // not a terminal: one line per step reported, then the end
    expect(stderr).toMatch(/job \w{8} queued \(t2i, seed 3\)/);
    expect(stderr).toMatch(/job \w{8} progress \d\/8\n/);
    expect(stderr).toMatch(/job \w{8} succeeded in/);
    const png = await readFile(out);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const image = await decodeImage(png);
    expect([image.width, image.height]).toEqual([128, 128]);
    const saved = await readdir(previews);
    expect(saved.length).toBeGreaterThan(0);
    for (const f of saved) expect(f).toMatch(new RegExp(`^${id}-step-\\d{4}\\.png$`));

    const ls = await dimoo('jobs', 'ls');
    expect(ls.stdout.split('\n')[0]).toMatch(/^ID\s+TASK\s+STATUS\s+PROGRESS\s+CREATED$/);
    expect(ls.stdout).toMatch(new RegExp(`${id}\\s+t2i\\s+succeeded\\s+100%`));
    const json = await dimoo('jobs', 'ls', '--json', '--status', 'succeeded');
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toContain(id);
  });

  it('ask prints the answer of an understanding job', async () => {
    const image = join(dir, 'shape.png');
    const rgb = new Uint8Array(128 * 128 * 3);
    for (let y = 40; y < 88; y++) for (let x = 40; x < 88; x++) rgb.set([220, 30, 30], (y * 128 + x) * 3);
    await writeFile(image, await encodePng({ width: 128, height: 128, data: rgb }));
    const { stdout } = await dimoo('ask', '--image', image, 'what colour is the shape?', '--seed', '1');
    expect(stdout.trim().length).toBeGreaterThan(0);
    const [newest] = (await new DimooClient({ baseUrl: p.url, apiKey: key }).list({ task: 'mmu', limit: 1 })).data;
    expect(newest?.result).toMatchObject({ kind: 'text', text: stdout.replace(/\n$/, '') });
  });
});

describe('the SDK', () => {
  it('follows a job by its events (resuming with Last-Event-ID), waits for it, and downloads its result', async () => {
    const client = new DimooClient({ baseUrl: p.url, apiKey: key });
    const job = JobViewSchema.parse(await client.submit({ task: 't2i', prompt: 'a blue square at the center', steps: 8, seed: 5, previewEvery: 4 }));
    const events: JobStreamEvent[] = [];
    for await (const e of client.events(job.id)) events.push(JobStreamEventSchema.parse(e));
    expect(events[0]!.event).toBe('queued');
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['started', 'progress', 'preview']));
    expect(events.at(-1)).toMatchObject({ event: 'completed', data: { jobId: job.id, url: `/v1/jobs/${job.id}/result` } });
    // resumed after the first event: the rest, nothing twice
    const resumed: string[] = [];
    for await (const e of client.events(job.id, { lastEventId: events[0]!.id })) resumed.push(e.id);
    expect(resumed).toEqual(events.slice(1).map((e) => e.id));

    const done = JobViewSchema.parse(await client.wait(job.id, { timeoutMs: 5000 }));
    expect(done.status).toBe('succeeded');
    const result = await client.downloadResult(job.id);
    expect(result.contentType).toBe('image/png');
    expect((await decodeImage(result.data)).width).toBe(128);
    expect((await client.downloadResult(job.id, { stream: true })).data.equals(result.data)).toBe(true);
    expect(new URL(await client.resultUrl(job.id)).port).toBe(String(p.s3.port));
  });

  it('uploads an image straight to the object store and uses it in a job by reference', async () => {
    const client = new DimooClient({ baseUrl: p.url, apiKey: key });
    const png = await encodePng({ width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).fill(200) });
    const image = await client.upload(png);
    const job = await client.submit({ task: 'mmu', question: 'what is it?', image }, { wait: 30 });
    expect(job).toMatchObject({ status: 'succeeded', result: { kind: 'text' } });
  });

  it('waits with Prefer: wait for a job it only submitted, and lists pages', async () => {
    const client = new DimooClient({ baseUrl: p.url, apiKey: key });
    const job = await client.submit({ task: 't2i', prompt: 'a green triangle', steps: 4 }, { idempotencyKey: 'sdk-wait-1' });
    expect((await client.submit({ task: 't2i', prompt: 'a green triangle', steps: 4 }, { idempotencyKey: 'sdk-wait-1' })).id).toBe(job.id);
    const done = await client.wait(job.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('succeeded');
    const page = JobListSchema.parse(await client.list({ limit: 1 }));
    expect(page.data[0]!.id).toBe(job.id);
    const all = [];
    for await (const j of client.listAll({ limit: 1 })) all.push(j.id);
    expect(all.length).toBeGreaterThanOrEqual(4);
  });

  it('answers admin calls in the shapes the document publishes', async () => {
    const admin = new DimooClient({ baseUrl: p.url, apiKey: ADMIN_KEY });
    const team = await admin.createTeam('sdk-admin');
    expect(TeamViewSchema.parse(await admin.updateTeam(team.id, { weight: 2, maxQueued: 50 }))).toMatchObject({ weight: 2, maxQueued: 50 });
    const created = await admin.createKey(team.id, { name: 'reader', scopes: ['read'] });
    const rotated = await admin.rotateKey(team.id, created.id, 60);
    expect(rotated.replaces).toBe(created.id);
    expect(KeyListSchema.parse(await admin.listKeys(team.id)).data).toHaveLength(2);
    await admin.revokeKey(team.id, rotated.id);
    const audit = AuditPageSchema.parse(await admin.audit({ limit: 3 }));
    expect(audit.data.map((e) => e.action)).toEqual(['key.revoke', 'key.rotate', 'key.create']);
    // a read-only key may not submit: a typed problem
    await expect(new DimooClient({ baseUrl: p.url, apiKey: created.key }).submit({ task: 't2i', prompt: 'x' })).rejects.toMatchObject({
      status: 403,
      problem: { type: 'about:blank#forbidden' },
    });
  });

  it('is built from the document the API serves: its /docs-json is docs/openapi.json', async () => {
    const served = await (await fetch(`${p.url}/docs-json`)).json();
    expect(served).toEqual(JSON.parse(await readFile(join(ROOT, 'docs/openapi.json'), 'utf8')));
  });
});

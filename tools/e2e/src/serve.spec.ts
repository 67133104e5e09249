/**
 * `npm run serve` (issue 13): the whole stack from one command, a job through it with the printed key, and the job,
 * its result and the key still there after Ctrl-C and a second start.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { JobView } from '@dimoo/contracts';
import { DEFAULT_ADMIN_URL } from '@dimoo/db/testing';
import { freePort, sleep, WORKSPACE_ROOT } from '@dimoo/platform';

interface Info {
  url: string;
  adminKey: string;
  teamKey: string;
}

let data: string;
let databaseUrl: string;
const database = `dimoo_serve_test_${process.pid}`;

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), 'dimoo-serve-'));
  const url = new URL(DEFAULT_ADMIN_URL);
  url.pathname = `/${database}`;
  databaseUrl = url.toString();
});

afterAll(async () => {
  const admin = new pg.Client({ connectionString: DEFAULT_ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
  await rm(data, { recursive: true, force: true });
});

async function serve(port: number, infoFile: string): Promise<{ proc: ChildProcess; output: string[]; info: Info }> {
  const output: string[] = [];
  const proc = spawn(
    process.execPath,
    ['-r', '@swc-node/register', 'tools/platform/src/serve.ts', '--port', String(port), '--info', infoFile, '--data', data, '--database-url', databaseUrl],
    { cwd: WORKSPACE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr.on('data', (d: Buffer) => output.push(d.toString()));
  for (const t0 = Date.now(); !output.join('').includes('Ctrl-C stops it'); await sleep(100)) {
    if (proc.exitCode !== null) throw new Error(`serve exited: ${output.join('')}`);
    if (Date.now() - t0 > 120_000) throw new Error(`serve did not start: ${output.join('')}`);
  }
  return { proc, output, info: JSON.parse(await readFile(infoFile, 'utf8')) as Info };
}

const stop = (proc: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.kill('SIGINT');
  });

it('serves until Ctrl-C and keeps jobs, results and keys across a restart', async () => {
  const port = await freePort();
  const infoFile = join(data, 'info.json');
  const first = await serve(port, infoFile);
  const { url, teamKey, adminKey } = first.info;
  expect(url).toBe(`http://127.0.0.1:${port}`);
  expect(first.output.join('')).toContain(`${url}/docs`);
  expect(first.output.join('')).toContain(teamKey);
  expect(adminKey).toMatch(/^dimoo-admin-/);
  expect((await fetch(`${url}/docs`)).status).toBe(200);

  const auth = { authorization: `Bearer ${teamKey}` };
  const res = await fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', prefer: 'wait=60' },
    body: JSON.stringify({ task: 't2i', prompt: 'a red circle at the top left', seed: 5, steps: 8 }),
  });
  expect(res.status).toBe(200);
  const job = (await res.json()) as JobView;
  expect(job.status).toBe('succeeded');
  const png = Buffer.from(await (await fetch(`${url}/v1/jobs/${job.id}/result`, { headers: auth })).arrayBuffer());
  expect(png.subarray(1, 4).toString()).toBe('PNG');
  expect(await stop(first.proc)).toBe(0);
  expect(existsSync(join(data, 'serve.json'))).toBe(true);

  const second = await serve(port, infoFile);
  try {
    expect(second.info).toEqual(first.info);
    const again = (await (await fetch(`${url}/v1/jobs/${job.id}`, { headers: auth })).json()) as JobView;
    expect(again.status).toBe('succeeded');
    const stored = Buffer.from(await (await fetch(`${url}/v1/jobs/${job.id}/result`, { headers: auth })).arrayBuffer());
    expect(stored.equals(png)).toBe(true);
  } finally {
    expect(await stop(second.proc)).toBe(0);
  }
}, 300_000);

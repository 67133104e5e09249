/**
 * The admin dashboard in a real browser (Debian's chromium through playwright-core) against a whole platform (API,
 * worker, Redis, Postgres, S3), served by the API under /admin/: sign-in, live counters, a playground job with its
 * previews, a brushed paint job that changes only the painted token cells (and a retouch of its result), a key issued
 * and revoked from the UI, and every page, each saved as a screenshot in docs/dashboard/ (1280×800).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import type { RgbImage } from '@dimoo/model';
import { decodeImage, encodePng } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformTeam, ROOT, startPlatform, WorkerProcess } from '@dimoo/platform';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = resolve(ROOT, 'docs/dashboard');
/** the tiny model's images and token cells (models/tiny/manifest.json: 128×128, gridFactor 16) */
const SIZE = 128;
const CELL = 16;

let p: Platform;
let worker: WorkerProcess;
let team: { id: string; key: string };
let profile: string;
let context: BrowserContext;
let page: Page;
/** uncaught errors and console errors of the page: none is expected */
const pageErrors: string[] = [];

/** The key the page keeps (this file has no DOM types: the expression runs in the page). */
const storedKey = () => page.evaluate<string | null>("window.sessionStorage.getItem('dimoo.adminKey')");
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
const api = (path: string, key = ADMIN_KEY, init: RequestInit = {}) =>
  fetch(`${p.url}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...init.headers } });

/** A job's first result image, through the API. */
async function resultOf(jobId: string): Promise<RgbImage> {
  const res = await api(`/v1/jobs/${jobId}/result?stream=true`);
  expect(res.status).toBe(200);
  return decodeImage(new Uint8Array(await res.arrayBuffer()));
}

/** The pixels of `a` and `b` that differ, as [x, y] (both RGB of the same size). */
function differing(a: RgbImage, b: RgbImage): [number, number][] {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  const out: [number, number][] = [];
  for (let i = 0; i < a.width * a.height; i++) {
    if (a.data[3 * i] !== b.data[3 * i] || a.data[3 * i + 1] !== b.data[3 * i + 1] || a.data[3 * i + 2] !== b.data[3 * i + 2]) {
      out.push([i % a.width, Math.floor(i / a.width)]);
    }
  }
  return out;
}

/**
 * A stroke on the mask canvas from one image pixel to another; with `src`, on the canvas of that image (a retouch swaps
 * the image: the old canvas goes, the new one mounts once its image loads, while the page scrolls to the top).
 */
async function brush(from: [number, number], to: [number, number], src?: string): Promise<void> {
  const canvas = src ? page.locator(`[data-testid=mask-canvas][data-src="${src}"]`) : page.getByTestId('mask-canvas');
  await canvas.waitFor();
  // the same box twice, 100 ms apart: mounted and no longer scrolling
  let box = await canvas.boundingBox();
  for (let tries = 0; tries < 50; tries++) {
    await page.waitForTimeout(100);
    const again = await canvas.boundingBox();
    if (box && again && JSON.stringify(box) === JSON.stringify(again)) break;
    box = again;
  }
  if (!box) throw new Error('the mask canvas has no box');
  const { x: left, y: top, width, height } = box;
  const at = ([x, y]: [number, number]) => [left + (x * width) / SIZE, top + (y * height) / SIZE] as const;
  await page.mouse.move(...at(from));
  await page.mouse.down();
  await page.mouse.move(...at(to), { steps: 12 });
  await page.mouse.up();
}

/** Submits the playground's form and waits for the run to end; the job id (the run's text when it did not succeed). */
async function submitAndWait(): Promise<string> {
  const runs = page.getByTestId('run');
  const before = (await runs.count()) > 0 ? await runs.getAttribute('data-job') : null;
  await page.getByRole('button', { name: 'Submit', exact: true }).click();
  const fresh = page.locator(`[data-testid=run]${before ? `:not([data-job="${before}"])` : ''}`);
  await fresh.waitFor();
  const id = (await fresh.getAttribute('data-job'))!;
  const ended = page.locator(`[data-testid=run][data-job="${id}"]:not([data-status=queued]):not([data-status=running])`);
  await ended.waitFor({ timeout: 30_000 });
  expect([await ended.getAttribute('data-status'), await ended.textContent()]).toEqual(['succeeded', expect.any(String)]);
  return id;
}

beforeAll(async () => {
  // the e2e target depends on dashboard:build (Nx); a direct jest run builds it when missing
  if (!existsSync(resolve(ROOT, 'apps/dashboard/dist/index.html'))) {
    await promisify(execFile)(resolve(ROOT, 'node_modules/.bin/vite'), ['build', '--config', 'apps/dashboard/vite.config.mjs', '--logLevel', 'warn'], {
      cwd: ROOT,
    });
  }
  await mkdir(SHOTS, { recursive: true });
  profile = await mkdtemp(join(tmpdir(), 'dimoo-chromium-'));
  p = await startPlatform();
  worker = new WorkerProcess({ ...p.workerEnv, PREVIEW_EVERY_STEPS: '2' });
  [team, context] = await Promise.all([
    platformTeam(p, 'studio'),
    chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
    }),
    worker.ready(),
  ]);
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on('console', (m) => {
    // refused requests (the bad key's 401) are logged by the browser too: they are answers, not errors
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`console: ${m.text()}`);
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await worker?.kill('SIGKILL');
  await p?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

describe('the admin dashboard', () => {
  it('refuses a bad key and lets an admin key in', async () => {
    await page.goto(`${p.url}/admin/`);
    await page.getByLabel('Admin API key', { exact: true }).fill('not-a-key-0123456789');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectText(page.getByRole('alert'), /refused this key \(401\)/);
    await shot('sign-in');
    // a team key lacks the admin scope
    await page.getByLabel('Admin API key', { exact: true }).fill(team.key);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectText(page.getByRole('alert'), /\(403\)/);

    await page.getByLabel('Admin API key', { exact: true }).fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(await storedKey()).toBe(ADMIN_KEY);
  });

  it('shows live numbers on the overview: a finished job moves the counter', async () => {
    const counter = page.locator('[data-stat=succeeded] .stat-value');
    const before = Number(await counter.textContent());
    const submitted = await api('/v1/jobs', team.key, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait=30' },
      body: JSON.stringify({ task: 't2i', prompt: 'a blue square at the center', steps: 8, seed: 1 }),
    });
    expect((await submitted.json()) as { status: string }).toMatchObject({ status: 'succeeded' });
    // refetched every 5 s
    await expectText(counter, String(before + 1), 12_000);
    await expectText(page.locator('[data-stat=workers] .stat-value'), '1');
    await shot('overview');
  });

  it('runs a text-to-image job from the playground, showing its previews and result', async () => {
    await page.getByRole('link', { name: 'Playground', exact: true }).click();
    await page.locator('select[name=team]').selectOption({ label: 'studio' });
    await page.locator('select[name=task]').selectOption('t2i');
    await page.locator('textarea[name=prompt]').fill('a red circle at the top left');
    await page.getByText('Parameters').click();
    await page.locator('input[name=steps]').fill('8');
    await page.locator('input[name=previewEvery]').fill('2');
    await page.locator('input[name=seed]').fill('3');
    const id = await submitAndWait();
    const previews = page.locator('[data-testid=previews] img');
    expect(await previews.count()).toBeGreaterThan(0);
    // fetched with the bearer header and shown from object URLs, decoded by the browser
    const loaded = await page.locator('[data-testid=previews] img, [data-testid=result-image]').evaluateAll((imgs) =>
      imgs.map((i) => {
        const img = i as unknown as { src: string; naturalWidth: number };
        return [img.src.slice(0, 5), img.naturalWidth];
      }),
    );
    expect(loaded).toEqual(loaded.map(() => ['blob:', SIZE]));
    const job = (await (await api(`/v1/jobs/${id}`)).json()) as { status: string; task: string };
    expect(job).toMatchObject({ status: 'succeeded', task: 't2i' });
    await shot('playground');
  });

  it('paints with a brush: only the painted token cells change, and a retouch of the result keeps the rest of it', async () => {
    // a flat background and a red square: any regenerated pixel shows
    const rgb = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < SIZE * SIZE; i++) rgb.set([40, 90, 160], i * 3);
    for (let y = 24; y < 104; y++) for (let x = 24; x < 104; x++) rgb.set([210, 40, 40], (y * SIZE + x) * 3);
    const input: RgbImage = { width: SIZE, height: SIZE, data: rgb };

    await page.locator('select[name=task]').selectOption('paint');
    await page.locator('textarea[name=prompt]').fill('a green triangle');
    await page.locator('input[name=image-paint]').setInputFiles({ name: 'in.png', mimeType: 'image/png', buffer: await encodePng(input) });
    // the default brush is 24 px: a stroke along y = 56 covers y 44–68, so cell row 3 (y 48–64) wholly and rows 2 and
    // 4 only a quarter: row 3 is regenerated, and nothing outside rows 2–4 (y 32–80) may change
    await brush([8, 56], [120, 56]);
    const painted = await submitAndWait();
    const first = await resultOf(painted);
    const changed = differing(first, input);
    expect(changed.length).toBeGreaterThan(0);
    // the rows where something changed outside the allowed band (none)
    expect([...new Set(changed.filter(([, y]) => y < 2 * CELL || y >= 5 * CELL).map(([, y]) => y))]).toEqual([]);
    await shot('playground-paint');

    // retouch the result by reference: a vertical stroke along x = 24 regenerates cell column 1 (x 16–32) only
    const resultSrc = (await page.getByTestId('result-image').first().getAttribute('src'))!;
    await page.getByRole('button', { name: 'Retouch this result', exact: true }).click();
    await brush([24, 8], [24, 120], resultSrc);
    const retouched = await submitAndWait();
    const second = await resultOf(retouched);
    const again = differing(second, first);
    expect(again.length).toBeGreaterThan(0);
    expect([...new Set(again.filter(([x]) => x >= 3 * CELL).map(([x]) => x))]).toEqual([]);
    // the retouch took the first job's result as its input ({ jobId }), as its team
    const detail = (await (await api(`/v1/admin/jobs/${retouched}`)).json()) as { teamName: string; task: string };
    expect(detail).toMatchObject({ teamName: 'studio', task: 'paint' });
  });

  it('lists the jobs of every team and opens one with its timeline, previews and result', async () => {
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    const rows = page.locator('[data-testid=jobs-table] tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBeGreaterThanOrEqual(4);
    await page.locator('select[name=task]').selectOption('paint');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await expectCount(rows, 2);
    await shot('jobs');
    await rows.first().getByRole('link').click();
    await page.getByRole('heading', { name: /^Job / }).waitFor();
    await page.locator('img.result-img').first().waitFor();
    await expectText(page.locator('.card').filter({ has: page.getByRole('heading', { name: 'Events', exact: true }) }), /succeeded/);
    await shot('job');
  });

  it('issues a key that works, then revokes it from the UI: the API refuses it', async () => {
    await page.getByRole('link', { name: 'Teams and keys', exact: true }).click();
    await page.locator('[data-team=studio]').click();
    await page.locator('input[name=keyName]').fill('from-the-dashboard');
    await page.getByRole('button', { name: 'Issue key', exact: true }).click();
    const secret = (await page.getByTestId('secret').textContent())!;
    expect(secret.length).toBeGreaterThan(20);
    await shot('teams-key-issued');
    await page.getByRole('dialog').getByRole('button', { name: 'Close', exact: true }).click();
    expect((await api('/v1/jobs', secret)).status).toBe(200);

    const row = page.locator('[data-testid=keys-table] tbody tr', { hasText: 'from-the-dashboard' });
    await row.getByRole('button', { name: 'Revoke', exact: true }).click();
    await row.getByRole('button', { name: 'Confirm revoke', exact: true }).click();
    await expectText(row, /revoked/);
    expect((await api('/v1/jobs', secret)).status).toBe(401);
    await expectText(page.getByTestId('audit-table'), /revoke/);
    await shot('teams');
  });

  it('shows batches, workers and queues; pauses and resumes a queue; opens bull-board', async () => {
    await page.getByRole('link', { name: 'Batches', exact: true }).click();
    await page.locator('[data-testid=batches-table] tbody tr').first().waitFor();
    await shot('batches');
    await page.getByRole('link', { name: 'Workers', exact: true }).click();
    const workerRows = page.locator('[data-testid=workers-table] tbody tr');
    await expectCount(workerRows, 1);
    expect(await workerRows.first().getAttribute('class')).not.toBe('stale');
    await shot('workers');
    await page.getByRole('link', { name: 'Queues', exact: true }).click();
    const queue = page.locator('[data-testid=queues-table] tbody tr').first();
    await queue.waitFor();
    await shot('queues');
    // pause and resume: the API's answer shows, and the audit log has both
    await queue.getByRole('button', { name: 'Pause', exact: true }).click();
    await expectText(queue, /paused/);
    await queue.getByRole('button', { name: 'Resume', exact: true }).click();
    await expectText(queue, /running/);
    // bull-board opens in a new tab through a one-time URL: the admin key never goes into a URL
    const [board] = await Promise.all([context.waitForEvent('page'), page.getByRole('button', { name: /Open bull-board/ }).click()]);
    await board.waitForURL(/\/admin\/queues\/board\/$/);
    await board.getByText('DiMOO Serve').first().waitFor();
    await board.close();
    const audit = (await (await api('/v1/audit?limit=5')).json()) as { data: { action: string }[] };
    expect(audit.data.map((e) => e.action).slice(0, 2)).toEqual(['queue.resume', 'queue.pause']);
  });

  it('signs out (the key is forgotten), and a key revoked mid-session sends the page back to sign-in', async () => {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    expect(await storedKey()).toBeNull();

    // an admin-scoped team key works as well as the bootstrap one, until it is revoked
    const created = await api(`/v1/teams/${team.id}/keys`, ADMIN_KEY, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'operator', scopes: ['admin', 'read'] }),
    });
    const operator = (await created.json()) as { id: string; key: string };
    await page.getByLabel('Admin API key', { exact: true }).fill(operator.key);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    // signing in keeps the page it was on (Queues); the overview is a click away
    await page.getByRole('link', { name: 'Overview', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect((await api(`/v1/teams/${team.id}/keys/${operator.id}`, ADMIN_KEY, { method: 'DELETE' })).status).toBe(204);
    // the overview's next refresh (5 s) is refused: back to sign-in, saying why, the key forgotten
    await expectText(page.getByRole('status'), /refused this key \(401\)/, 10_000);
    expect(await storedKey()).toBeNull();
    expect(pageErrors).toEqual([]);
  });
});

/** Waits until the locator's text matches (playwright-core has no expect of its own). */
async function expectText(locator: ReturnType<Page['locator']>, want: string | RegExp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  for (;;) {
    text = (await locator.textContent({ timeout: Math.max(1, deadline - Date.now()) }).catch(() => '')) ?? '';
    if (typeof want === 'string' ? text.trim() === want : want.test(text)) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(text).toMatch(want);
}

async function expectCount(locator: ReturnType<Page['locator']>, n: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await locator.count()) !== n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  expect(await locator.count()).toBe(n);
}

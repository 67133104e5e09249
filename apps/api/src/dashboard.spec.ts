/**
 * The dashboard's mount on the API's server: without a build, /admin/ answers 404 problem+json saying how to make
 * one (and the rest of the server is untouched); with one, files are served, page paths get index.html with its
 * security headers, missing assets stay 404, and bull-board's mount and other methods pass through.
 */
import express from 'express';
import type { Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountDashboard } from './dashboard';

let dir: string;
let server: Server;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dimoo-dashboard-'));
  const app = express();
  mountDashboard(app, dir);
  app.use((_req, res) => res.status(418).send('next'));
  server = await new Promise<Server>((ok) => {
    const s = app.listen(0, '127.0.0.1', () => ok(s));
  });
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((ok) => server.close(ok));
  await rm(dir, { recursive: true, force: true });
});

describe('mountDashboard', () => {
  it('answers 404 problem+json naming the build command while the dashboard is not built, and passes the rest on', async () => {
    for (const path of ['/admin/', '/admin/jobs/123']) {
      const res = await fetch(url + path);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({
        type: 'about:blank#dashboard-not-built',
        status: 404,
        detail: expect.stringContaining('npm run dashboard:build'),
      });
    }
    expect((await fetch(`${url}/v1/jobs`)).status).toBe(418);
    expect((await fetch(`${url}/admin/queues/board/`)).status).toBe(418);
  });

  it('serves the build once it exists: files, the page for every app path, 404 for a missing asset', async () => {
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>dashboard</title>');
    await writeFile(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');

    const redirect = await fetch(`${url}/admin`, { redirect: 'manual' });
    expect([redirect.status, redirect.headers.get('location')]).toEqual([301, '/admin/']);
    for (const path of ['/admin/', '/admin/jobs/0b6c', '/admin/teams?team=x']) {
      const res = await fetch(url + path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
      expect(await res.text()).toContain('<title>dashboard</title>');
    }
    const asset = await fetch(`${url}/admin/assets/index-abc123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toMatch(/immutable/);
    const missing = await fetch(`${url}/admin/assets/index-old.js`);
    expect([missing.status, missing.headers.get('content-type')]).toEqual([404, expect.stringMatching(/problem\+json/)]);
    // bull-board's mount, other methods and other paths are not the dashboard's
    expect((await fetch(`${url}/admin/queues/board/session?token=x`)).status).toBe(418);
    expect((await fetch(`${url}/admin/`, { method: 'POST' })).status).toBe(418);
    expect((await fetch(`${url}/administrator`)).status).toBe(418);
  });
});

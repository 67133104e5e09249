/** The worker refuses to start, saying why, on a bad environment or a missing model (its job handling is exercised
 * end to end by apps/api's platform tests, which run it as a child process). */
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../../..');
const start = (env: Record<string, string>) =>
  run(process.execPath, ['-r', '@swc-node/register', 'apps/worker/src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    timeout: 60000,
  });

describe('worker start-up', () => {
  it('names every invalid variable', async () => {
    await expect(start({ DATABASE_URL: 'not a url', BATCH_SLOTS: '0' })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/DATABASE_URL[\s\S]*S3_ACCESS_KEY|S3_ACCESS_KEY[\s\S]*DATABASE_URL/),
    });
  });

  it('refuses a model directory without a manifest', async () => {
    const err = (await start({
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres',
      S3_ACCESS_KEY: 'x',
      S3_SECRET_KEY: 'y',
      MODEL_DIR: '/nonexistent/model',
    }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('cannot read /nonexistent/model/manifest.json');
  });

  it('with a health port, stays up after a failed model load and says why on /readyz and in one log line', async () => {
    const port = await new Promise<number>((r) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => r(port));
      });
    });
    const proc = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/worker/src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres',
        S3_ACCESS_KEY: 'x',
        S3_SECRET_KEY: 'y',
        MODEL_DIR: '/nonexistent/model',
        HEALTH_PORT: String(port),
        WORKER_ID: 'w-health',
      },
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      let ready: Response | null = null;
      for (let i = 0; i < 300 && !ready; i++) {
        ready = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        if (ready && ((await ready.clone().json()) as { state: string }).state === 'loading') ready = null;
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready!.status).toBe(503);
      expect(await ready!.json()).toEqual({
        worker: 'w-health',
        state: 'model-failed',
        error: expect.stringContaining('cannot read /nonexistent/model/manifest.json'),
      });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(proc.exitCode).toBeNull();
      const line = stderr.split('\n').find((l) => l.includes('"model-load-failed"'));
      expect(JSON.parse(line!)).toEqual({
        event: 'model-load-failed',
        worker: 'w-health',
        modelDir: '/nonexistent/model',
        error: expect.stringContaining('manifest.json'),
      });
    } finally {
      proc.kill('SIGKILL');
    }
  });
});

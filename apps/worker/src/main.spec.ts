/** The worker refuses to start, saying why, on a bad environment or a missing model (its job handling is exercised
 * end to end by apps/api's platform tests, which run it as a child process). */
import { execFile } from 'node:child_process';
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
});

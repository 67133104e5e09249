/** The README's main command in-process (`dimoo local generate`), end to end: a prompt in, a PNG of the manifest's default size out. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeImage } from '@dimoo/model';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../../..');

describe('dimoo local generate', () => {
  it('writes a PNG for a prompt and says where', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'dimoo-cli-')), 'img.png');
    const { stdout } = await run(
      'npx',
      ['tsx', 'apps/cli/src/main.ts', 'local', 'generate', '--prompt', 'a blue square at the center', '--out', out, '--seed', '7'],
      {
        cwd: ROOT,
      },
    );
    expect(stdout).toContain(`wrote ${out}`);
    const img = await decodeImage(await readFile(out));
    expect([img.width, img.height]).toEqual([128, 128]);
    // the tiny model draws its shape in the middle (positions are what it gets right; see the quality tests)
    const lit = (x: number, y: number) => Math.max(...img.data.subarray((y * 128 + x) * 3, (y * 128 + x) * 3 + 3)) >= 30;
    expect(lit(64, 70)).toBe(true);
    expect(lit(10, 10) || lit(118, 118)).toBe(false);
  });

  it('fails with a usage message on an unknown command', async () => {
    await expect(run('npx', ['tsx', 'apps/cli/src/main.ts', 'local', 'paint'], { cwd: ROOT })).rejects.toMatchObject({
      stderr: expect.stringContaining('usage: dimoo local'),
    });
  });

  it('asks for an API key before any HTTP command', async () => {
    const env = { ...process.env, DIMOO_API_KEY: '' };
    await expect(run('npx', ['tsx', 'apps/cli/src/main.ts', 'generate', 'a red circle'], { cwd: ROOT, env })).rejects.toMatchObject({
      stderr: expect.stringContaining('no API key: pass --key or set DIMOO_API_KEY'),
    });
  });
});

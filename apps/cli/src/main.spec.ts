/** The README's main command, end to end: a prompt in, a PNG of the manifest's default size out. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeImage } from '@dimoo/runtime';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../../..');

describe('dimoo generate', () => {
  it('writes a PNG for a prompt and says where', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'dimoo-cli-')), 'img.png');
    const { stdout } = await run('npx', ['tsx', 'apps/cli/src/main.ts', 'generate', '--prompt', 'a blue square at the center', '--out', out, '--seed', '7'], { cwd: ROOT });
    expect(stdout).toContain(`wrote ${out}`);
    const img = await decodeImage(await readFile(out));
    expect([img.width, img.height]).toEqual([128, 128]);
    // the tiny model draws something blue in the middle
    const px = (x: number, y: number) => Array.from(img.data.subarray((y * 128 + x) * 3, (y * 128 + x) * 3 + 3));
    const [r, g, b] = px(64, 64);
    expect(b).toBeGreaterThan(r! + 60);
    expect(b).toBeGreaterThan(g! + 60);
  });

  it('fails with a usage message on an unknown command', async () => {
    await expect(run('npx', ['tsx', 'apps/cli/src/main.ts', 'paint'], { cwd: ROOT })).rejects.toMatchObject({ stderr: expect.stringContaining('usage: dimoo') });
  });
});

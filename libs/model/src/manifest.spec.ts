import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadManifest, loadManifestFile } from './manifest';

const TINY = resolve(__dirname, '../../../models/tiny');

describe('loading a manifest', () => {
  let scratch: string;
  beforeEach(() => (scratch = mkdtempSync(join(tmpdir(), 'dimoo-manifest-'))));
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  it('a manifest file alone, under any name, with none of the files it lists (what the API mounts)', async () => {
    copyFileSync(join(TINY, 'manifest.json'), join(scratch, 'served-model.json'));
    const manifest = await loadManifestFile(join(scratch, 'served-model.json'));
    expect(manifest).toEqual(await loadManifest(TINY, { verify: false }));
    // the same manifest as a model directory: its files are checked and missing
    copyFileSync(join(TINY, 'manifest.json'), join(scratch, 'manifest.json'));
    await expect(loadManifest(scratch)).rejects.toThrow(/model file missing/);
  });

  it('refuses a missing file and an invalid manifest, naming the file and the field', async () => {
    await expect(loadManifestFile(join(scratch, 'absent.json'))).rejects.toThrow(`cannot read ${join(scratch, 'absent.json')}`);
    writeFileSync(join(scratch, 'bad.json'), JSON.stringify({ interfaceVersion: 2, name: 'x' }));
    await expect(loadManifestFile(join(scratch, 'bad.json'))).rejects.toThrow(/invalid manifest .*bad\.json: .*version/);
  });
});

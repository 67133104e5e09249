import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import { ManifestSchema } from '@dimoo/contracts';
import { ModelLoadError } from './errors';

/** Reads and validates `manifest.json`; with `verify`, checks every listed file's size and sha256. */
export async function loadManifest(dir: string, options: { verify?: boolean } = {}): Promise<ModelManifest> {
  const manifest = await loadManifestFile(join(dir, 'manifest.json'));
  if (options.verify !== false) {
    for (const [file, expected] of Object.entries(manifest.files)) {
      const path = join(dir, file);
      let size: number;
      try {
        size = (await stat(path)).size;
      } catch (cause) {
        throw new ModelLoadError(`model file missing: ${path}`, { cause });
      }
      // size first (cheap), then the hash streamed: the real model's weights file is ~16 GB, more than a Buffer holds
      const sha = size === expected.bytes ? await sha256File(path) : '(not hashed)';
      if (size !== expected.bytes || sha !== expected.sha256) {
        throw new ModelLoadError(`checksum mismatch for ${file}: expected ${expected.sha256} (${expected.bytes} B), got ${sha} (${size} B)`);
      }
    }
  }
  return manifest;
}

/**
 * Reads and validates a manifest file alone, checking no model file: what a process that serves no model needs (the
 * API resolves requests against the served model's limits and defaults from it).
 */
export async function loadManifestFile(file: string): Promise<ModelManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new ModelLoadError(`cannot read ${file}`, { cause });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ModelLoadError(`invalid manifest ${file}: ${issues}`);
  }
  return parsed.data;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A digest of the manifest's file checksums: names a model build in results. */
export function modelChecksum(m: ModelManifest): string {
  const h = createHash('sha256');
  for (const [file, f] of Object.entries(m.files).sort(([a], [b]) => a.localeCompare(b))) h.update(`${file}:${f.sha256}\n`);
  return h.digest('hex');
}

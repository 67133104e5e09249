import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The scaled-down twin of the real model (tools/model/build_twin.py; gitignored, rebuilt from its seed). */
export const TWIN_DIR = process.env['DIMOO_TWIN_DIR'] ?? resolve(__dirname, '../../../../models/twin');

/**
 * Whether the twin's tests run: yes when it is built; when it is missing they are skipped with a message locally and
 * fail in CI (`CI` set), where the runtime project's test target builds it first (model-tools:twin).
 */
export function twinAvailable(): boolean {
  if (existsSync(join(TWIN_DIR, 'fp32', 'manifest.json')) && existsSync(join(TWIN_DIR, 'parity', 'fixture.json'))) return true;
  const how = 'build it with `/usr/bin/python3 tools/model/build_twin.py --out models/twin` (about 40 s)';
  if (process.env['CI']) throw new Error(`the twin model is missing at ${TWIN_DIR}: ${how}`);
  console.warn(`skipping the twin tests: no twin model at ${TWIN_DIR}; ${how}`);
  return false;
}

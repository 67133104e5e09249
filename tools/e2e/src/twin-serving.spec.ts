/**
 * The real model's path through the whole service, on its scaled-down twin (tools/model/build_twin.py: the real
 * vocabulary, ids, templates, hf tokenizer, 8192-code VQ; random weights): API → queue → worker → storage for every
 * task at 64×64 and few steps. Outputs are noise; what is checked is that every shape, id and template the real model
 * uses goes through the API's manifest checks, the worker's model loading (checksums, tokenizer check) and the engine.
 */
import { resolve } from 'node:path';
import type { JobView } from '@dimoo/contracts';
import { decodeImage, encodePng } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import { existsSync } from 'node:fs';

const TWIN = resolve(ROOT, 'models/twin/fp32');
const built = existsSync(resolve(TWIN, 'manifest.json'));
if (!built && process.env['CI']) throw new Error(`the twin model is missing at ${TWIN} (nx run model-tools:twin builds it)`);
const run = built ? describe : describe.skip;

let p: Platform;
let worker: WorkerProcess;
let key: string;

async function call(method: string, path: string, k: string, body?: unknown): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

async function runJob(body: unknown): Promise<JobView> {
  const res = await call('POST', '/v1/jobs', key, body);
  const view = (await res.json()) as JobView & { errors?: unknown };
  if (res.status !== 202) throw new Error(`${res.status}: ${JSON.stringify(view)}`);
  for (const t0 = Date.now(); Date.now() - t0 < 120000; await sleep(100)) {
    const j = (await (await call('GET', `/v1/jobs/${view.id}`, key)).json()) as JobView;
    if (['succeeded', 'failed', 'canceled'].includes(j.status)) return j;
  }
  throw new Error(`job ${view.id} did not finish:\n${worker.output.join('')}`);
}

const png64 = async (colour: [number, number, number], half = false) => {
  const data = new Uint8Array(64 * 64 * 3);
  for (let i = 0; i < 64 * 64; i++) if (!half || i % 64 >= 32) data.set(colour, i * 3);
  return (await encodePng({ width: 64, height: 64, data })).toString('base64');
};

run('the twin through API → queue → worker → storage', () => {
  beforeAll(async () => {
    p = await startPlatform({ modelDir: TWIN });
    worker = new WorkerProcess({ ...p.workerEnv, MODEL_DIR: TWIN });
    const team = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'twin' })).json()) as { id: string };
    key = ((await (await call('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 't' })).json()) as { key: string }).key;
    await worker.ready();
  }, 120000);

  afterAll(async () => {
    await worker?.kill('SIGKILL');
    await p?.close();
  });

  it('runs t2i (with ML-Cache), inpainting, editing and understanding', async () => {
    const image = await png64([200, 40, 40]);
    const jobs = await Promise.all([
      runJob({ task: 't2i', prompt: 'a red circle', steps: 8, cfg: 2, cache: true, seed: 1 }),
      runJob({ task: 'paint', prompt: 'a blue square', image, mask: await png64([255, 255, 255], true), steps: 4, seed: 2 }),
      runJob({ task: 'i2i', prompt: 'make it blue', editType: 'edit', images: [image], steps: 4, seed: 3 }),
      runJob({ task: 'mmu', question: 'what colour is it?', image, genLength: 8, blockLength: 8, steps: 4, seed: 4 }),
    ]);
    expect(jobs.map((j) => j.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    for (const j of jobs.slice(0, 3)) {
      const png = Buffer.from(await (await call('GET', `/v1/jobs/${j.id}/result`, key)).arrayBuffer());
      const img = await decodeImage(png);
      expect([img.width, img.height]).toEqual([64, 64]);
    }
    expect(jobs[3].result?.kind).toBe('text');
    expect(jobs.every((j) => j.model.name === jobs[0].model.name && j.model.checksum !== null)).toBe(true);
  });

  it("refuses a request beyond the twin manifest's limits before queueing it", async () => {
    const res = await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'x', height: 1024 });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('height');
    // the aspect ratio (at most 4:1 here) was checked only by the worker before: a 202, then a failed job
    const wide = await call('POST', '/v1/jobs', key, { task: 't2i', prompt: 'x', height: 32, width: 512 });
    expect(wide.status).toBe(400);
    expect(((await wide.json()) as { errors: { field: string; reason: string }[] }).errors).toEqual([
      { field: 'width', reason: 'the aspect ratio must be at most 4:1' },
    ]);
  });
});

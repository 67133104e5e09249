/**
 * Batch formation on the engine thread (issue 4): jobs submitted together share model runs; the same request and seed
 * give the same PNG alone, in a static batch, joining a running batch mid-way, and with the batch-owned ML-Cache;
 * the wait window gathers a burst; static batches never take a job mid-way; previews show the committed cells.
 */
import type { LocalRequest, ModelManifest } from '@dimoo/contracts';
import { decodeImage, loadManifest } from '@dimoo/model';
import { EngineHost } from './engine-host';
import type { StepStats } from './engine-protocol';
import { resolveLocal } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';

const session = { provider: 'cpu' as const, allowCpuFallback: false };
let manifest: ModelManifest;
beforeAll(async () => {
  manifest = await loadManifest(TEST_MODEL_DIR, { verify: false });
});
const req = (prompt: string, seed: number, extra: Partial<Extract<LocalRequest, { task: 't2i' }>> = {}) =>
  resolveLocal(manifest, { task: 't2i', prompt, seed, steps: 16, temperature: 1, cfg: 1, ...extra });
const png = async (p: Promise<{ output: { kind: string; bytes?: Uint8Array } }>) => {
  const r = await p;
  if (r.output.kind !== 'image' || !r.output.bytes) throw new Error('not an image');
  return Buffer.from(r.output.bytes);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('continuous batching', () => {
  let host: EngineHost;
  const steps: StepStats[] = [];
  beforeAll(async () => {
    host = await EngineHost.start(
      { modelDir: TEST_MODEL_DIR, session, batch: { mode: 'continuous', costBudget: 4096, waitMs: 150 } },
      { onStep: (s) => steps.push(s) },
    );
  });
  afterAll(() => host.close());

  it('runs jobs submitted together in shared model runs, with the same PNG as alone', async () => {
    const alone = await png(host.run('alone', req('a red circle at the top left', 7)));
    steps.length = 0;
    const [a, b, c] = await Promise.all([
      png(host.run('t-a', req('a red circle at the top left', 7))),
      png(host.run('t-b', req('a blue square at the center', 8))),
      png(host.run('t-c', req('a green triangle at the bottom right', 9))),
    ]);
    expect(a.equals(alone)).toBe(true);
    expect(b.equals(a)).toBe(false);
    expect(c.equals(a)).toBe(false);
    // one call per step carried all three (two guidance branches each): 16 steps, 16 calls, 6 rows
    const calls = steps.flatMap((s) => s.calls);
    expect(calls).toHaveLength(16);
    expect(calls.every((k) => k.sequences === 3 && k.rows === 6)).toBe(true);
  });

  it('holds the first arrival for the wait window so a burst starts as one batch', async () => {
    steps.length = 0;
    const first = host.run('w-a', req('a yellow circle at the right', 1));
    await sleep(60);
    const second = host.run('w-b', req('a purple square at the top', 2));
    await Promise.all([first, second]);
    expect(steps[0]!.jobs.sort()).toEqual(['w-a', 'w-b']);
  });

  it('lets a job join a running batch mid-way with the same PNG as alone', async () => {
    // long enough to be still running when j-a arrives, on however fast a machine
    const long = host.run('j-long', req('a blue circle at the left', 3, { steps: 256 }));
    while (!steps.some((s) => s.jobs.includes('j-long'))) await sleep(5);
    steps.length = 0;
    const joined = await png(host.run('j-a', req('a red circle at the top left', 7)));
    await long;
    expect(joined.equals(await png(host.run('j-ref', req('a red circle at the top left', 7))))).toBe(true);
    // it really joined: it shared steps with the long job
    expect(steps.some((s) => s.jobs.includes('j-long') && s.jobs.includes('j-a'))).toBe(true);
  });

  it('gives the same PNG with the batch-owned ML-Cache alone and in a batch', async () => {
    const cached = { steps: 32, cache: true } as const;
    const alone = await png(host.run('c-alone', req('a green square at the bottom', 11, cached)));
    const [inBatch] = await Promise.all([
      png(host.run('c-a', req('a green square at the bottom', 11, cached))),
      png(host.run('c-b', req('a red triangle at the top right', 12, cached))),
      png(host.run('c-c', req('a blue circle at the center', 13, cached))),
    ]);
    expect(inBatch.equals(alone)).toBe(true);
  });

  it('sends previews with the still-masked cells grey, every k steps', async () => {
    const previews: { step: number; png: Uint8Array }[] = [];
    await host.run('p', req('an orange circle at the bottom left', 4, { previewEvery: 4 }), {
      onPreview: (step, _steps, p) => previews.push({ step, png: p }),
    });
    expect(previews.map((p) => p.step)).toEqual([4, 8, 12]);
    const first = await decodeImage(previews[0]!.png);
    expect(first.width).toBe(128);
    let grey = 0;
    for (let i = 0; i < first.data.length; i += 3) if (first.data[i] === 128 && first.data[i + 1] === 128 && first.data[i + 2] === 128) grey++;
    expect(grey).toBeGreaterThan(0); // at step 4 of 16 most cells are still masked
  });
});

describe('static batching', () => {
  let host: EngineHost;
  const steps: StepStats[] = [];
  beforeAll(async () => {
    host = await EngineHost.start(
      { modelDir: TEST_MODEL_DIR, session, batch: { mode: 'static', costBudget: 4096, waitMs: 50 } },
      { onStep: (s) => steps.push(s) },
    );
  });
  afterAll(() => host.close());

  it('never takes a job into a running batch, and gives the same PNG as alone', async () => {
    const alone = await png(host.run('s-alone', req('a red circle at the top left', 7)));
    steps.length = 0;
    const long = host.run('s-long', req('a blue circle at the left', 3, { steps: 48 }));
    await sleep(300);
    const late = await png(host.run('s-a', req('a red circle at the top left', 7)));
    await long;
    expect(late.equals(alone)).toBe(true);
    expect(steps.some((s) => s.jobs.includes('s-long') && s.jobs.includes('s-a'))).toBe(false);
    expect(steps.filter((s) => s.jobs.includes('s-a')).length).toBe(16);
  });
});

describe('the GPU ML-Cache path (denoise_segment) selected on the CPU', () => {
  let host: EngineHost;
  let hostPath: EngineHost;
  const steps: StepStats[] = [];
  beforeAll(async () => {
    host = await EngineHost.start(
      { modelDir: TEST_MODEL_DIR, session, mlCachePath: 'segment', batch: { mode: 'continuous', costBudget: 4096, waitMs: 200 } },
      { onStep: (s) => steps.push(s) },
    );
    hostPath = await EngineHost.start({ modelDir: TEST_MODEL_DIR, session, mlCachePath: 'auto' });
  });
  afterAll(async () => {
    await host.close();
    await hostPath.close();
  });

  it('gives the same PNGs as the host path, one run per refresh segment, while other jobs keep the host path', async () => {
    const cached = { steps: 32, cache: true } as const;
    const reqs = [req('a green square at the bottom', 11, cached), req('a red triangle at the top right', 12, cached), req('a blue circle at the center', 13)];
    const expected = await Promise.all(reqs.map((r, i) => png(hostPath.run(`h${i}`, r))));
    steps.length = 0;
    const previews: number[] = [];
    const got = await Promise.all(
      reqs.map((r, i) => png(host.run(`g${i}`, { ...r, job: { ...r.job, previewEvery: 8 } }, i === 0 ? { onPreview: (step) => previews.push(step) } : {}))),
    );
    got.forEach((g, i) => expect(g.equals(expected[i]!)).toBe(true));
    // 32 steps at the defaults: full steps 0..9, 14, 19, 24, 29. The lone full steps 0..8 (warmup) run on the host
    // path's denoise; a segment run starts at 9, 14, 19, 24 and 29 (fewer when a job finishes early)
    const segmentRuns = steps.flatMap((s) => s.calls).filter((c) => c.kind === 'segment');
    expect(segmentRuns.length).toBeGreaterThan(0);
    expect(segmentRuns.length).toBeLessThanOrEqual(5);
    expect(segmentRuns.every((c) => c.sequences === 2)).toBe(true);
    // the uncached job stayed on the host path, a denoise call per step; the cached jobs' warmup steps joined those calls
    const fullCalls = steps.flatMap((s) => s.calls).filter((c) => c.kind === 'full');
    expect(fullCalls.length).toBeGreaterThanOrEqual(16);
    expect(fullCalls.filter((c) => c.sequences >= 2).length).toBeGreaterThanOrEqual(9);
    expect(previews.length).toBeGreaterThanOrEqual(3);
  });
});

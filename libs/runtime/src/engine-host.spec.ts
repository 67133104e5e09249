/**
 * The engine on its own thread: jobs submitted while others run join the batch, the event loop stays free while
 * sampling, bad input fails without retry, cancel drops a running job without touching the others.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LocalRequest, ModelManifest, ResolvedJob } from '@dimoo/contracts';
import { decodeImage, loadManifest } from '@dimoo/model';
import { EngineHost, EngineJobError, JobCanceledError } from './engine-host';
import type { StepStats } from './engine-protocol';
import { resolveLocal } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';

let host: EngineHost;
let manifest: ModelManifest;
const steps: StepStats[] = [];
const job = (req: LocalRequest) => resolveLocal(manifest, req);

beforeAll(async () => {
  manifest = await loadManifest(TEST_MODEL_DIR, { verify: false });
  host = await EngineHost.start({ modelDir: TEST_MODEL_DIR, session: { provider: 'cpu', allowCpuFallback: false } }, { onStep: (s) => steps.push(s) });
});

afterAll(async () => {
  await host.close();
});

describe('EngineHost', () => {
  it('runs jobs on its own thread, batching them step by step, without blocking the event loop', async () => {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    steps.length = 0;
    const progress: number[] = [];
    const a = host.run('a', job({ task: 't2i', prompt: 'a green square at the left', seed: 1, steps: 32 }), (s) => progress.push(s));
    await new Promise((r) => setTimeout(r, 30));
    const b = host.run('b', job({ task: 't2i', prompt: 'a purple triangle at the top', seed: 2, steps: 16 }));
    const [ra, rb] = await Promise.all([a, b]);
    delay.disable();
    for (const r of [ra, rb]) {
      expect(r.output.kind).toBe('image');
      if (r.output.kind === 'image') expect((await decodeImage(r.output.bytes)).width).toBe(128);
    }
    expect(progress.at(-1)).toBe(32);
    // b joined a's running batch: some steps ran both
    expect(steps.some((s) => s.jobs.includes('a') && s.jobs.includes('b') && s.calls.some((c) => c.sequences === 2))).toBe(true);
    expect(delay.max / 1e6).toBeLessThan(50);
  });

  it('fails bad input as non-retryable, naming the field', async () => {
    // a job resolved against another model than the one served (a stale row after a model change): the engine
    // re-checks the served manifest's limits and names the field
    const valid = job({ task: 't2i', prompt: 'x', seed: 1 });
    const err = await host.run('bad', { ...valid, job: { ...valid.job, size: { height: 100, width: 128 } } as ResolvedJob }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineJobError);
    expect((err as EngineJobError).retryable).toBe(false);
    expect((err as EngineJobError).field).toBe('height'); // the request's field, as the API names it
  });

  it('cancels a running job and leaves the others untouched', async () => {
    const alone = await host.run('ref', job({ task: 't2i', prompt: 'a red circle at the right', seed: 5, steps: 24, temperature: 1 }));
    const keep = host.run('keep', job({ task: 't2i', prompt: 'a red circle at the right', seed: 5, steps: 24, temperature: 1 }));
    const drop = host.run('drop', job({ task: 't2i', prompt: 'a blue circle at the left', seed: 6, steps: 200 }));
    await new Promise((r) => setTimeout(r, 50));
    host.cancel('drop');
    await expect(drop).rejects.toBeInstanceOf(JobCanceledError);
    const kept = await keep;
    expect(kept.output.kind === 'image' && alone.output.kind === 'image' && Buffer.from(kept.output.bytes).equals(Buffer.from(alone.output.bytes))).toBe(true);
  });
});

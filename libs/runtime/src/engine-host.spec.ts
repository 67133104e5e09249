/**
 * The engine on its own thread: jobs submitted while others run join the batch, the event loop stays free while
 * sampling, bad input fails without retry, cancel drops a running job without touching the others.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { EngineHost, EngineJobError, JobCanceledError } from './engine-host';
import type { StepStats } from './engine-protocol';
import { decodeImage } from './image';
import { TEST_MODEL_DIR } from './testing/model-dir';

let host: EngineHost;
const steps: StepStats[] = [];

beforeAll(async () => {
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
    const a = host.run('a', { task: 't2i', prompt: 'a green square at the left', seed: 1, steps: 32 }, (s) => progress.push(s));
    await new Promise((r) => setTimeout(r, 30));
    const b = host.run('b', { task: 't2i', prompt: 'a purple triangle at the top', seed: 2, steps: 16 });
    const [ra, rb] = await Promise.all([a, b]);
    delay.disable();
    for (const r of [ra, rb]) {
      expect(r.output.kind).toBe('image');
      if (r.output.kind === 'image') expect((await decodeImage(r.output.png)).width).toBe(128);
    }
    expect(progress.at(-1)).toBe(32);
    // b joined a's running batch: some steps ran both
    expect(steps.some((s) => s.jobs.includes('a') && s.jobs.includes('b') && s.calls.some((c) => c.sequences === 2))).toBe(true);
    expect(delay.max / 1e6).toBeLessThan(50);
  });

  it('fails bad input as non-retryable, naming the field', async () => {
    const err = await host.run('bad', { task: 't2i', prompt: 'x', seed: 1, height: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineJobError);
    expect((err as EngineJobError).retryable).toBe(false);
    expect((err as EngineJobError).field).toBe('size.height');
  });

  it('cancels a running job and leaves the others untouched', async () => {
    const alone = await host.run('ref', { task: 't2i', prompt: 'a red circle at the right', seed: 5, steps: 24, temperature: 1 });
    const keep = host.run('keep', { task: 't2i', prompt: 'a red circle at the right', seed: 5, steps: 24, temperature: 1 });
    const drop = host.run('drop', { task: 't2i', prompt: 'a blue circle at the left', seed: 6, steps: 200 });
    await new Promise((r) => setTimeout(r, 50));
    host.cancel('drop');
    await expect(drop).rejects.toBeInstanceOf(JobCanceledError);
    const kept = await keep;
    expect(kept.output.kind === 'image' && alone.output.kind === 'image' && Buffer.from(kept.output.png).equals(Buffer.from(alone.output.png))).toBe(true);
  });
});

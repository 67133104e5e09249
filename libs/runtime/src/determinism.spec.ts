/**
 * Determinism and real batching: the same request and seed give identical PNG bytes alone and inside a batch of 8 of
 * other jobs, with guidance and temperature (and with ML-Cache); model calls are counted so that a "batch" that ran one
 * by one fails.
 */
import type { Sequence } from '@dimoo/diffusion';
import type { LoadedModel } from './pipeline';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { finish, loadModel, newEngine, prepare, releaseModel, resultPng } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';
import type { ToyWorld } from './testing/toy-world';
import { caption, heldOutScenes, loadWorld } from './testing/toy-world';

let model: LoadedModel;
let world: ToyWorld;

afterAll(() => releaseModel(model));

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
  world = await loadWorld(TEST_MODEL_DIR);
});

async function png(seq: Sequence): Promise<Buffer> {
  const r = await finish(model, seq);
  if (r.kind !== 'image') throw new Error('expected an image');
  return resultPng(r);
}

describe.each([false, true])('determinism (ML-Cache %s)', (cache) => {
  const request = (i: number, seed: number): InlineRequest => ({
    task: 't2i',
    prompt: caption(world, heldOutScenes(world)[i]!),
    cfg: 1,
    temperature: 1,
    steps: 16,
    seed,
    cache,
  });

  it('gives identical PNG bytes alone and in a batch of 8, and batches for real', async () => {
    const alone = await prepare(model, 'alone', inlineJob(model.manifest, request(0, 1234)));
    const soloEngine = newEngine(model);
    await soloEngine.run([alone]);

    const batch = await Promise.all(
      Array.from({ length: 8 }, (_, i) => prepare(model, `b${i}`, inlineJob(model.manifest, i === 5 ? request(0, 1234) : request(i, 100 + i)))),
    );
    const engine = newEngine(model);
    await engine.run(batch);

    expect((await png(batch[5]!)).equals(await png(alone))).toBe(true);
    // 16 steps × one call per step, each with all 8 sequences × 2 guidance rows (plus sample_head calls on cached steps)
    const modelCalls = engine.calls.filter((c) => c.kind !== 'sample');
    expect(modelCalls).toHaveLength(16);
    for (const c of modelCalls) expect([c.sequences, c.rows]).toEqual([8, 16]);
    // the equality above is not vacuous: another job of the batch (other prompt, other seed) made another image
    expect((await png(batch[1]!)).equals(await png(alone))).toBe(false);
  });
});

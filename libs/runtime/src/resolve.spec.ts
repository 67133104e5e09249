/**
 * The resolution (@dimoo/contracts resolveJob) against what the engine builds from it: its cost estimate is what the
 * engine charges at admission (padded length × rows) less the prompt and template tokens, and its guidance branch
 * count is the engine's.
 */
import type { ResolvedGuidance } from '@dimoo/contracts';
import { guidanceBranches } from '@dimoo/contracts';
import { branchCount, paddedLength, sequenceCost } from '@dimoo/diffusion';
import type { LoadedModel } from './pipeline';
import { loadModel, prepare, releaseModel } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { render, loadWorld } from './testing/toy-world';

let model: LoadedModel;

afterAll(() => releaseModel(model));

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
});

it('counts guidance branches as the engine does', () => {
  const kinds: ResolvedGuidance[] = [{ kind: 'none' }, { kind: 'text', scale: 2 }, { kind: 'dual', text: 0, image: 1 }];
  for (const g of kinds) expect(guidanceBranches(g)).toBe(branchCount(g));
});

it('estimates the cost the engine charges, short only of the prompt and template tokens', async () => {
  const world = await loadWorld(TEST_MODEL_DIR);
  const scene = { colour: world.colourOrder[0]!, shape: world.shapes[0]!, position: world.positionOrder[0]! };
  const image = render(world, scene);
  const mask = new Uint8Array(image.width * image.height).fill(1);
  const requests: InlineRequest[] = [
    { task: 't2i', prompt: 'a red circle at the top left', seed: 1 },
    { task: 't2i', prompt: 'a red circle at the top left', cfg: 2, seed: 1 },
    { task: 'paint', prompt: 'a blue square', image, mask, cfg: 1, seed: 1 },
    { task: 'i2i', prompt: 'make it blue', editType: 'edit', images: [image], cfg: 1, cfgImage: 1, seed: 1 },
    { task: 'mmu', question: 'what colour is the shape ?', image, seed: 1 },
  ];
  for (const req of requests) {
    const job = inlineJob(model.manifest, req);
    const seq = await prepare(model, req.task, job);
    const exact = sequenceCost(paddedLength(seq, model.manifest.lengthBucket), seq.branches);
    const estimate = job.job.cost.positionsPerStep;
    expect(estimate).toBeLessThanOrEqual(exact);
    // the rest: each row's prompt and template tokens (a few dozen here) and the padding to the length bucket
    expect(exact - estimate).toBeLessThanOrEqual(seq.branches * (40 + model.manifest.lengthBucket));
    expect(job.job.cost.units).toBe(estimate * job.job.steps);
  }
});

/**
 * Parity: the production batched engine (fused graphs, grouped calls, host-side ML-Cache) against the independent
 * reference sampler (testing/reference-sampler.ts: batch 1, full logits, its own random numbers), for every task, with
 * guidance on, at τ = 0 and τ > 0, with and without ML-Cache, all jobs sampled together as one mixed batch.
 */
import type { ModelManifest } from '@dimoo/contracts';
import type { Sequence } from '@dimoo/diffusion';
import { toPlanar } from './vq';
import type { LoadedModel } from './pipeline';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { loadModel, newEngine, prepare, releaseModel } from './pipeline';
import type { RefRun } from './testing/reference-sampler';
import { ReferenceSampler } from './testing/reference-sampler';
import { TEST_MODEL_DIR } from './testing/model-dir';
import type { ToyWorld } from './testing/toy-world';
import { caption, loadWorld, mixedInputs } from './testing/toy-world';
import { promptIds } from '@dimoo/model';

let model: LoadedModel;
let world: ToyWorld;
let reference: ReferenceSampler;

afterAll(() => releaseModel(model));

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
  world = await loadWorld(TEST_MODEL_DIR);
  reference = await ReferenceSampler.open(TEST_MODEL_DIR, model.manifest);
});

/** The reference's own construction of a job's rows, from the spec's sequence layouts (§1.4). */
async function referenceJob(m: ModelManifest, req: InlineRequest, seq: Sequence): Promise<RefRun> {
  const t = m.tokens;
  const tok = (sys: string, user: string) => Array.from(promptIds(model.tokenizer, m, sys, user));
  const cells = (rows: number, cols: number, code: (i: number) => number) =>
    Array.from({ length: rows }, (_, r) => [...Array.from({ length: cols }, (_, c) => code(r * cols + c)), t.newline]).flat();
  const block = async (img: Parameters<typeof toPlanar>[0]) => {
    const g = await model.vq.encode(toPlanar(img));
    return [t.boi, ...cells(g.rows, g.cols, (i) => t.codeOffset + g.codes[i]!), t.eoi];
  };
  const base = { steps: seq.params.steps, temperature: seq.params.temperature, seed: seq.params.seed, cache: seq.params.cache };
  const imageVocab: [number, number] = [t.codeOffset, t.codeOffset + t.codebookSize];
  const grid = m.image.defaultHeight / m.image.gridFactor;
  const targets = cells(grid, grid, () => 1).flatMap((v, i) => (v === 1 ? [i] : []));
  switch (req.task) {
    case 't2i':
    case 'paint': {
      const w = req.cfg ?? 0;
      let region = cells(grid, grid, () => t.mask);
      if (req.task === 'paint') {
        const canvas = await block(req.image);
        const keep = seq.spec.region; // which cells regenerate: the mask rule, tested in libs/diffusion mask.spec.ts
        region = region.map((v, i) => (keep[i] === t.mask ? t.mask : canvas[1 + i]!));
      }
      const open = [t.boa, t.boi];
      const close = [t.eoi, t.eoa];
      return {
        ...base,
        branches: [
          { prefix: [...tok(m.templates.sys.t2i, req.prompt), ...open], suffix: close },
          { prefix: [...tok(m.templates.sys.t2i, m.templates.uncondition), ...open], suffix: close },
        ],
        region,
        targets,
        weights: [1 + w, -w],
        sampler: 'maskgit',
        vocab: imageVocab,
      };
    }
    case 'i2i': {
      const [a, b] = [req.cfg ?? 0, req.cfgImage ?? 0];
      if (req.editType !== 'edit' || req.prompt === undefined) throw new Error('this reference builds edit sequences only');
      const img = await block(req.images[0]!);
      const sys = m.templates.sys.edit;
      const withImage = (ids: number[]) => [...ids.slice(0, -1), ...img, ...ids.slice(-1)];
      const open = [t.boa, t.boi];
      const close = [t.eoi, t.eoa];
      return {
        ...base,
        branches: [
          { prefix: [...withImage(tok(sys, req.prompt)), ...open], suffix: close },
          { prefix: [...withImage(tok(sys, m.templates.uncondition)), ...open], suffix: close },
          { prefix: [...tok(sys, req.prompt), ...open], suffix: close },
        ],
        region: cells(grid, grid, () => t.mask),
        targets,
        weights: [1 + a + b, -a, -b],
        sampler: 'maskgit',
        vocab: imageVocab,
      };
    }
    case 'mmu': {
      const w = req.cfg ?? 0;
      const ids = tok(m.templates.sys.mmu, req.question);
      const prefix = [...ids.slice(0, -1), ...(await block(req.image)), ...ids.slice(-1), t.boa];
      const gen = req.genLength ?? m.defaults.mmu.genLength;
      return {
        ...base,
        branches: [
          { prefix, suffix: [t.eoa] },
          { prefix: prefix.map(() => t.mask), suffix: [t.mask] },
        ],
        region: Array.from({ length: gen }, () => t.mask),
        targets: Array.from({ length: gen }, (_, i) => i),
        weights: [1 + w, -w],
        sampler: { blockLength: req.blockLength ?? gen },
        vocab: [0, t.textVocabSize],
      };
    }
  }
}

function jobs(temperature: number, cache: boolean): InlineRequest[] {
  const { scene, image, mask } = mixedInputs(world);
  const common = { temperature, cache };
  return [
    { task: 't2i', prompt: caption(world, scene(2)), cfg: 2, steps: 12, seed: 11, ...common },
    { task: 't2i', prompt: caption(world, scene(5)), cfg: 2, steps: 12, seed: 12, ...common },
    { task: 't2i', prompt: caption(world, scene(7)), cfg: 1.5, steps: 12, seed: 13, ...common },
    { task: 'paint', prompt: caption(world, scene(4)), image, mask, cfg: 1, steps: 10, seed: 14, ...common },
    { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [image], cfg: 1, cfgImage: 0.5, steps: 12, seed: 15, ...common },
    { task: 'mmu', question: 'what shape is it ?', image, cfg: 0.5, steps: 8, genLength: 8, blockLength: 4, seed: 16, ...common },
  ];
}

describe.each([
  [0, false],
  [1, false],
  [0, true],
  [1, true],
])('parity at τ = %d, ML-Cache %s', (temperature, cache) => {
  it('the batched engine matches the reference sampler token for token on every task', async () => {
    const reqs = jobs(temperature, cache);
    const seqs = await Promise.all(reqs.map((r, i) => prepare(model, `p${i}`, inlineJob(model.manifest, r))));
    const engine = newEngine(model);
    await engine.run(seqs);
    // it really ran batched: the three t2i jobs share every one of their calls
    expect(Math.max(...engine.calls.map((c) => c.sequences))).toBeGreaterThanOrEqual(3);
    for (const [i, req] of reqs.entries()) {
      const expected = await reference.run(await referenceJob(model.manifest, req, seqs[i]!));
      expect({ task: req.task, tokens: Array.from(seqs[i]!.region) }).toEqual({ task: req.task, tokens: expected });
    }
  });
});

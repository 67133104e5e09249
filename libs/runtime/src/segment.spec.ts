/**
 * The GPU ML-Cache path (`denoise_segment`, one run per refresh segment, docs/model-interface.md §4.6) against the CPU
 * ML-Cache path (DiffusionEngine with `denoise` + `denoise_partial` + `sample_head` and the host's remasking), both on
 * onnxruntime-node's CPU provider: the same requests must end in identical tokens, and the segment path must need one
 * run per segment of the schedule.
 */
import type { CacheSettings, Sequence } from '@dimoo/diffusion';
import { isFullStep, segmentLength, segmentStarts } from '@dimoo/diffusion';
import type { LoadedModel } from './pipeline';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { loadModel, newEngine, prepare, releaseModel } from './pipeline';
import { newSegmentRunner, OnnxSegmentModel } from './segment';
import { TEST_MODEL_DIR } from './testing/model-dir';
import type { ToyWorld } from './testing/toy-world';
import { caption, heldOutScenes, loadWorld, render } from './testing/toy-world';

let model: LoadedModel;
let segment: OnnxSegmentModel;
let world: ToyWorld;

afterAll(() => releaseModel(model));

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
  segment = await OnnxSegmentModel.open(TEST_MODEL_DIR, model.manifest, { provider: 'cpu', allowCpuFallback: false });
  world = await loadWorld(TEST_MODEL_DIR);
});

/** Runs the requests through both paths (fresh sequences each) -> final regions and the segment path's run count. */
async function bothPaths(reqs: InlineRequest[]) {
  const host = await Promise.all(reqs.map((r, i) => prepare(model, `h${i}`, inlineJob(model.manifest, r))));
  const engine = newEngine(model);
  await engine.run(host);
  const gpu = await Promise.all(reqs.map((r, i) => prepare(model, `g${i}`, inlineJob(model.manifest, r))));
  const runner = newSegmentRunner(segment, model.manifest);
  const before = segment.runs;
  await runner.run(gpu);
  return {
    host: host.map((s) => Array.from(s.region)),
    gpu: gpu.map((s) => Array.from(s.region)),
    seqs: gpu,
    runs: segment.runs - before,
    hostCalls: engine.calls.length,
    runnerCalls: runner.calls,
  };
}

const masked = (seq: Sequence) => seq.maskedTargets().length;

describe('the GPU segment path equals the CPU ML-Cache path token for token', () => {
  const cache = () => model.manifest.defaults.cache;

  it.each([0, 1])('t2i, guidance cfg 1, three sequences with 64 and 40 steps (a short last segment), τ = %d', async (temperature) => {
    const scenes = heldOutScenes(world);
    const req = (i: number, seed: number, steps: number): InlineRequest => ({
      task: 't2i',
      prompt: caption(world, scenes[i]!),
      cfg: 1,
      temperature,
      steps,
      seed,
      cache: true,
    });
    const reqs = [req(0, 101, 64), req(7, 202, 64), req(13, 303, 40)];
    // the schedules: T = 40 ends on a 3-step segment (warmup 12, full steps …, 32, 37), T = 64 on a full one
    const c: CacheSettings = cache();
    expect(c.refreshInterval).toBe(segment.segmentSteps);
    const starts64 = segmentStarts(64, c);
    const starts40 = segmentStarts(40, c);
    expect(starts40.slice(-2)).toEqual([32, 37]);
    expect(starts64).toEqual(Array.from({ length: 64 }, (_, s) => s).filter((s) => isFullStep(s, 64, c)));

    const r = await bothPaths(reqs);
    for (const s of r.seqs) expect(masked(s)).toBe(0);
    expect(r.gpu).toEqual(r.host);
    // at most one run per segment: the sequences share every run (segments of different lengths in one run)
    expect(r.runs).toBeLessThanOrEqual(Math.max(starts64.length, starts40.length));
    // the CPU path needed a call per full step and two per partial step
    expect(r.hostCalls).toBeGreaterThan(2 * r.runs);
    if (temperature > 0) {
      // exactly keep_n go back each step, so nobody finishes early: one run per segment of the longest schedule, with
      // all three sequences until the 40-step one is done, each run as long as its longest segment
      expect(r.runs).toBe(starts64.length);
      expect(r.runnerCalls.map((call) => call.sequences)).toEqual(starts64.map((_, i) => (i < starts40.length ? 3 : 2)));
      const longest = (i: number) => Math.max(segmentLength(starts64[i]!, 64, c), i < starts40.length ? segmentLength(starts40[i]!, 40, c) : 0);
      expect(r.runnerCalls.map((call) => call.steps)).toEqual(starts64.map((_, i) => longest(i)));
    }
  });

  it.each([1, 0])('i2i edit (three branches) and inpainting, 24 steps, τ = %d', async (temperature) => {
    const scene = (i: number) => heldOutScenes(world)[i]!;
    const image = render(world, scene(3));
    const mask = new Uint8Array(world.size * world.size);
    for (let y = 0; y < world.size; y++) for (let x = 0; x < world.size; x++) mask[y * world.size + x] = x >= 32 && x < 96 && y >= 16 ? 1 : 0;
    const common = { temperature, steps: 24, cache: true as const };
    const reqs: InlineRequest[] = [
      { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [image], cfg: 1, cfgImage: 0.5, seed: 7, ...common },
      { task: 'i2i', editType: 'edit', prompt: 'move it to the bottom', images: [render(world, scene(9))], cfg: 1, cfgImage: 1, seed: 8, ...common },
      { task: 'paint', prompt: caption(world, scene(5)), image, mask, cfg: 1, seed: 9, ...common },
    ];
    const r = await bothPaths(reqs);
    for (const s of r.seqs) expect(masked(s)).toBe(0);
    expect(r.gpu).toEqual(r.host);
    // 24 steps: warmup 7 → full steps 0…7, 12, 17, 22: 11 segments; i2i and paint rows differ in length, two groups
    expect(segmentStarts(24, cache())).toHaveLength(11);
    expect(r.runs).toBeLessThanOrEqual(2 * 11);
  });

  it('without ML-Cache every run is one full step and still equals the CPU path', async () => {
    const reqs: InlineRequest[] = [0, 1].map((i) => ({
      task: 't2i',
      prompt: caption(world, heldOutScenes(world)[i + 20]!),
      cfg: 1,
      temperature: 1,
      steps: 12,
      seed: 40 + i,
      cache: false,
    }));
    const r = await bothPaths(reqs);
    expect(r.gpu).toEqual(r.host);
    expect(r.runs).toBe(12);
  });

  /** i2i from a noise image: an input far from the toy world, where the tiny model's partial steps change tokens. */
  const noiseEdits = (c: CacheSettings | null): InlineRequest[] => {
    let x = 12345;
    const next = () => ((x = (x * 1103515245 + 12345) % 2147483648), Math.floor((x / 2147483648) * 256));
    const noise = { width: world.size, height: world.size, data: Uint8Array.from({ length: world.size * world.size * 3 }, next) };
    return [5, 6].map((seed) => ({
      task: 'i2i',
      editType: 'edit',
      prompt: 'make it blue',
      images: [noise],
      cfg: 2,
      cfgImage: 1,
      temperature: 1,
      steps: 32,
      seed,
      cache: c ?? false,
    }));
  };

  it('i2i from a noise image, where ML-Cache changes the result', async () => {
    const r = await bothPaths(noiseEdits(cache()));
    expect(r.gpu).toEqual(r.host);
    expect(r.runs).toBe(segmentStarts(32, cache()).length);
  });

  it('the comparison can fail: other partial steps on the segment path give other tokens there', async () => {
    const host = await Promise.all(noiseEdits(cache()).map((r, i) => prepare(model, `h${i}`, inlineJob(model.manifest, r))));
    await newEngine(model).run(host);
    const tokens = (seqs: Sequence[]) => seqs.map((s) => Array.from(s.region));
    for (const other of [{ ...cache(), cacheRatio: 0.5 }, null]) {
      const gpu = await Promise.all(noiseEdits(other).map((r, i) => prepare(model, `g${i}`, inlineJob(model.manifest, r))));
      await newSegmentRunner(segment, model.manifest).run(gpu);
      expect(tokens(gpu)).not.toEqual(tokens(host));
    }
  });

  it('refuses what the graph cannot run', async () => {
    const runner = newSegmentRunner(segment, model.manifest);
    const long = await prepare(
      model,
      'long',
      inlineJob(model.manifest, {
        task: 't2i',
        prompt: 'a red circle at the top left',
        cfg: 1,
        steps: 64,
        seed: 1,
        cache: { ...cache(), refreshInterval: 8 },
      }),
    );
    expect(() => runner.add(long)).toThrow(/segment of 8 steps does not fit the graph's 5/);
    const mmu = await prepare(
      model,
      'mmu',
      inlineJob(model.manifest, {
        task: 'mmu',
        question: 'what shape is it ?',
        image: render(world, heldOutScenes(world)[0]!),
        seed: 1,
        cache: true,
      }),
    );
    expect(() => runner.add(mmu)).toThrow(/MaskGIT rule only/);
  });
});

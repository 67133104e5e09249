/**
 * Quality of the tiny model through the production engine on the held-out attribute combinations (never seen in
 * training), judged by the pixel checker of testing/toy-world.ts — which must itself be right on ground truth and
 * fail on shuffled captions. Greedy, no guidance: the defaults of the tiny manifest.
 */
import type { Sequence } from '@dimoo/diffusion';
import { regionCodes } from '@dimoo/diffusion';
import { fromPlanar, toPlanar } from './vq';
import type { LoadedModel, TaskResult } from './pipeline';
import { finish, loadModel, newEngine, prepare, releaseModel } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';
import { inlineJob } from './testing/requests';
import type { Scene, ToyWorld } from './testing/toy-world';
import { allScenes, caption, check, heldOutScenes, loadWorld, render } from './testing/toy-world';

let model: LoadedModel;
let world: ToyWorld;
const report: Record<string, string> = {};

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
  world = await loadWorld(TEST_MODEL_DIR);
});

afterAll(async () => {
  await releaseModel(model);
  console.log(
    `tiny-model quality (held-out combinations):\n${Object.entries(report)
      .map(([k, v]) => `  ${k}: ${v}`)
      .join('\n')}`,
  );
});

const rate = (hits: number, n: number) => `${hits}/${n} = ${((100 * hits) / n).toFixed(1)}%`;
const same = (a: Scene | null, b: Scene) => a !== null && a.colour === b.colour && a.shape === b.shape && a.position === b.position;

async function runAll(seqs: Sequence[]): Promise<TaskResult[]> {
  await newEngine(model).run(seqs);
  return Promise.all(seqs.map((s) => finish(model, s)));
}

function image(r: TaskResult) {
  if (r.kind !== 'image') throw new Error('expected an image');
  return r;
}

describe('pixel checker', () => {
  it('reads every ground-truth image right and fails on shuffled captions', () => {
    const scenes = allScenes(world);
    const right = scenes.filter((s) => same(check(world, render(world, s)), s)).length;
    expect(right / scenes.length).toBeGreaterThanOrEqual(0.98);
    const shuffled = scenes.map((_, i) => scenes[(i * 7 + 3) % scenes.length]!);
    const agree = scenes.filter((s, i) => same(check(world, render(world, s)), shuffled[i]!)).length;
    expect(agree / scenes.length).toBeLessThan(0.1);
    report['checker on ground truth'] = rate(right, scenes.length);
  });
});

describe('text-to-image on held-out captions', () => {
  let read: (Scene | null)[] = [];
  let scenes: Scene[] = [];
  const score = (k: keyof Scene) => read.filter((r, i) => r?.[k] === scenes[i]![k]).length;

  beforeAll(async () => {
    scenes = heldOutScenes(world);
    const seqs = await Promise.all(
      scenes.map((s, i) => prepare(model, `t${i}`, inlineJob(model.manifest, { task: 't2i', prompt: caption(world, s), seed: 1000 + i }))),
    );
    read = (await runAll(seqs)).map((r) => check(world, image(r).rgb));
    report['t2i colour'] = rate(score('colour'), scenes.length);
    report['t2i position'] = rate(score('position'), scenes.length);
    report['t2i shape'] = rate(score('shape'), scenes.length);
  });

  it('gets position ≥ 90% and shape ≥ 75% on ≥ 50 held-out prompts', () => {
    expect(scenes.length).toBeGreaterThanOrEqual(50);
    expect(score('position') / scenes.length).toBeGreaterThanOrEqual(0.9);
    expect(score('shape') / scenes.length).toBeGreaterThanOrEqual(0.75);
  });

  it('gets colour ≥ 95%', () => {
    expect(score('colour') / scenes.length).toBeGreaterThanOrEqual(0.95);
  });
});

describe('understanding on held-out images', () => {
  it('answers ≥ 90% of colour, shape and position questions right', async () => {
    const scenes = heldOutScenes(world);
    const asks = scenes.flatMap((s) => Object.entries(world.questions).map(([question, kind]) => ({ s, question, kind })));
    const seqs = await Promise.all(
      asks.map((a, i) => prepare(model, `q${i}`, inlineJob(model.manifest, { task: 'mmu', question: a.question, image: render(world, a.s), seed: i }))),
    );
    const answers = (await runAll(seqs)).map((r) => (r.kind === 'text' ? r.text : ''));
    const right = asks.filter((a, i) => answers[i] === a.s[a.kind]).length;
    report['understanding'] = rate(right, asks.length);
    expect(right / asks.length).toBeGreaterThanOrEqual(0.9);
  });
});

describe('editing into held-out combinations', () => {
  it('succeeds on ≥ 80% of edits (every attribute right)', async () => {
    const held = new Set(heldOutScenes(world).map((s) => `${s.colour}|${s.shape}|${s.position}`));
    const edits: { from: Scene; to: Scene; instruction: string }[] = [];
    for (const to of heldOutScenes(world)) {
      for (const kind of ['colour', 'shape', 'position'] as const) {
        const values = kind === 'colour' ? world.colourOrder : kind === 'shape' ? world.shapes : world.positionOrder;
        const from = values.map((v) => ({ ...to, [kind]: v })).find((s) => s[kind] !== to[kind] && !held.has(`${s.colour}|${s.shape}|${s.position}`));
        if (from) edits.push({ from, to, instruction: world.edits[kind].replace(`{${kind}}`, to[kind]) });
      }
    }
    const chosen = edits.filter((_, i) => i % 2 === 0);
    expect(chosen.length).toBeGreaterThanOrEqual(60);
    const seqs = await Promise.all(
      chosen.map((e, i) =>
        prepare(model, `e${i}`, inlineJob(model.manifest, { task: 'i2i', editType: 'edit', prompt: e.instruction, images: [render(world, e.from)], seed: i })),
      ),
    );
    const read = (await runAll(seqs)).map((r) => check(world, image(r).rgb));
    const right = chosen.filter((e, i) => same(read[i]!, e.to)).length;
    report['edits'] = rate(right, chosen.length);
    expect(right / chosen.length).toBeGreaterThanOrEqual(0.8);
  });
});

describe('inpainting with an arbitrary pixel mask', () => {
  it('changes no token outside the masked cells and keeps the VQ reconstruction there', async () => {
    const scenes = heldOutScenes(world).slice(0, 18);
    const size = world.size;
    const gf = world.gridFactor;
    // an irregular blob over the shape's box: the cells more than half covered are regenerated
    const maskFor = (s: Scene) => {
      const [bx, by] = world.positions[s.position]!;
      const m = new Uint8Array(size * size);
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) m[y * size + x] = (x - bx - 16) ** 2 / 30 ** 2 + (y - by - 16) ** 2 / 26 ** 2 < 1 ? 1 : 0;
      return m;
    };
    // the canvas shows another colour and shape at the same place; the caption asks for the held-out one
    const canvasOf = (s: Scene) => ({
      ...s,
      colour: world.colourOrder[(world.colourOrder.indexOf(s.colour) + 1) % 6]!,
      shape: world.shapes[(world.shapes.indexOf(s.shape) + 1) % 3]!,
    });
    const seqs = await Promise.all(
      scenes.map((s, i) =>
        prepare(
          model,
          `i${i}`,
          inlineJob(model.manifest, { task: 'paint', prompt: caption(world, s), image: render(world, canvasOf(s)), mask: maskFor(s), seed: i }),
        ),
      ),
    );
    const initial = seqs.map((s) => Int32Array.from(s.region));
    const results = (await runAll(seqs)).map(image);
    let redrawn = 0;
    for (const [i, s] of scenes.entries()) {
      const seq = seqs[i]!;
      const cols = size / gf;
      const before = regionCodes(model.layout, initial[i]!, cols, cols);
      const input = await model.vq.encode(toPlanar(render(world, canvasOf(s))));
      const recon = fromPlanar(await model.vq.decode(input));
      const out = results[i]!;
      let masked = 0;
      before.forEach((code, cell) => {
        if (code < 0) {
          masked++;
          return;
        }
        expect(out.codes[cell]).toBe(input.codes[cell]);
        const [r, c] = [Math.floor(cell / cols), cell % cols];
        for (let y = r * gf; y < (r + 1) * gf; y++) {
          const o = (y * size + c * gf) * 3;
          expect(Buffer.from(out.rgb.data.subarray(o, o + gf * 3)).equals(Buffer.from(recon.data.subarray(o, o + gf * 3)))).toBe(true);
        }
      });
      expect(masked).toBeGreaterThan(0);
      expect(seq.done).toBe(true);
      if (same(check(world, out.rgb), s)) redrawn++;
    }
    // how often the hole shows the captioned scene is a model-quality figure (colour-limited like t2i), reported only
    report['inpainting redraws the captioned scene'] = rate(redrawn, scenes.length);
  });
});

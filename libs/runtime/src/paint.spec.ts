/**
 * Retouching leaves the rest untouched (issue 13): a paint job's result is the input image, pixel for pixel, outside
 * the regenerated token cells (a hard seam on the cell grid), and the model's pixels inside them. The input is noise,
 * which the VQ cannot reconstruct: the plain re-decode differs from it outside the mask, so keeping the input there is
 * not an accident of the decoder.
 */
import type { RgbImage } from '@dimoo/model';
import { cellsToGrid, decodeImage } from '@dimoo/model';
import type { LoadedModel } from './pipeline';
import { encodeResult, finish, loadModel, newEngine, prepare, releaseModel } from './pipeline';
import { TEST_MODEL_DIR } from './testing/model-dir';
import { inlineJob } from './testing/requests';
import { fromPlanar, toPlanar } from './vq';

let model: LoadedModel;

afterAll(() => releaseModel(model));

beforeAll(async () => {
  model = await loadModel(TEST_MODEL_DIR, { provider: 'cpu', allowCpuFallback: false });
});

/** Random per-pixel RGB from a fixed seed (mulberry32). */
function noise(width: number, height: number, seed: number): RgbImage {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % 256;
  };
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, next) };
}

describe('paint keeps the input outside the regenerated cells', () => {
  it('returns the input pixels exactly outside the regenerated cells (RGB and PNG) and new pixels inside them', async () => {
    const { defaultWidth: W, defaultHeight: H, gridFactor: g } = model.manifest.image;
    const cols = W / g;
    const input = noise(W, H, 20261130);
    // the mask: a block of whole cells (rows 2–4, columns 3–5), plus a sliver less than half a cell wide to the left of
    // it, which selects no cell and so keeps the input (the seam is the cell grid, not the mask's pixels)
    const mask = new Uint8Array(W * H);
    for (let y = 2 * g; y < 5 * g; y++) for (let x = 3 * g - g / 4; x < 6 * g; x++) mask[y * W + x] = 1;
    const job = inlineJob(model.manifest, { task: 'paint', prompt: 'a red circle at the center', image: input, mask, steps: 8, seed: 7 });
    if (job.job.task !== 'paint') throw new Error('expected a paint job');
    const regenerate = cellsToGrid(job.job.regenerate);
    const inCell = (x: number, y: number) => regenerate[Math.floor(y / g) * cols + Math.floor(x / g)]!;
    const block = (cell: number) => Math.floor(cell / cols) >= 2 && Math.floor(cell / cols) < 5 && cell % cols >= 3 && cell % cols < 6;
    expect(regenerate).toEqual(Array.from({ length: (H / g) * cols }, (_, cell) => block(cell)));

    // pixel bytes outside / inside the regenerated cells where `a` and `b` differ
    const diff = (a: RgbImage, b: RgbImage) => {
      const out = { outside: 0, inside: 0 };
      for (let i = 0; i < W * H; i++) {
        if (a.data.subarray(i * 3, i * 3 + 3).some((v, c) => v !== b.data[i * 3 + c])) out[inCell(i % W, Math.floor(i / W)) ? 'inside' : 'outside']++;
      }
      return out;
    };

    // the test can fail: the VQ's own re-decode of the input is not the input outside the mask
    const redecoded = fromPlanar(await model.vq.decode(await model.vq.encode(toPlanar(input))));
    expect(diff(redecoded, input).outside).toBeGreaterThan((W * H - 9 * g * g) / 2);

    const seq = await prepare(model, 'paint', job);
    await newEngine(model).run([seq]);
    const result = await finish(model, seq);
    if (result.kind !== 'image') throw new Error('expected an image');
    expect([result.width, result.height]).toEqual([W, H]);

    // outside the regenerated cells: the input, exactly (including the masked sliver of unselected cells)
    expect(diff(result.rgb, input).outside).toBe(0);
    // inside: the decoder's pixels of the sampled codes, which are not the input in any regenerated cell
    const decoded = fromPlanar(await model.vq.decode({ rows: H / g, cols, codes: result.codes }));
    expect(diff(result.rgb, decoded).inside).toBe(0);
    regenerate.forEach((on, cell) => {
      if (!on) return;
      const y0 = Math.floor(cell / cols) * g;
      const x0 = (cell % cols) * g;
      let changed = 0;
      for (let y = y0; y < y0 + g; y++) for (let x = x0; x < x0 + g; x++) if (result.rgb.data[(y * W + x) * 3] !== input.data[(y * W + x) * 3]) changed++;
      expect([cell, changed > (g * g) / 2]).toEqual([cell, true]);
    });

    // the job's result object (PNG, the job's default format here) carries the same pixels
    const { bytes, contentType } = await encodeResult(job.job, result.rgb);
    expect(contentType).toBe('image/png');
    const png = await decodeImage(bytes);
    expect(diff(png, input).outside).toBe(0);
    expect(Buffer.from(png.data).equals(Buffer.from(result.rgb.data))).toBe(true);
  });
});

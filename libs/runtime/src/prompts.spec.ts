/**
 * The prompts of every image-to-image kind (spec §1.2, §2.4): the system prompt each editType selects, the user
 * sentence (the request's, or the model's own for style, dense and multiView), and on the twin (the real tokenizer and
 * VQ) the sequence `prepare` builds from them: `tok(SYS, USER)[:-1]`, the input image blocks in request order,
 * `</user>`, then the answer. The expected strings are the spec's, written out here, not read from the manifest.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { EditType, ModelManifest } from '@dimoo/contracts';
import { DENSE_TARGETS, ManifestSchema, VIEWS } from '@dimoo/contracts';
import { imageBlock } from '@dimoo/diffusion';
import type { RgbImage } from '@dimoo/model';
import { promptIds } from '@dimoo/model';
import type { LoadedModel } from './pipeline';
import { loadModel, prepare } from './pipeline';
import type { I2iJob } from './prompts';
import { DENSE_TARGET_PHRASES, editPrompts } from './prompts';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { TWIN_DIR, twinAvailable } from './testing/twin-dir';
import { toPlanar } from './vq';

/** spec §1.2, verbatim */
const SYS: Record<EditType, string> = {
  edit: 'Generate an image applying the following editing instruction based on the original image.',
  subject: 'Generate an image according to the text prompt and the given object image.',
  control: 'Generate an image according to the text prompt and the given control image.',
  style: 'Transform the current image into the style of the provided image.',
  dense: 'Perform dense prediction on the given images.',
  multiView: 'Generate a view-image based on the given image.',
};
/** the reference's fallback, which its `*_pred` types hit (spec §1.2): never chosen here */
const FALLBACK = 'Generate an image according to the prompt and image.';

describe('editPrompts: the system and user prompt of each image-to-image kind', () => {
  let manifest: ModelManifest;
  beforeAll(async () => {
    manifest = ManifestSchema.parse(JSON.parse(await readFile(resolve(__dirname, '../../../models/tiny/manifest.json'), 'utf8')));
  });
  const job = (j: Pick<I2iJob, 'editType' | 'prompt' | 'target' | 'view'>) => j as I2iJob;

  it("takes the request's prompt for edit, subject and control, and the manifest's system prompt of the kind", () => {
    for (const editType of ['edit', 'subject', 'control'] as const) {
      expect(editPrompts(manifest.templates.sys, job({ editType, prompt: 'a cat on a mat' }))).toEqual({ system: SYS[editType], user: 'a cat on a mat' });
    }
  });

  it('style: the system sentence is the user prompt too (the request prompt is not used)', () => {
    expect(editPrompts(manifest.templates.sys, job({ editType: 'style', prompt: 'ignored' }))).toEqual({ system: SYS.style, user: SYS.style });
  });

  it("dense: the dense system prompt and the model's sentence for each target (segmentation is the sam2 mask)", () => {
    const phrases = {
      canny: 'canny edge map',
      hed: 'hed edge map',
      depth: 'depth map',
      normal: 'normal map',
      pose: 'pose estimation map',
      segmentation: 'sam2 mask',
    };
    expect(DENSE_TARGET_PHRASES).toEqual(phrases);
    for (const target of DENSE_TARGETS) {
      const p = editPrompts(manifest.templates.sys, job({ editType: 'dense', target }));
      expect(p).toEqual({ system: SYS.dense, user: `Generate a ${phrases[target]} according to the image.` });
      expect(p.system).not.toBe(FALLBACK);
    }
  });

  it('multiView: the view system prompt and the view named in the user sentence', () => {
    for (const view of VIEWS) {
      expect(editPrompts(manifest.templates.sys, job({ editType: 'multiView', view }))).toEqual({
        system: SYS.multiView,
        user: `Generate the ${view} view based on the provided front view.`,
      });
    }
  });

  it('names the missing field of a job that lacks it (resolveJob and the stored schema never let one through)', () => {
    expect(() => editPrompts(manifest.templates.sys, job({ editType: 'dense' }))).toThrow('target: is required for editType dense');
    expect(() => editPrompts(manifest.templates.sys, job({ editType: 'edit' }))).toThrow('prompt: is required for editType edit');
  });
});

const run = twinAvailable() ? describe : describe.skip;

run('prepare on the twin: the sequence of every image-to-image kind', () => {
  let model: LoadedModel;
  const IDS = { endUser: 126343, boa: 126354, boi: 126349, eoi: 126350 };
  const solid = (width: number, height: number, rgb: [number, number, number]): RgbImage => {
    const data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      data.set(
        rgb.map((c, k) => (c + 7 * (i % width) + 3 * k) % 256),
        i * 3,
      );
    }
    return { width, height, data };
  };
  const content = solid(64, 64, [200, 40, 40]);
  const styleRef = solid(64, 32, [30, 60, 220]);

  beforeAll(async () => {
    model = await loadModel(join(TWIN_DIR, 'fp32'), { provider: 'cpu', allowCpuFallback: false });
  });

  const block = async (img: RgbImage) => Array.from(imageBlock(model.layout, await model.vq.encode(toPlanar(img))));
  const tok = (sys: string, user: string) => Array.from(promptIds(model.tokenizer, model.manifest, sys, user));

  it.each<[string, InlineRequest, string, string]>([
    ['subject', { task: 'i2i', editType: 'subject', prompt: 'the mug on a beach', images: [content] }, SYS.subject, 'the mug on a beach'],
    ['control', { task: 'i2i', editType: 'control', prompt: 'a castle at dusk', images: [content] }, SYS.control, 'a castle at dusk'],
    ['style', { task: 'i2i', editType: 'style', prompt: 'x', images: [content, styleRef] }, SYS.style, SYS.style],
    ['dense', { task: 'i2i', editType: 'dense', target: 'normal', images: [content] }, SYS.dense, 'Generate a normal map according to the image.'],
    [
      'multiView',
      { task: 'i2i', editType: 'multiView', view: 'left', images: [content] },
      SYS.multiView,
      'Generate the left view based on the provided front view.',
    ],
  ])('%s', async (_name, req, sys, user) => {
    if (req.task !== 'i2i') throw new Error('i2i only');
    const seq = await prepare(model, 'p', inlineJob(model.manifest, { ...req, steps: 2, cfg: 2.5, cfgImage: 4, seed: 1 }));
    const blocks = (await Promise.all(req.images.map(block))).flat();
    const withImages = (p: number[]) => [...p.slice(0, -1), ...blocks, ...p.slice(-1), IDS.boa, IDS.boi];
    const [cond, uncondText, uncondImage] = seq.spec.branches.map((b) => Array.from(b.prefix));
    expect(cond).toEqual(withImages(tok(sys, user)));
    expect(uncondText).toEqual(withImages(tok(sys, '<uncondition>')));
    expect(uncondImage).toEqual([...tok(sys, user), IDS.boa, IDS.boi]);
    // readable: the text the model is given
    const text = model.tokenizer.decode(cond!.slice(0, cond!.indexOf(IDS.boi)));
    expect(text).toContain(sys);
    expect(text).toContain(user);
    // the output has the size of the last input image
    const last = req.images.at(-1)!;
    expect(seq.spec.targets.length).toBe((last.width / 16) * (last.height / 16));
  });

  it('style: the content image block comes before the style image block (and the two differ)', async () => {
    const [a, b] = [await block(content), await block(styleRef)];
    expect(a).not.toEqual(b);
    const seq = await prepare(
      model,
      's',
      inlineJob(model.manifest, { task: 'i2i', editType: 'style', prompt: 'x', images: [content, styleRef], steps: 2, seed: 1 }),
    );
    const cond = Array.from(seq.spec.branches[0]!.prefix);
    const at = (x: number[]) => cond.findIndex((_, i) => x.every((v, k) => cond[i + k] === v));
    expect(at(a)).toBeGreaterThan(0);
    expect(at(b)).toBe(at(a) + a.length);
    expect(cond[at(b) + b.length]).toBe(IDS.endUser);
    expect(cond[at(a) - 1]).not.toBe(IDS.eoi);
  });
});

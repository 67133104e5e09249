import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { JobRequestSchema } from './jobs';
import type { ModelManifest } from './manifest';
import { ManifestSchema } from './manifest';
import { resolveJob } from './resolve';

const manifest: ModelManifest = ManifestSchema.parse(JSON.parse(readFileSync(resolve(__dirname, '../../../models/tiny/manifest.json'), 'utf8')));
const parse = (body: unknown) => JobRequestSchema.safeParse(body);
// every input image decodes to the model's default size: these cases are about the other fields
const size = { height: manifest.image.defaultHeight, width: manifest.image.defaultWidth };
const fields = (body: unknown) => {
  const r = parse(body);
  if (!r.success) return r.error.issues.map((i) => i.path.join('.'));
  const images = 'images' in r.data ? r.data.images.length : 'image' in r.data ? 1 : 0;
  const resolved = resolveJob(r.data, manifest, { inputs: Array.from({ length: images }, () => size), seed: 1 });
  return resolved.ok ? [] : resolved.issues.map((i) => i.field);
};

describe('job requests', () => {
  it('accepts a minimal text-to-image request and fills nothing in', () => {
    const r = parse({ task: 't2i', prompt: '  a red circle  ' });
    expect(r.success && r.data).toEqual({ task: 't2i', prompt: 'a red circle' });
  });

  it('names the field of every shape error', () => {
    expect(fields({ task: 't2i' })).toEqual(['prompt']);
    expect(fields({ task: 't2i', prompt: '' })).toEqual(['prompt']);
    expect(fields({ task: 'video', prompt: 'x' })).toEqual(['task']);
    expect(fields({ task: 't2i', prompt: 'x', seed: -1 })).toEqual(['seed']);
    expect(fields({ task: 'i2i', prompt: 'x', editType: 'edit', images: [] })).toEqual(['images']);
    expect(fields({ task: 'mmu', question: 'q', image: 'not base64!' })).toEqual(['image']);
  });

  it("checks sizes, steps and guidance against the served model's manifest", () => {
    const g = manifest.image.gridFactor;
    expect(fields({ task: 't2i', prompt: 'x', height: g * 8 - 1 })).toEqual(['height']);
    expect(fields({ task: 't2i', prompt: 'x', width: manifest.image.maxSize + g })).toEqual(['width']);
    expect(fields({ task: 't2i', prompt: 'x', steps: manifest.limits.maxSteps + 1 })).toEqual(['steps']);
    expect(fields({ task: 't2i', prompt: 'x', cfg: manifest.limits.maxCfg + 1 })).toEqual(['cfg']);
    expect(fields({ task: 't2i', prompt: 'x', height: manifest.image.defaultHeight, steps: 8, cfg: 1 })).toEqual([]);
  });

  it('checks the understanding block layout', () => {
    expect(fields({ task: 'mmu', question: 'q', image: 'AAAA', genLength: 8, blockLength: 3 })).toEqual(['blockLength']);
    expect(fields({ task: 'mmu', question: 'q', image: 'AAAA', genLength: 8, blockLength: 4, steps: 3 })).toEqual(['steps']);
    expect(fields({ task: 'mmu', question: 'q', image: 'AAAA', genLength: manifest.limits.maxGenLength + 1 })).toEqual(['genLength']);
  });

  it('takes a prompt, a dense-prediction target or a view, as the editType says, refusing the others by name', () => {
    const i2i = { task: 'i2i', images: ['AAAA'] };
    expect(fields({ ...i2i, editType: 'dense', target: 'depth' })).toEqual([]);
    expect(fields({ ...i2i, editType: 'multiView', view: 'back' })).toEqual([]);
    expect(fields({ ...i2i, editType: 'dense' })).toEqual(['target']);
    expect(fields({ ...i2i, editType: 'dense', target: 'sketch' })).toEqual(['target']);
    expect(fields({ ...i2i, editType: 'dense', target: 'depth', prompt: 'x' })).toEqual(['prompt']);
    expect(fields({ ...i2i, editType: 'multiView' })).toEqual(['view']);
    expect(fields({ ...i2i, editType: 'multiView', view: 'front' })).toEqual(['view']);
    expect(fields({ ...i2i, editType: 'multiView', view: 'back', target: 'depth' })).toEqual(['target']);
    expect(fields({ ...i2i, editType: 'subject' })).toEqual(['prompt']);
    expect(fields({ ...i2i, editType: 'control', prompt: 'x', view: 'back' })).toEqual(['view']);
    const r = parse({ ...i2i, editType: 'dense', prompt: 'x' });
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['prompt', "is not taken by editType dense: its user prompt is the model's own for the target"],
      ['target', 'is required for editType dense'],
    ]);
    expect(fields({ ...i2i, images: ['AAAA', 'AAAA'], editType: 'dense', target: 'depth' })).toEqual(['images']);
  });

  it('needs a style image for style transfer', () => {
    expect(fields({ task: 'i2i', prompt: 'x', editType: 'style', images: ['AAAA'] })).toEqual(['images']);
  });
});

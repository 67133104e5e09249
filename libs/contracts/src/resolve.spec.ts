import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LocalRequest } from './jobs';
import { JobRequestSchema } from './jobs';
import type { ModelManifest } from './manifest';
import { ManifestSchema } from './manifest';
import type { ImageSize, ResolveContext, ResolvedJob } from './resolve';
import { parseStoredJob, RESOLVED_JOB_VERSION, resolveJob, resultFormat, STORED_JOB_MIGRATIONS } from './resolve';

const tiny: ModelManifest = ManifestSchema.parse(JSON.parse(readFileSync(resolve(__dirname, '../../../models/tiny/manifest.json'), 'utf8')));
// the tiny model serves one size; a manifest with a range of sizes and an aspect limit exercises those rules
const ranged: ModelManifest = { ...tiny, image: { ...tiny.image, minSize: 32, maxSize: 512, maxAspect: 2 } };
const sq = (n: number): ImageSize => ({ height: n, width: n });

const ok = (req: LocalRequest, m = tiny, ctx: Partial<ResolveContext> = {}): ResolvedJob => {
  const r = resolveJob(req, m, { seed: 99, ...ctx });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.job;
};
const issues = (req: LocalRequest, m = tiny, ctx: Partial<ResolveContext> = {}) => {
  const r = resolveJob(req, m, { seed: 99, ...ctx });
  return r.ok ? [] : r.issues.map((i) => `${i.field}: ${i.reason}`);
};
const cells = (n: number, on = '1') => on.repeat(n);

describe('resolveJob: defaults', () => {
  it("fills every default from the manifest, and the caller's seed", () => {
    const d = tiny.defaults.t2i;
    expect(ok({ task: 't2i', prompt: 'a red circle' })).toEqual({
      schemaVersion: RESOLVED_JOB_VERSION,
      task: 't2i',
      prompt: 'a red circle',
      size: { height: tiny.image.defaultHeight, width: tiny.image.defaultWidth },
      seed: 99,
      steps: d.steps,
      temperature: d.temperature,
      guidance: { kind: 'none' }, // the tiny model's default cfg is 0: one row, no guidance
      cache: null,
      previewEvery: null,
      priority: 'normal',
      outputFormat: 'png',
      n: 1,
      inputs: [],
      cost: { positionsPerStep: 8 * 9, steps: d.steps, units: 8 * 9 * d.steps },
    });
  });

  it('makes n images of an image task at n times the cost; an answer takes no n', () => {
    const one = ok({ task: 't2i', prompt: 'x' });
    const four = ok({ task: 't2i', prompt: 'x', n: 4 });
    expect(four).toMatchObject({ n: 4, cost: { positionsPerStep: 4 * one.cost.positionsPerStep, units: 4 * one.cost.units } });
    expect(JobRequestSchema.safeParse({ task: 't2i', prompt: 'x', n: 5 }).success).toBe(false);
    expect(JobRequestSchema.safeParse({ task: 'mmu', question: 'q', image: 'AAAA', n: 2 }).success).toBe(false);
  });

  it('keeps what the request says; cache true takes the model defaults; a guidance scale of 0 means none', () => {
    const job = ok({ task: 't2i', prompt: 'x', seed: 5, steps: 32, cfg: 2, temperature: 1, cache: true, previewEvery: 4, priority: 'high' });
    expect(job).toMatchObject({
      seed: 5,
      steps: 32,
      temperature: 1,
      guidance: { kind: 'text', scale: 2 },
      cache: tiny.defaults.cache,
      previewEvery: 4,
      priority: 'high',
    });
    expect(job.cost.positionsPerStep).toBe(2 * 8 * 9);
    const explicit = { cacheRatio: 0.5, warmupRatio: 0.1, refreshInterval: 3 };
    expect(ok({ task: 't2i', prompt: 'x', cache: explicit }).cache).toEqual(explicit);
    expect(ok({ task: 'i2i', prompt: 'x', editType: 'edit', cfg: 0, cfgImage: 0 }, tiny, { inputs: [sq(128)] }).guidance).toEqual({ kind: 'none' });
    expect(ok({ task: 'i2i', prompt: 'x', editType: 'edit', cfg: 0, cfgImage: 1 }, tiny, { inputs: [sq(128)] }).guidance).toEqual({
      kind: 'dual',
      text: 0,
      image: 1,
    });
  });

  it('resolves every image-to-image kind: the prompt, dense target or view it takes, the output of the last input', () => {
    const d = tiny.defaults.i2i;
    const common = { schemaVersion: RESOLVED_JOB_VERSION, task: 'i2i', size: sq(128), inputs: [sq(128)], steps: d.steps, outputFormat: 'png' };
    for (const editType of ['edit', 'subject', 'control'] as const) {
      expect(ok({ task: 'i2i', prompt: 'make it blue', editType }, tiny, { inputs: [sq(128)] })).toMatchObject({ ...common, editType, prompt: 'make it blue' });
    }
    const style = ok({ task: 'i2i', prompt: 'x', editType: 'style' }, ranged, { inputs: [sq(64), { height: 32, width: 64 }] });
    expect(style).toMatchObject({ editType: 'style', size: { height: 32, width: 64 }, inputs: [sq(64), { height: 32, width: 64 }] });
    const dense = ok({ task: 'i2i', editType: 'dense', target: 'segmentation' }, tiny, { inputs: [sq(128)] });
    expect(dense).toMatchObject({ ...common, editType: 'dense', target: 'segmentation' });
    const multiView = ok({ task: 'i2i', editType: 'multiView', view: 'left' }, tiny, { inputs: [sq(128)] });
    expect(multiView).toMatchObject({ ...common, editType: 'multiView', view: 'left' });
    // only the field its kind takes is stored: no prompt, no undefined keys
    expect(Object.keys(dense).filter((k) => ['prompt', 'target', 'view'].includes(k))).toEqual(['target']);
    expect(Object.keys(multiView).filter((k) => ['prompt', 'target', 'view'].includes(k))).toEqual(['view']);
    // the same cost rule as every i2i job: three rows over the input block and the output block
    expect(dense.cost).toEqual(ok({ task: 'i2i', prompt: 'x', editType: 'edit' }, tiny, { inputs: [sq(128)] }).cost);
  });

  it('resolves understanding blocks and the painting mask', () => {
    const d = tiny.defaults.mmu;
    expect(ok({ task: 'mmu', question: 'q' }, tiny, { inputs: [sq(128)] })).toMatchObject({
      genLength: d.genLength,
      blockLength: Math.min(d.blockLength, d.genLength),
      steps: d.steps,
    });
    const paint = ok({ task: 'paint', prompt: 'x' }, tiny, { inputs: [sq(128)], mask: { size: sq(128), cells: '0'.repeat(63) + '1' } });
    expect(paint).toMatchObject({ task: 'paint', size: sq(128), inputs: [sq(128)], regenerate: '0'.repeat(63) + '1' });
  });
});

describe('resolveJob: every limit the manifest can predict is refused, naming the field', () => {
  it.each<[string, LocalRequest, Partial<ResolveContext>, string[]]>([
    ['steps', { task: 't2i', prompt: 'x', steps: tiny.limits.maxSteps + 1 }, {}, ['steps']],
    ['temperature', { task: 't2i', prompt: 'x', temperature: tiny.limits.maxTemperature + 1 }, {}, ['temperature']],
    ['cfg', { task: 't2i', prompt: 'x', cfg: tiny.limits.maxCfg + 1 }, {}, ['cfg']],
    ['cfgImage', { task: 'i2i', prompt: 'x', editType: 'edit', cfgImage: tiny.limits.maxCfg + 1 }, { inputs: [sq(128)] }, ['cfgImage']],
    ['height off the grid', { task: 't2i', prompt: 'x', height: 120 }, {}, ['height']],
    ['width out of range', { task: 't2i', prompt: 'x', width: 144 }, {}, ['width']],
    ['an undecodable image', { task: 'mmu', question: 'q' }, { inputs: [null] }, ['image']],
    ['an input image of the wrong size', { task: 'mmu', question: 'q' }, { inputs: [sq(64)] }, ['image']],
    ['a second input of the wrong size', { task: 'i2i', prompt: 'x', editType: 'subject' }, { inputs: [sq(128), sq(112)] }, ['images.1']],
    ['a mask of another size', { task: 'paint', prompt: 'x' }, { inputs: [sq(128)], mask: { size: { height: 128, width: 112 }, cells: cells(64) } }, ['mask']],
    ['a mask over no token cell', { task: 'paint', prompt: 'x' }, { inputs: [sq(128)], mask: { size: sq(128), cells: cells(64, '0') } }, ['mask']],
    ['style transfer without a style image', { task: 'i2i', prompt: 'x', editType: 'style' }, { inputs: [sq(128)] }, ['images']],
    ['dense prediction of two images', { task: 'i2i', editType: 'dense', target: 'depth' }, { inputs: [sq(128), sq(128)] }, ['images']],
    ['multi-view from two images', { task: 'i2i', editType: 'multiView', view: 'back' }, { inputs: [sq(128), sq(128)] }, ['images']],
    // the request schema refuses these first; an in-process caller's typed request is checked here too
    ['dense prediction without a target', { task: 'i2i', editType: 'dense' }, { inputs: [sq(128)] }, ['target']],
    ['dense prediction with a prompt', { task: 'i2i', editType: 'dense', target: 'hed', prompt: 'x' }, { inputs: [sq(128)] }, ['prompt']],
    ['multi-view without a view', { task: 'i2i', editType: 'multiView' }, { inputs: [sq(128)] }, ['view']],
    ['an edit without a prompt', { task: 'i2i', editType: 'edit' }, { inputs: [sq(128)] }, ['prompt']],
    ['a subject image with a target', { task: 'i2i', prompt: 'x', editType: 'subject', target: 'depth' }, { inputs: [sq(128)] }, ['target']],
    ['genLength', { task: 'mmu', question: 'q', genLength: tiny.limits.maxGenLength + 1 }, { inputs: [sq(128)] }, ['genLength']],
    ['blockLength', { task: 'mmu', question: 'q', genLength: 8, blockLength: 3 }, { inputs: [sq(128)] }, ['blockLength']],
    ['steps per block', { task: 'mmu', question: 'q', genLength: 8, blockLength: 4, steps: 3 }, { inputs: [sq(128)] }, ['steps']],
  ])('%s', (_name, req, ctx, expected) => {
    expect(issues(req, tiny, ctx).map((i) => i.split(':')[0])).toEqual(expected);
  });

  it('the aspect ratio, for generated and input images (checked only in the worker before: a 202 that then failed)', () => {
    expect(issues({ task: 't2i', prompt: 'x', height: 64, width: 192 }, ranged)).toEqual(['width: the aspect ratio must be at most 2:1']);
    expect(issues({ task: 't2i', prompt: 'x', height: 256, width: 64 }, ranged)).toEqual(['height: the aspect ratio must be at most 2:1']);
    expect(issues({ task: 't2i', prompt: 'x', height: 64, width: 128 }, ranged)).toEqual([]);
    expect(issues({ task: 'mmu', question: 'q' }, ranged, { inputs: [{ height: 32, width: 128 }] })).toEqual([
      'image: image is 128×32; the aspect ratio must be at most 2:1',
    ]);
  });

  it('reports every problem at once', () => {
    expect(issues({ task: 'mmu', question: 'q', steps: 9999, genLength: 99 }, tiny, { inputs: [null] }).map((i) => i.split(':')[0])).toEqual([
      'image',
      'steps',
      'genLength',
    ]);
    expect(issues({ task: 't2i', prompt: 'x', steps: 9999, height: 64, width: 192 }, ranged).map((i) => i.split(':')[0])).toEqual(['steps', 'width']);
  });

  it('refuses unknown request fields by name', () => {
    const r = JobRequestSchema.safeParse({ task: 't2i', prompt: 'x', stepz: 8 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['stepz'] });
  });
});

describe('parseStoredJob', () => {
  const job = ok({ task: 't2i', prompt: 'x', seed: 1 });

  it('reads the current version back unchanged (it is what the API stored: JSON in, JSON out)', () => {
    expect(parseStoredJob(JSON.parse(JSON.stringify(job)))).toEqual({ ok: true, job });
    // stored before jobs had a priority: normal
    const { priority: _, ...before } = job;
    expect(parseStoredJob(before)).toEqual({ ok: true, job: { ...job, priority: 'normal' } });
  });

  it('refuses a newer version, a version without a migration, and a row that does not parse, saying why', () => {
    const newer = parseStoredJob({ ...job, schemaVersion: RESOLVED_JOB_VERSION + 1 });
    expect(newer).toEqual({ ok: false, reason: expect.stringContaining('upgrade workers before the API') });
    const { schemaVersion: _, ...unversioned } = job;
    expect(parseStoredJob(unversioned)).toEqual({ ok: false, reason: expect.stringContaining('cannot migrate') });
    expect(parseStoredJob({ ...job, steps: -1 })).toEqual({ ok: false, reason: expect.stringContaining('steps') });
    expect(parseStoredJob('t2i')).toEqual({ ok: false, reason: 'the stored job is not an object' });
  });

  it('migrates an older version by its rule: version 1 image jobs made PNGs', () => {
    const { outputFormat: _, n: _n, ...v1 } = { ...(job as Extract<ResolvedJob, { task: 't2i' }>), schemaVersion: 1 };
    expect(parseStoredJob(v1)).toEqual({ ok: true, job });
    const mmu = ok({ task: 'mmu', question: 'q', seed: 1 }, tiny, { inputs: [sq(128)] });
    expect(parseStoredJob({ ...mmu, schemaVersion: 1 })).toEqual({ ok: true, job: mmu });
    // a chain of migrations runs in order
    const { schemaVersion: __, previewEvery: ___, ...v0 } = v1;
    const chain = {
      0: (old: Record<string, unknown>) => ({ ...old, previewEvery: null, schemaVersion: 1 }),
      1: STORED_JOB_MIGRATIONS[1]!,
      2: STORED_JOB_MIGRATIONS[2]!,
      3: STORED_JOB_MIGRATIONS[3]!,
    };
    expect(parseStoredJob(v0, chain)).toEqual({ ok: true, job });
  });

  it('migrates version 2 (before dense and multiView) unchanged; refuses a stored i2i job without the field its kind takes', () => {
    const edit = ok({ task: 'i2i', prompt: 'make it blue', editType: 'subject', seed: 1 }, tiny, { inputs: [sq(128)] });
    const { n: _n, ...v2 } = edit as Extract<ResolvedJob, { task: 'i2i' }>;
    expect(parseStoredJob({ ...v2, schemaVersion: 2 })).toEqual({ ok: true, job: edit });
    const dense = ok({ task: 'i2i', editType: 'dense', target: 'pose', seed: 1 }, tiny, { inputs: [sq(128)] });
    expect(parseStoredJob(JSON.parse(JSON.stringify(dense)))).toEqual({ ok: true, job: dense });
    const { target: _, ...noTarget } = dense as Extract<ResolvedJob, { task: 'i2i' }>;
    expect(parseStoredJob(noTarget)).toEqual({ ok: false, reason: expect.stringContaining('target: is required for editType dense') });
    // a version 2 worker cannot read these: it refuses them as newer ("upgrade workers before the API")
    expect(dense.schemaVersion).toBeGreaterThan(2);
  });

  it('resolves the result format: png unless asked, a content type per format, none for an answer', () => {
    expect(resultFormat(job)).toEqual({ format: 'png', contentType: 'image/png', extension: 'png' });
    expect(resultFormat(ok({ task: 't2i', prompt: 'x', outputFormat: 'webp' }))).toEqual({ format: 'webp', contentType: 'image/webp', extension: 'webp' });
    expect(resultFormat(ok({ task: 'i2i', prompt: 'x', editType: 'edit', outputFormat: 'jpeg' }, tiny, { inputs: [sq(128)] }))).toMatchObject({
      contentType: 'image/jpeg',
    });
    expect(resultFormat(ok({ task: 'mmu', question: 'q' }, tiny, { inputs: [sq(128)] }))).toBeNull();
    expect(JobRequestSchema.safeParse({ task: 'mmu', question: 'q', image: 'AAAA', outputFormat: 'png' }).success).toBe(false);
  });
});

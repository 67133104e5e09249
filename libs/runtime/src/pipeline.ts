/**
 * From a task request to a sampler sequence and back: tokenize the prompt with the model's template, VQ-encode input
 * images, build the task's sequence (libs/diffusion), and after sampling decode the image or the answer.
 */
import type { ModelManifest } from '@dimoo/contracts';
import type { CacheSettings, Guidance, SamplingParams, TokenLayout } from '@dimoo/diffusion';
import {
  answerTokens,
  DiffusionEngine,
  effectiveGuidance,
  imageToImage,
  InvalidSamplingRequest,
  maskToGrid,
  regionCodes,
  Sequence,
  textToImage,
  understanding,
} from '@dimoo/diffusion';
import type { RgbImage } from './image';
import { encodePng, fromPlanar, toPlanar } from './image';
import { loadManifest, modelChecksum, tokenLayout } from './manifest';
import { OnnxDenoiseModel } from './onnx-model';
import type { SessionOptions } from './session';
import type { TextTokenizer } from './tokenizer';
import { checkTokenizer, loadTokenizer, promptIds } from './tokenizer';
import { VqCodec } from './vq';

export type EditKind = 'edit' | 'subject' | 'control' | 'style';

interface Common {
  steps?: number;
  temperature?: number;
  seed: number;
  /** ML-Cache settings; `true` takes the manifest's defaults */
  cache?: CacheSettings | boolean | null;
  /** a preview image every this many steps (0: none; absent: the engine's default) */
  previewEvery?: number;
}

export type TaskRequest =
  | (Common & { task: 't2i'; prompt: string; height?: number; width?: number; cfg?: number })
  | (Common & { task: 'paint'; prompt: string; image: RgbImage; /** H·W, non-zero = regenerate */ mask: Uint8Array; cfg?: number })
  | (Common & { task: 'i2i'; prompt: string; kind: EditKind; images: RgbImage[]; cfg?: number; cfgImage?: number })
  | (Common & { task: 'mmu'; question: string; image: RgbImage; genLength?: number; blockLength?: number; cfg?: number });

export type TaskResult = { kind: 'image'; width: number; height: number; codes: Int32Array; rgb: RgbImage } | { kind: 'text'; text: string; tokens: number[] };

export interface LoadedModel {
  dir: string;
  manifest: ModelManifest;
  checksum: string;
  layout: TokenLayout;
  tokenizer: TextTokenizer;
  model: OnnxDenoiseModel;
  vq: VqCodec;
}

/**
 * Opens a model directory: the manifest (every file's sha256 checked unless `verify: false`), the tokenizer (checked
 * against the manifest's special-token ids and template rules: a mismatch refuses to load, spec §10), the graphs.
 */
export async function loadModel(dir: string, options: SessionOptions & { verify?: boolean }): Promise<LoadedModel> {
  const manifest = await loadManifest(dir, { verify: options.verify ?? true });
  const tokenizer = await loadTokenizer(dir, manifest);
  checkTokenizer(tokenizer, manifest);
  return {
    dir,
    manifest,
    checksum: modelChecksum(manifest),
    layout: tokenLayout(manifest),
    tokenizer,
    model: await OnnxDenoiseModel.open(dir, manifest, options),
    vq: await VqCodec.open(dir, manifest, options),
  };
}

export function newEngine(m: LoadedModel, maxRows = m.manifest.limits.maxBatchRows): DiffusionEngine {
  return new DiffusionEngine(m.model, { lengthBucket: m.manifest.lengthBucket, maxRows });
}

function checkSize(m: ModelManifest, field: string, height: number, width: number): void {
  const { gridFactor, minSize, maxSize, maxAspect } = m.image;
  for (const [name, v] of [
    ['height', height],
    ['width', width],
  ] as const) {
    if (!Number.isInteger(v) || v % gridFactor !== 0) throw new InvalidSamplingRequest(`${field}.${name}`, `must be a multiple of ${gridFactor}`);
    if (v < minSize || v > maxSize) throw new InvalidSamplingRequest(`${field}.${name}`, `must be in [${minSize}, ${maxSize}]`);
  }
  if (Math.max(height, width) / Math.min(height, width) > maxAspect) throw new InvalidSamplingRequest(field, `aspect ratio above ${maxAspect}`);
}

function cacheFor(m: ModelManifest, cache: Common['cache']): CacheSettings | null {
  return cache === true ? m.defaults.cache : cache || null;
}

/** Builds the sampler sequence for a request (VQ-encodes its input images). */
export async function prepare(m: LoadedModel, id: string, req: TaskRequest): Promise<Sequence> {
  const { manifest, tokenizer, layout } = m;
  const sys = manifest.templates.sys;
  const tok = (s: string, user: string) => promptIds(tokenizer, manifest, s, user);
  const encode = async (img: RgbImage, field: string) => {
    checkSize(manifest, field, img.height, img.width);
    return m.vq.encode(toPlanar(img));
  };
  switch (req.task) {
    case 't2i': {
      const d = manifest.defaults.t2i;
      const height = req.height ?? manifest.image.defaultHeight;
      const width = req.width ?? manifest.image.defaultWidth;
      checkSize(manifest, 'size', height, width);
      const guidance = effectiveGuidance({ kind: 'text', scale: req.cfg ?? d.cfg });
      const spec = textToImage(
        layout,
        {
          prompt: tok(sys.t2i, req.prompt),
          uncondPrompt: tok(sys.t2i, manifest.templates.uncondition),
          rows: height / manifest.image.gridFactor,
          cols: width / manifest.image.gridFactor,
        },
        guidance,
      );
      return new Sequence(id, layout, spec, params(req, d.steps, d.temperature, guidance, cacheFor(manifest, req.cache), { kind: 'maskgit' }));
    }
    case 'paint': {
      const d = manifest.defaults.t2i;
      const canvas = await encode(req.image, 'image');
      if (req.mask.length !== req.image.width * req.image.height) throw new InvalidSamplingRequest('mask', 'must match the image size');
      const regenerate = maskToGrid(req.mask, req.image.height, req.image.width, manifest.image.gridFactor);
      if (!regenerate.some(Boolean)) throw new InvalidSamplingRequest('mask', 'covers no token cell (a cell needs more than half its pixels masked)');
      const guidance = effectiveGuidance({ kind: 'text', scale: req.cfg ?? d.cfg });
      const spec = textToImage(
        layout,
        {
          prompt: tok(sys.t2i, req.prompt),
          uncondPrompt: tok(sys.t2i, manifest.templates.uncondition),
          rows: canvas.rows,
          cols: canvas.cols,
          canvas: { codes: canvas.codes, regenerate },
        },
        guidance,
      );
      return new Sequence(id, layout, spec, params(req, d.steps, d.temperature, guidance, cacheFor(manifest, req.cache), { kind: 'maskgit' }));
    }
    case 'i2i': {
      const d = manifest.defaults.i2i;
      if (req.images.length === 0) throw new InvalidSamplingRequest('images', 'needs at least one input image');
      const inputs = await Promise.all(req.images.map((img, i) => encode(img, `images.${i}`)));
      const out = inputs[inputs.length - 1]!;
      const system = sys[req.kind];
      const user = req.kind === 'style' ? sys.style : req.prompt;
      const guidance = effectiveGuidance({ kind: 'dual', text: req.cfg ?? d.cfg, image: req.cfgImage ?? d.cfgImage });
      const spec = imageToImage(
        layout,
        { prompt: tok(system, user), uncondPrompt: tok(system, manifest.templates.uncondition), rows: out.rows, cols: out.cols, inputs },
        guidance,
      );
      return new Sequence(id, layout, spec, params(req, d.steps, d.temperature, guidance, cacheFor(manifest, req.cache), { kind: 'maskgit' }));
    }
    case 'mmu': {
      const d = manifest.defaults.mmu;
      const image = await encode(req.image, 'image');
      const genLength = req.genLength ?? d.genLength;
      if (genLength > manifest.limits.maxGenLength) throw new InvalidSamplingRequest('genLength', `must be ≤ ${manifest.limits.maxGenLength}`);
      const guidance = effectiveGuidance({ kind: 'text', scale: req.cfg ?? d.cfg });
      const spec = understanding(layout, { prompt: tok(sys.mmu, req.question), image, genLength }, guidance);
      return new Sequence(
        id,
        layout,
        spec,
        params(req, d.steps, d.temperature, guidance, cacheFor(manifest, req.cache), {
          kind: 'llada',
          blockLength: req.blockLength ?? Math.min(d.blockLength, genLength),
          remasking: 'low_confidence',
        }),
      );
    }
  }
}

function params(
  req: Common,
  steps: number,
  temperature: number,
  guidance: Guidance,
  cache: CacheSettings | null,
  sampler: SamplingParams['sampler'],
): SamplingParams {
  return { steps: req.steps ?? steps, temperature: req.temperature ?? temperature, seed: req.seed, guidance, cache, sampler };
}

/** Decodes a finished sequence: the image (VQ decode) or the answer text. */
export async function finish(m: LoadedModel, seq: Sequence): Promise<TaskResult> {
  if (seq.params.sampler.kind === 'llada') {
    const tokens = answerTokens(m.layout, seq.region);
    return { kind: 'text', text: m.tokenizer.decode(tokens), tokens };
  }
  const cols = countCols(seq);
  const rows = seq.spec.targets.length / cols;
  const codes = regionCodes(m.layout, seq.region, rows, cols);
  if (codes.some((c) => c < 0)) throw new Error(`sequence ${seq.id} finished with masked cells`);
  const rgb = fromPlanar(await m.vq.decode({ rows, cols, codes }));
  return { kind: 'image', width: rgb.width, height: rgb.height, codes, rgb };
}

/** Preview cells still masked are drawn in this neutral grey. */
const PREVIEW_GREY = 128;

/**
 * A preview of an image sequence mid-sampling: the committed cells decoded, the still-masked cells grey, scaled to
 * fit `maxSide`. Null for understanding (its answer is text).
 */
export async function previewPng(m: LoadedModel, seq: Sequence, maxSide = 256): Promise<Buffer | null> {
  if (seq.params.sampler.kind === 'llada') return null;
  const cols = countCols(seq);
  const rows = seq.spec.targets.length / cols;
  const codes = regionCodes(m.layout, seq.region, rows, cols);
  const rgb = fromPlanar(await m.vq.decode({ rows, cols, codes: codes.map((c) => Math.max(c, 0)) }));
  const f = m.manifest.image.gridFactor;
  codes.forEach((c, cell) => {
    if (c >= 0) return;
    const y0 = Math.floor(cell / cols) * f;
    const x0 = (cell % cols) * f;
    for (let y = y0; y < y0 + f; y++) rgb.data.fill(PREVIEW_GREY, (y * rgb.width + x0) * 3, (y * rgb.width + x0 + f) * 3);
  });
  const scale = Math.min(1, maxSide / Math.max(rgb.width, rgb.height));
  return encodePng(rgb, scale < 1 ? { width: Math.round(rgb.width * scale), height: Math.round(rgb.height * scale) } : undefined);
}

/** Columns of an image region: the index of its first newline. */
function countCols(seq: Sequence): number {
  return seq.region.indexOf(seq.layout.newline);
}

export async function resultPng(result: Extract<TaskResult, { kind: 'image' }>): Promise<Buffer> {
  return encodePng(result.rgb);
}

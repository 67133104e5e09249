/**
 * From a resolved job (@dimoo/contracts ResolvedJob: every default and limit already applied) to a sampler sequence and
 * back: tokenize the prompt with the model's template, VQ-encode the input images, build the task's sequence
 * (libs/diffusion layout.ts), and after sampling decode the image or the answer. Nothing here decides a default.
 * In-process callers (CLI, tests, benchmarks) resolve their requests with `resolveLocal`, the API's resolution.
 */
import type { JobImages, LocalRequest, ModelManifest, ResolvedJob } from '@dimoo/contracts';
import { checkLimits, drawSeed, inputField, resultFormat, resolveJob } from '@dimoo/contracts';
import type { SamplingParams, TokenLayout } from '@dimoo/diffusion';
import { answerTokens, DiffusionEngine, imageToImage, InvalidSamplingRequest, regionCodes, Sequence, textToImage, understanding } from '@dimoo/diffusion';
import type { RgbImage, TextTokenizer } from '@dimoo/model';
import {
  cellsToGrid,
  checkTokenizer,
  encodeImage,
  encodePng,
  imageFacts,
  keepUnregenerated,
  loadManifest,
  loadTokenizer,
  modelChecksum,
  promptIds,
} from '@dimoo/model';
import type { DenoiseModelOptions } from './onnx-model';
import { OnnxDenoiseModel } from './onnx-model';
import { editPrompts } from './prompts';
import { fromPlanar, toPlanar, VqCodec } from './vq';

/** What the engine runs: a resolved job and its input images, decoded, in the job's order. */
export interface EngineJob {
  job: ResolvedJob;
  images: RgbImage[];
}

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
 * A paint sequence's input image and the cells it regenerates, from `prepare` to `finish` (which puts the input back
 * outside those cells). Keyed by the sequence, so every prepare → finish pair (worker, CLI, tests) composites alike.
 */
const paintCanvases = new WeakMap<Sequence, { image: RgbImage; regenerate: boolean[] }>();

export function tokenLayout(m: ModelManifest): TokenLayout {
  const t = m.tokens;
  return {
    vocabSize: m.architecture.vocabSize,
    textVocabSize: t.textVocabSize,
    codeOffset: t.codeOffset,
    codebookSize: t.codebookSize,
    mask: t.mask,
    newline: t.newline,
    boi: t.boi,
    eoi: t.eoi,
    uncondition: t.uncondition,
    boa: t.boa,
    eoa: t.eoa,
    answerPad: t.answerPad,
  };
}

/**
 * Opens a model directory: the manifest (every file's sha256 checked unless `verify: false`), the tokenizer (checked
 * against the manifest's special-token ids and template rules: a mismatch refuses to load, spec §10), the graphs.
 */
export async function loadModel(dir: string, options: DenoiseModelOptions & { verify?: boolean }): Promise<LoadedModel> {
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

/**
 * Frees the model's onnxruntime sessions and their thread pools. A process that loaded a model should release it before
 * it exits: onnxruntime's static destructors run at exit() and, with a session's thread pool still parked, can hang
 * the exit for good (a test runner that loaded a model in-process never ended in CI).
 */
export async function releaseModel(m: LoadedModel): Promise<void> {
  await Promise.all([m.model.release(), m.vq.release()]);
}

export function newEngine(m: LoadedModel, maxRows = m.manifest.limits.maxBatchRows, options: { keepCalls?: boolean } = {}): DiffusionEngine {
  return new DiffusionEngine(m.model, { lengthBucket: m.manifest.lengthBucket, maxRows, ...options });
}

/**
 * An in-process request (images given decoded) resolved exactly as the API resolves an HTTP one; the seed is drawn when
 * the request has none. Throws InvalidSamplingRequest naming the first field at fault.
 */
export function resolveLocal(manifest: ModelManifest, request: LocalRequest, inputs: JobImages<RgbImage> = { images: [] }): EngineJob {
  const r = resolveJob(request, manifest, { ...imageFacts(inputs, manifest.image.gridFactor), seed: drawSeed() });
  if (!r.ok) throw new InvalidSamplingRequest(r.issues[0]!.field, r.issues.map((i) => (i === r.issues[0] ? i.reason : `${i.field}: ${i.reason}`)).join('; '));
  return { job: r.job, images: inputs.images };
}

/** Builds the sampler sequence of a resolved job (VQ-encodes its input images). */
export async function prepare(m: LoadedModel, id: string, { job, images }: EngineJob): Promise<Sequence> {
  const { manifest, tokenizer, layout } = m;
  // the served model may not be the one the API resolved the job against: its limits are checked again, by the same rule
  const issue = checkLimits(job, manifest)[0];
  if (issue) throw new InvalidSamplingRequest(issue.field, issue.reason);
  if (images.length !== job.inputs.length) throw new InvalidSamplingRequest('images', `${images.length} image(s) for a job resolved with ${job.inputs.length}`);
  images.forEach((img, i) => {
    const want = job.inputs[i]!;
    if (img.height !== want.height || img.width !== want.width) {
      throw new InvalidSamplingRequest(inputField(job, i), `is ${img.width}×${img.height}, resolved as ${want.width}×${want.height}`);
    }
  });
  const sys = manifest.templates.sys;
  const g = manifest.image.gridFactor;
  const tok = (s: string, user: string) => promptIds(tokenizer, manifest, s, user);
  const encode = (img: RgbImage) => m.vq.encode(toPlanar(img));
  const params = (sampler: SamplingParams['sampler']): SamplingParams => ({
    steps: job.steps,
    temperature: job.temperature,
    seed: job.seed,
    guidance: job.guidance,
    cache: job.cache,
    sampler,
  });
  const maskgit = params({ kind: 'maskgit' });
  switch (job.task) {
    case 't2i': {
      const prompts = { prompt: tok(sys.t2i, job.prompt), uncondPrompt: tok(sys.t2i, manifest.templates.uncondition) };
      return new Sequence(id, layout, textToImage(layout, { ...prompts, rows: job.size.height / g, cols: job.size.width / g }, job.guidance), maskgit);
    }
    case 'paint': {
      const canvas = await encode(images[0]!);
      const regenerate = cellsToGrid(job.regenerate);
      const prompts = { prompt: tok(sys.t2i, job.prompt), uncondPrompt: tok(sys.t2i, manifest.templates.uncondition) };
      const spec = textToImage(layout, { ...prompts, rows: canvas.rows, cols: canvas.cols, canvas: { codes: canvas.codes, regenerate } }, job.guidance);
      const seq = new Sequence(id, layout, spec, maskgit);
      paintCanvases.set(seq, { image: images[0]!, regenerate });
      return seq;
    }
    case 'i2i': {
      const inputs = await Promise.all(images.map(encode));
      const out = inputs[inputs.length - 1]!;
      const { system, user } = editPrompts(sys, job);
      const spec = imageToImage(
        layout,
        { prompt: tok(system, user), uncondPrompt: tok(system, manifest.templates.uncondition), rows: out.rows, cols: out.cols, inputs },
        job.guidance,
      );
      return new Sequence(id, layout, spec, maskgit);
    }
    case 'mmu': {
      const image = await encode(images[0]!);
      const spec = understanding(layout, { prompt: tok(sys.mmu, job.question), image, genLength: job.genLength }, job.guidance);
      return new Sequence(id, layout, spec, params({ kind: 'llada', blockLength: job.blockLength, remasking: 'low_confidence' }));
    }
  }
}

/**
 * Decodes a finished sequence: the image (VQ decode) or the answer text. A paint job's image is the input outside the
 * regenerated token cells, pixel for pixel, and the decoded pixels inside them (a hard seam on the cell grid:
 * @dimoo/model `keepUnregenerated`); its `codes` stay the sampled ones. The result is byte-exact outside the cells as
 * RGB and as PNG; WebP and JPEG re-encode the whole image, lossily. Previews (`previewPng`) show the plain VQ decode.
 */
export async function finish(m: LoadedModel, seq: Sequence): Promise<TaskResult> {
  if (seq.params.sampler.kind === 'llada') {
    const tokens = answerTokens(m.layout, seq.region);
    return { kind: 'text', text: m.tokenizer.decode(tokens), tokens };
  }
  const cols = countCols(seq);
  const rows = seq.spec.targets.length / cols;
  const codes = regionCodes(m.layout, seq.region, rows, cols);
  if (codes.some((c) => c < 0)) throw new Error(`sequence ${seq.id} finished with masked cells`);
  const decoded = fromPlanar(await m.vq.decode({ rows, cols, codes }));
  const canvas = paintCanvases.get(seq);
  const rgb = canvas ? keepUnregenerated(decoded, canvas.image, canvas.regenerate, m.manifest.image.gridFactor) : decoded;
  return { kind: 'image', width: rgb.width, height: rgb.height, codes, rgb };
}

/** A finished image as its job's result object: the bytes in the job's format (@dimoo/contracts resultFormat). */
export async function encodeResult(job: ResolvedJob, rgb: RgbImage): Promise<{ bytes: Buffer; contentType: string; extension: string }> {
  const format = resultFormat(job);
  if (!format) throw new Error(`a ${job.task} job has no image result`);
  return { bytes: await encodeImage(rgb, format.format), contentType: format.contentType, extension: format.extension };
}

/** Preview cells still masked are drawn in this neutral grey. */
const PREVIEW_GREY = 128;

/**
 * A preview of an image sequence mid-sampling: the committed cells decoded, the still-masked cells grey, scaled to
 * fit `maxSide`, as PNG. Null for understanding (its answer is text).
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

/**
 * The one resolution of a request: every default and every limit the served model's manifest can predict, applied in
 * one pure function. The API stores exactly what `resolveJob` returns (the job row's `params`); the worker parses it
 * back with `parseStoredJob` and the runtime only maps it to the engine. A request that resolves is never refused
 * later for a reason the manifest could have told (the runtime re-checks the limits with `checkLimits` only because
 * the model it serves may differ from the one the API resolved against).
 */
import { z } from 'zod';
import { DEFAULT_PRIORITY, DENSE_TARGETS, EDIT_TYPES, JOB_PRIORITIES, VIEWS } from './enums';
import type { FieldIssue, ImageField, LocalRequest, OutputFormat } from './jobs';
import { CacheSettingsSchema, editFieldIssues, MAX_IMAGES_PER_JOB, OUTPUT_FORMATS, OutputFormatSchema } from './jobs';
import type { ModelManifest } from './manifest';

/** Bumped on every change of `ResolvedJobSchema`; older stored versions are migrated by `STORED_JOB_MIGRATIONS` or refused. */
export const RESOLVED_JOB_VERSION = 4;

const SizeSchema = z.strictObject({ height: z.number().int().positive(), width: z.number().int().positive() });
export type ImageSize = z.infer<typeof SizeSchema>;

/**
 * Classifier-free guidance as it will run: a scale of 0 contributes nothing, so such guidance is `none` and the job runs
 * one row instead of two or three (the weights per branch: libs/diffusion sampler.ts `guidanceWeights`).
 */
export const GuidanceSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('none') }),
  z.strictObject({ kind: z.literal('text'), scale: z.number().positive() }),
  z.strictObject({ kind: z.literal('dual'), text: z.number().nonnegative(), image: z.number().nonnegative() }),
]);
export type ResolvedGuidance = z.infer<typeof GuidanceSchema>;

/** Rows a sequence runs per step: the guidance branches (cond, then the unconditional ones). */
export function guidanceBranches(g: ResolvedGuidance): number {
  return g.kind === 'none' ? 1 : g.kind === 'text' ? 2 : 3;
}

/**
 * What a job will cost, before it is tokenized: `positionsPerStep` is what one full step computes for it (rows ×
 * positions that grow with the request: image blocks and the answer; prompt and template tokens are not counted, the
 * API does not tokenize). The engine charges the exact figure (padded length × rows) at batch admission;
 * `libs/runtime/src/resolve.spec.ts` bounds the difference. `units` (per step × steps) is what a fair share charges.
 */
export const CostSchema = z.strictObject({
  positionsPerStep: z.number().int().positive(),
  steps: z.number().int().positive(),
  units: z.number().int().positive(),
});
export type JobCost = z.infer<typeof CostSchema>;

const text = z.string().min(1);
const common = {
  schemaVersion: z.literal(RESOLVED_JOB_VERSION),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  steps: z.number().int().positive(),
  temperature: z.number().nonnegative(),
  guidance: GuidanceSchema,
  cache: CacheSettingsSchema.nullable(),
  /** a preview every this many steps (0: none); null: the worker's default (PREVIEW_EVERY_STEPS) */
  previewEvery: z.number().int().min(0).nullable(),
  /** among its team's waiting jobs (rows stored before it existed are normal) */
  priority: z.enum(JOB_PRIORITIES).default(DEFAULT_PRIORITY),
  /** decoded sizes of the images the engine gets, in request order (`image`, or `images.0`, `images.1`) */
  inputs: z.array(SizeSchema),
  cost: CostSchema,
};

/** `n` images, image i sampled with seed + i */
const image = { outputFormat: OutputFormatSchema, n: z.number().int().min(1).max(MAX_IMAGES_PER_JOB) };

export const ResolvedJobSchema = z.discriminatedUnion('task', [
  z.strictObject({ task: z.literal('t2i'), prompt: text, size: SizeSchema, ...image, ...common }),
  /** `regenerate`: one character per token cell of `size`, row-major, '1' where the mask regenerates it */
  z.strictObject({ task: z.literal('paint'), prompt: text, size: SizeSchema, regenerate: z.string().regex(/^[01]+$/), ...image, ...common }),
  /**
   * `size`: the output, the size of the last input image; `prompt`, `target` or `view`: the one its editType takes
   * (`EDIT_TYPE_FIELD`, jobs.ts), as the request gave it
   */
  z
    .strictObject({
      task: z.literal('i2i'),
      prompt: text.optional(),
      editType: z.enum(EDIT_TYPES),
      target: z.enum(DENSE_TARGETS).optional(),
      view: z.enum(VIEWS).optional(),
      size: SizeSchema,
      ...image,
      ...common,
    })
    .superRefine((job, ctx) => editFieldIssues(job).forEach((i) => ctx.addIssue({ code: 'custom', path: [i.field], message: i.reason }))),
  z.strictObject({ task: z.literal('mmu'), question: text, genLength: z.number().int().positive(), blockLength: z.number().int().positive(), ...common }),
]);
export type ResolvedJob = z.infer<typeof ResolvedJobSchema>;

/** A seed for a request without one: 47 random bits (exact in a float64 and in the job row's bigint). */
export function drawSeed(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi! >>> 17) * 2 ** 32 + lo!;
}

export interface ResolveContext {
  /** the decoded size of each input image, in request order (`image`, or `images.0`, `images.1`); null: not decodable */
  inputs?: readonly (ImageSize | null)[];
  /** paint: the mask's size and the token cells it regenerates, row-major '0'/'1' (libs/model maskCells) */
  mask?: { size: ImageSize; cells: string } | null;
  /** the seed when the request has none: the caller draws it, so that this function stays pure */
  seed: number;
}

export type Resolution = { ok: true; job: ResolvedJob } | { ok: false; issues: FieldIssue[] };

/** A resolved job before its cost is estimated. */
export type ResolvedDraft = WithoutCost<ResolvedJob>;
type WithoutCost<J> = J extends unknown ? Omit<J, 'cost'> : never;

/** Applies the manifest's defaults to a request, then its limits; on success the job exactly as the worker will run it. */
export function resolveJob(req: LocalRequest, m: ModelManifest, ctx: ResolveContext): Resolution {
  const issues: FieldIssue[] = [];
  const input = (i: number): ImageSize => {
    const size = ctx.inputs?.[i];
    if (!size) issues.push({ field: inputField(req, i), reason: 'is missing or not a decodable PNG, JPEG or WebP image' });
    return size ?? { height: 0, width: 0 };
  };
  const cache = req.cache === true ? m.defaults.cache : req.cache || null;
  const base = {
    schemaVersion: RESOLVED_JOB_VERSION,
    seed: req.seed ?? ctx.seed,
    cache,
    previewEvery: req.previewEvery ?? null,
    priority: req.priority ?? DEFAULT_PRIORITY,
  } as const;
  const sampling = (d: { steps: number; temperature: number }, guidance: ResolvedGuidance) => ({
    ...base,
    steps: req.steps ?? d.steps,
    temperature: req.temperature ?? d.temperature,
    guidance,
  });
  let draft: ResolvedDraft;
  switch (req.task) {
    case 't2i': {
      const d = m.defaults.t2i;
      const size = { height: req.height ?? m.image.defaultHeight, width: req.width ?? m.image.defaultWidth };
      draft = {
        ...sampling(d, textGuidance(req.cfg ?? d.cfg)),
        outputFormat: req.outputFormat ?? 'png',
        n: req.n ?? 1,
        task: 't2i',
        prompt: req.prompt,
        size,
        inputs: [],
      };
      break;
    }
    case 'paint': {
      const d = m.defaults.t2i;
      const size = input(0);
      const mask = ctx.mask;
      if (!mask) issues.push({ field: 'mask', reason: 'is missing or not a decodable PNG, JPEG or WebP image' });
      else if (mask.size.height !== size.height || mask.size.width !== size.width) issues.push({ field: 'mask', reason: 'must have the same size as image' });
      const job = { task: 'paint' as const, prompt: req.prompt, size, inputs: [size], regenerate: mask?.cells ?? '' };
      draft = { ...sampling(d, textGuidance(req.cfg ?? d.cfg)), outputFormat: req.outputFormat ?? 'png', n: req.n ?? 1, ...job };
      break;
    }
    case 'i2i': {
      const d = m.defaults.i2i;
      const inputs = Array.from({ length: Math.max(1, ctx.inputs?.length ?? 0) }, (_, i) => input(i));
      const [a, b] = [req.cfg ?? d.cfg, req.cfgImage ?? d.cfgImage];
      const guidance: ResolvedGuidance = a === 0 && b === 0 ? { kind: 'none' } : { kind: 'dual', text: a, image: b };
      // the output has the size of the last input image
      // the request schema checks these too; in-process callers (resolveLocal) are typed, not parsed
      issues.push(...editFieldIssues(req));
      const mode = { editType: req.editType, ...only('prompt', req.prompt), ...only('target', req.target), ...only('view', req.view) };
      const job = { task: 'i2i' as const, ...mode, size: inputs.at(-1)!, inputs };
      draft = { ...sampling(d, guidance), outputFormat: req.outputFormat ?? 'png', n: req.n ?? 1, ...job };
      break;
    }
    case 'mmu': {
      const d = m.defaults.mmu;
      const genLength = req.genLength ?? d.genLength;
      const blockLength = req.blockLength ?? Math.min(d.blockLength, genLength);
      draft = { ...sampling(d, textGuidance(req.cfg ?? d.cfg)), task: 'mmu', question: req.question, genLength, blockLength, inputs: [input(0)] };
      break;
    }
  }
  // every problem at once; a field already refused (an undecodable image) is not refused again for its placeholder size
  issues.push(...checkLimits(draft, m).filter((l) => !issues.some((i) => i.field === l.field)));
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, job: { ...draft, cost: estimateCost(draft, m) } };
}

/** `{ [key]: value }`, or nothing for an absent value (a stored job holds no undefined fields). */
function only<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [k in K]?: V });
}

function textGuidance(scale: number): ResolvedGuidance {
  return scale === 0 ? { kind: 'none' } : { kind: 'text', scale };
}

/** The request field the engine's input image `index` came from: issues name it, the API names its object after it. */
export function inputField(job: { task: ResolvedJob['task'] }, index: number): ImageField {
  return job.task === 'i2i' ? `images.${index}` : 'image';
}

/** Every limit of the manifest a resolved job must respect; each issue names the request field to change. */
export function checkLimits(job: ResolvedDraft, m: ModelManifest): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const { gridFactor: g, minSize, maxSize, maxAspect } = m.image;
  const L = m.limits;
  if (job.steps > L.maxSteps) issues.push({ field: 'steps', reason: `must be at most ${L.maxSteps}` });
  if (job.temperature > L.maxTemperature) issues.push({ field: 'temperature', reason: `must be at most ${L.maxTemperature}` });
  const cfg = job.guidance.kind === 'text' ? job.guidance.scale : job.guidance.kind === 'dual' ? job.guidance.text : 0;
  if (cfg > L.maxCfg) issues.push({ field: 'cfg', reason: `must be at most ${L.maxCfg}` });
  if (job.guidance.kind === 'dual' && job.guidance.image > L.maxCfg) issues.push({ field: 'cfgImage', reason: `must be at most ${L.maxCfg}` });

  const aspect = (s: ImageSize) => Math.max(s.height, s.width) / Math.min(s.height, s.width);
  if (job.task === 't2i') {
    for (const side of ['height', 'width'] as const) {
      const v = job.size[side];
      if (v % g !== 0) issues.push({ field: side, reason: `must be a multiple of ${g}` });
      else if (v < minSize || v > maxSize) issues.push({ field: side, reason: `must be between ${minSize} and ${maxSize}` });
    }
    if (!issues.some((i) => i.field === 'height' || i.field === 'width') && aspect(job.size) > maxAspect) {
      issues.push({ field: job.size.width > job.size.height ? 'width' : 'height', reason: `the aspect ratio must be at most ${maxAspect}:1` });
    }
  }
  job.inputs.forEach((s, i) => {
    const sides = [s.width, s.height];
    if (sides.some((v) => v % g !== 0 || v < minSize || v > maxSize)) {
      issues.push({ field: inputField(job, i), reason: `image is ${s.width}×${s.height}; sides must be multiples of ${g} between ${minSize} and ${maxSize}` });
    } else if (aspect(s) > maxAspect) {
      issues.push({ field: inputField(job, i), reason: `image is ${s.width}×${s.height}; the aspect ratio must be at most ${maxAspect}:1` });
    }
  });
  switch (job.task) {
    case 'paint': {
      const cells = (job.size.height / g) * (job.size.width / g);
      if (issues.some((i) => i.field === 'image' || i.field === 'mask')) break;
      if (job.regenerate.length !== cells) issues.push({ field: 'mask', reason: `must cover the image's ${cells} token cells` });
      else if (!job.regenerate.includes('1')) {
        issues.push({ field: 'mask', reason: `covers no token cell (a ${g}×${g} cell needs more than half its pixels masked)` });
      }
      break;
    }
    case 'i2i':
      if (job.editType === 'style' && job.inputs.length !== 2) {
        issues.push({ field: 'images', reason: 'style transfer needs the content image and a style image' });
      } else if ((job.editType === 'dense' || job.editType === 'multiView') && job.inputs.length !== 1) {
        issues.push({ field: 'images', reason: `editType ${job.editType} takes one image` });
      }
      break;
    case 'mmu':
      if (job.genLength > L.maxGenLength) issues.push({ field: 'genLength', reason: `must be at most ${L.maxGenLength}` });
      else if (job.genLength % job.blockLength !== 0) issues.push({ field: 'blockLength', reason: 'must divide genLength' });
      else if (job.steps % (job.genLength / job.blockLength) !== 0) issues.push({ field: 'steps', reason: 'must be a multiple of genLength / blockLength' });
      break;
    case 't2i':
      break;
  }
  return issues;
}

/** Positions of an image block's rows: each row of codes and its newline. */
const imagePositions = (s: ImageSize, g: number) => (s.height / g) * (s.width / g + 1);

function estimateCost(job: ResolvedDraft, m: ModelManifest): JobCost {
  const g = m.image.gridFactor;
  const inputs = job.inputs.reduce((n, s) => n + imagePositions(s, g), 0);
  const region = job.task === 'mmu' ? inputs + job.genLength : job.task === 'i2i' ? inputs + imagePositions(job.size, g) : imagePositions(job.size, g);
  // n images are n sequences in the batch
  const positionsPerStep = guidanceBranches(job.guidance) * region * (job.task === 'mmu' ? 1 : job.n);
  return { positionsPerStep, steps: job.steps, units: positionsPerStep * job.steps };
}

/** What a finished job's result object is: its format, content type and key extension; null for a text answer. */
export function resultFormat(job: ResolvedJob): { format: OutputFormat; contentType: string; extension: string } | null {
  if (job.task === 'mmu') return null;
  return { format: job.outputFormat, ...OUTPUT_FORMATS[job.outputFormat] };
}

/** Migrations of stored jobs, by the version they upgrade from (n → n + 1). */
export type StoredJobMigrations = Readonly<Record<number, (stored: Record<string, unknown>) => Record<string, unknown>>>;

/** A row without a version predates resolved jobs and is refused (resubmit it). */
export const STORED_JOB_MIGRATIONS: StoredJobMigrations = {
  // 2 added `outputFormat` to image jobs: those stored before made PNGs
  1: (stored) => ({ ...stored, ...(stored['task'] === 'mmu' ? {} : { outputFormat: 'png' }), schemaVersion: 2 }),
  // 3 added the editTypes dense (`target`) and multiView (`view`), whose i2i jobs have no prompt: a 2 is a valid 3
  2: (stored) => ({ ...stored, schemaVersion: 3 }),
  // 4 added `n` (images per job) to image jobs: those stored before make one
  3: (stored) => ({ ...stored, ...(stored['task'] === 'mmu' ? {} : { n: 1 }), schemaVersion: 4 }),
};

export type StoredJobParse = { ok: true; job: ResolvedJob } | { ok: false; reason: string };

/**
 * Reads a stored job (the row's `params`): the current version as is; an older one through its migrations; a newer
 * one (stored by a newer API than this worker) or one without a migration path is refused, saying why.
 */
export function parseStoredJob(value: unknown, migrations: StoredJobMigrations = STORED_JOB_MIGRATIONS): StoredJobParse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'the stored job is not an object' };
  let stored = value as Record<string, unknown>;
  const version = typeof stored['schemaVersion'] === 'number' ? stored['schemaVersion'] : 0;
  if (version > RESOLVED_JOB_VERSION) {
    return { ok: false, reason: `stored with job schema ${version}; this worker reads up to ${RESOLVED_JOB_VERSION} (upgrade workers before the API)` };
  }
  for (let v = version; v < RESOLVED_JOB_VERSION; v++) {
    const migrate = migrations[v];
    if (!migrate) return { ok: false, reason: `stored with job schema ${version}, which this worker cannot migrate; submit the job again` };
    stored = migrate(stored);
  }
  const parsed = ResolvedJobSchema.safeParse(stored);
  if (!parsed.success) {
    return { ok: false, reason: `the stored job does not parse: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` };
  }
  return { ok: true, job: parsed.data };
}

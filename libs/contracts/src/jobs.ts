/**
 * Job requests, statuses, events, results and queue names: the one definition the API, the worker, the CLI and the
 * dashboard share. Shape checks live here; limits that depend on the served model (sizes, steps, …) are checked
 * against its manifest by `checkAgainstManifest`.
 */
import { z } from 'zod';
import type { ModelManifest } from './manifest';

export const QUEUE_NAMES = { generation: 'dimoo-generation' } as const;

/** What travels through Redis: only ids — Postgres holds the job. */
export const QueuePayloadSchema = z.object({ jobId: z.uuid(), teamId: z.uuid() });
export type QueuePayload = z.infer<typeof QueuePayloadSchema>;

const MAX_IMAGE_BASE64 = 8 * 1024 * 1024;

/** An input image: base64 PNG/JPEG/WebP, optionally as a data URL. */
export const ImageInputSchema = z
  .string()
  .max(MAX_IMAGE_BASE64, 'image too large (8 MiB of base64 at most)')
  .transform((s) => s.replace(/^data:image\/[a-z+]+;base64,/, ''))
  .refine((s) => /^[A-Za-z0-9+/]+={0,2}$/.test(s), 'must be base64 image data')
  .describe('base64-encoded PNG, JPEG or WebP (a data: URL is accepted)');

export const CacheSchema = z
  .union([
    z.boolean(),
    z.object({
      cacheRatio: z.number().gt(0).lt(1),
      warmupRatio: z.number().min(0).lt(1),
      refreshInterval: z.number().int().gt(1),
    }),
  ])
  .describe('ML-Cache: true for the model defaults, or explicit settings');

const sampling = {
  steps: z.number().int().min(1).optional().describe('sampling steps (model default when omitted)'),
  temperature: z.number().min(0).optional(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().describe('random seed; drawn and recorded when omitted'),
  cache: CacheSchema.optional(),
  previewEvery: z.number().int().min(0).max(1000).optional().describe('a preview image every this many steps (0: none; the worker default when omitted)'),
};

const prompt = z.string().trim().min(1, 'must not be empty').max(2000);

export const EDIT_TYPES = ['edit', 'subject', 'control', 'style'] as const;

export const JobRequestSchema = z.discriminatedUnion('task', [
  z.object({
    task: z.literal('t2i'),
    prompt,
    height: z.number().int().positive().optional(),
    width: z.number().int().positive().optional(),
    cfg: z.number().min(0).optional().describe('text guidance scale w: (1 + w)·cond − w·uncond'),
    ...sampling,
  }),
  z.object({
    task: z.literal('paint'),
    prompt,
    image: ImageInputSchema,
    mask: ImageInputSchema.describe('mask image of the same size: pixels brighter than half are regenerated'),
    cfg: z.number().min(0).optional(),
    ...sampling,
  }),
  z.object({
    task: z.literal('i2i'),
    prompt,
    editType: z.enum(EDIT_TYPES),
    images: z.array(ImageInputSchema).min(1).max(2).describe('input image, plus a style reference for editType style'),
    cfg: z.number().min(0).optional(),
    cfgImage: z.number().min(0).optional(),
    ...sampling,
  }),
  z.object({
    task: z.literal('mmu'),
    question: prompt,
    image: ImageInputSchema,
    genLength: z.number().int().positive().optional(),
    blockLength: z.number().int().positive().optional(),
    cfg: z.number().min(0).optional(),
    ...sampling,
  }),
]);
export type JobRequest = z.infer<typeof JobRequestSchema>;
export type JobTask = JobRequest['task'];

export interface FieldIssue {
  field: string;
  reason: string;
}

/** Limits that come from the served model's manifest. */
export function checkAgainstManifest(req: JobRequest, m: ModelManifest): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const { gridFactor, minSize, maxSize } = m.image;
  const size = (field: string, v: number | undefined) => {
    if (v === undefined) return;
    if (v % gridFactor !== 0) issues.push({ field, reason: `must be a multiple of ${gridFactor}` });
    else if (v < minSize || v > maxSize) issues.push({ field, reason: `must be between ${minSize} and ${maxSize}` });
  };
  if (req.steps !== undefined && req.steps > m.limits.maxSteps) issues.push({ field: 'steps', reason: `must be at most ${m.limits.maxSteps}` });
  if (req.temperature !== undefined && req.temperature > m.limits.maxTemperature) {
    issues.push({ field: 'temperature', reason: `must be at most ${m.limits.maxTemperature}` });
  }
  if (req.cfg !== undefined && req.cfg > m.limits.maxCfg) issues.push({ field: 'cfg', reason: `must be at most ${m.limits.maxCfg}` });
  switch (req.task) {
    case 't2i':
      size('height', req.height);
      size('width', req.width);
      break;
    case 'i2i':
      if (req.cfgImage !== undefined && req.cfgImage > m.limits.maxCfg) issues.push({ field: 'cfgImage', reason: `must be at most ${m.limits.maxCfg}` });
      if (req.editType === 'style' && req.images.length !== 2) {
        issues.push({ field: 'images', reason: 'style transfer needs the content image and a style image' });
      }
      break;
    case 'mmu': {
      const gen = req.genLength ?? m.defaults.mmu.genLength;
      const block = req.blockLength ?? Math.min(m.defaults.mmu.blockLength, gen);
      const steps = req.steps ?? m.defaults.mmu.steps;
      if (gen > m.limits.maxGenLength) issues.push({ field: 'genLength', reason: `must be at most ${m.limits.maxGenLength}` });
      else if (gen % block !== 0) issues.push({ field: 'blockLength', reason: 'must divide genLength' });
      else if (steps % (gen / block) !== 0) issues.push({ field: 'steps', reason: 'must be a multiple of genLength / blockLength' });
      break;
    }
    case 'paint':
      break;
  }
  return issues;
}

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'canceled'];

export const JobViewSchema = z.object({
  id: z.uuid(),
  task: z.enum(['t2i', 'paint', 'i2i', 'mmu']),
  status: z.enum(JOB_STATUSES),
  progress: z.number().min(0).max(1),
  step: z.number().int(),
  steps: z.number().int().nullable(),
  seed: z.number().int().nullable(),
  model: z.object({ name: z.string(), checksum: z.string().nullable() }),
  attempts: z.number().int(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  timings: z.record(z.string(), z.number()).nullable(),
  result: z
    .union([
      z.object({ kind: z.literal('image'), url: z.string(), contentType: z.literal('image/png') }),
      z.object({ kind: z.literal('text'), text: z.string(), url: z.string() }),
    ])
    .nullable(),
  error: z.object({ type: z.string(), message: z.string(), field: z.string().optional() }).nullable(),
});
export type JobView = z.infer<typeof JobViewSchema>;

/**
 * Server-sent events of a job (`GET /v1/jobs/:id/events`). Each carries `id:` (replay with `Last-Event-ID`) and JSON
 * data with `jobId` and `at`, plus: progress `{step, steps}`; preview `{step, url}`; completed `{url, text?}`;
 * failed `{error}`; started `{attempt}`. The stream ends after completed, failed or canceled.
 */
export const JOB_STREAM_EVENT_TYPES = ['queued', 'started', 'progress', 'preview', 'completed', 'failed', 'canceled'] as const;
export type JobStreamEventType = (typeof JOB_STREAM_EVENT_TYPES)[number];

/**
 * What a team sends (`POST /v1/jobs`) and what it reads back (`GET /v1/jobs/:id`): request shapes and the job view.
 * Shape checks live here; every default and every limit of the served model is applied by `resolveJob` (resolve.ts).
 */
import { z } from 'zod';
import type { EditType } from './enums';
import { DENSE_TARGETS, EDIT_TYPES, JOB_PRIORITIES, JOB_STATUSES, JOB_TASKS, VIEWS, WEBHOOK_EVENTS } from './enums';

const MAX_IMAGE_BASE64 = 8 * 1024 * 1024;

const ISO_TIME = z.iso.datetime({ offset: true });

/** How far ahead a job's `deadline` may be. */
export const MAX_DEADLINE_MS = 7 * 24 * 60 * 60 * 1000;

/** Not started by this time (ISO 8601 with offset), the job ends `expired`; evaluated at submit, against now. */
export const DeadlineSchema = z
  .string()
  .superRefine((d, ctx) => {
    const at = Date.parse(d);
    const why = !ISO_TIME.safeParse(d).success
      ? 'must be an ISO 8601 time with an offset'
      : at <= Date.now()
        ? 'must be in the future'
        : at > Date.now() + MAX_DEADLINE_MS
          ? 'must be at most 7 days ahead'
          : null;
    if (why) ctx.addIssue({ code: 'custom', message: why });
  })
  .describe('not started by this time (ISO 8601 with an offset, at most 7 days ahead), the job ends expired');

/** The largest input image, in bytes, however it arrives (base64, multipart part, upload, an earlier result). */
export const MAX_IMAGE_BYTES = 6 * 1024 * 1024;

/** An input image given inline: base64 PNG/JPEG/WebP, optionally as a data URL. */
export const Base64ImageSchema = z
  .string()
  .max(MAX_IMAGE_BASE64, 'image too large (8 MiB of base64 at most)')
  .transform((s) => s.replace(/^data:image\/[a-z+]+;base64,/, ''))
  .refine((s) => /^[A-Za-z0-9+/]+={0,2}$/.test(s), 'must be base64 image data')
  .describe('base64-encoded PNG, JPEG or WebP (a data: URL is accepted)');

/**
 * An input image: inline base64; `{ jobId }`, the image result of an earlier job of the same team; `{ upload }`, an
 * upload made through `POST /v1/uploads`; or `{ file }`, a part of a multipart request (set by the API from the part's
 * name: image, mask, images.0, images.1).
 */
export const ImageInputSchema = z.union(
  [
    Base64ImageSchema,
    z.strictObject({ jobId: z.uuid() }).describe("an earlier job's image result"),
    z.strictObject({ upload: z.uuid() }).describe('an upload (POST /v1/uploads)'),
    z.strictObject({ file: z.string().min(1).max(20) }).describe('a multipart part of this request'),
  ],
  { error: 'must be base64 image data, { "jobId": … }, { "upload": … } or a multipart part' },
);
export type ImageInput = z.infer<typeof ImageInputSchema>;

/** ML-Cache settings (the policy they drive: libs/diffusion cache-policy.ts). */
export const CacheSettingsSchema = z.strictObject({
  cacheRatio: z.number().gt(0).lt(1),
  warmupRatio: z.number().min(0).lt(1),
  refreshInterval: z.number().int().gt(1),
});
export type CacheSettings = z.infer<typeof CacheSettingsSchema>;

export const CacheSchema = z.union([z.boolean(), CacheSettingsSchema]).describe('ML-Cache: true for the model defaults, or explicit settings');

const sampling = {
  steps: z.number().int().min(1).optional().describe('sampling steps (model default when omitted)'),
  temperature: z.number().min(0).optional(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().describe('random seed; drawn and recorded when omitted'),
  cache: CacheSchema.optional(),
  previewEvery: z.number().int().min(0).max(1000).optional().describe('a preview image every this many steps (0: none; the worker default when omitted)'),
  priority: z.enum(JOB_PRIORITIES).optional().describe("order among the team's own waiting jobs: high, normal (default) or low"),
  deadline: DeadlineSchema.optional(),
  webhook: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .max(2048)
    .optional()
    .describe('POSTed (signed, Standard Webhooks) on the job events in webhookEvents'),
  webhookEvents: z
    .array(z.enum(WEBHOOK_EVENTS))
    .min(1)
    .optional()
    .describe('which events to deliver: started, progress, completed, failed, canceled, expired (default: the terminal ones)'),
};

const prompt = z.string().trim().min(1, 'must not be empty').max(2000);

/** The formats an image result can be stored in, with the content type it is served as. */
export const OUTPUT_FORMATS = {
  png: { contentType: 'image/png', extension: 'png' },
  webp: { contentType: 'image/webp', extension: 'webp' },
  jpeg: { contentType: 'image/jpeg', extension: 'jpg' },
} as const;
export type OutputFormat = keyof typeof OUTPUT_FORMATS;
export const OutputFormatSchema = z.enum(Object.keys(OUTPUT_FORMATS) as [OutputFormat, ...OutputFormat[]]);

/** Fields of the tasks whose result is an image. */
/** The most images one job makes (`n`). */
export const MAX_IMAGES_PER_JOB = 4;

const imageResult = {
  outputFormat: OutputFormatSchema.optional().describe('the result image format: png (default, lossless), webp or jpeg'),
  n: z
    .number()
    .int()
    .min(1)
    .max(MAX_IMAGES_PER_JOB)
    .optional()
    .describe('images to make (1–4, default 1): image i is sampled with seed + i, all in the same batch'),
};

/**
 * The field each image-to-image kind takes besides its images: a `prompt` (style's is required and replaced by the
 * model's own sentence), a dense-prediction `target` or a multi-view `view`; the user sentence of the last two is the
 * model's own (libs/runtime/src/prompts.ts). Each of the three is refused where its kind does not take it.
 */
export const EDIT_TYPE_FIELD = {
  edit: 'prompt',
  subject: 'prompt',
  control: 'prompt',
  style: 'prompt',
  dense: 'target',
  multiView: 'view',
} as const satisfies Record<EditType, 'prompt' | 'target' | 'view'>;

/** An i2i request's (or stored job's) `prompt` / `target` / `view` against its editType: each issue names its field. */
export function editFieldIssues(job: {
  editType: EditType;
  prompt?: string | undefined;
  target?: string | undefined;
  view?: string | undefined;
}): FieldIssue[] {
  const takes = EDIT_TYPE_FIELD[job.editType];
  return (['prompt', 'target', 'view'] as const).flatMap((field): FieldIssue[] => {
    const given = job[field] !== undefined;
    if (field === takes && !given) return [{ field, reason: `is required for editType ${job.editType}` }];
    if (field !== takes && given) {
      const owner =
        field === 'prompt' ? "its user prompt is the model's own for the " + takes : `only editType ${field === 'target' ? 'dense' : 'multiView'} takes it`;
      return [{ field, reason: `is not taken by editType ${job.editType}: ${owner}` }];
    }
    return [];
  });
}

/** Unknown fields are refused (strict objects): a misspelt option must not be silently ignored. */
export const JobRequestSchema = z.discriminatedUnion('task', [
  z.strictObject({
    task: z.literal('t2i'),
    prompt,
    height: z.number().int().positive().optional(),
    width: z.number().int().positive().optional(),
    cfg: z.number().min(0).optional().describe('text guidance scale w: (1 + w)·cond − w·uncond'),
    ...sampling,
    ...imageResult,
  }),
  z.strictObject({
    task: z.literal('paint'),
    prompt,
    image: ImageInputSchema,
    mask: ImageInputSchema.describe('mask image of the same size: pixels brighter than half are regenerated'),
    cfg: z.number().min(0).optional(),
    ...sampling,
    ...imageResult,
  }),
  z
    .strictObject({
      task: z.literal('i2i'),
      prompt: prompt.optional().describe('the instruction or description; every editType but dense and multiView needs one'),
      editType: z.enum(EDIT_TYPES),
      target: z.enum(DENSE_TARGETS).optional().describe('editType dense: the map to make of the image'),
      view: z.enum(VIEWS).optional().describe('editType multiView: the view to make of the object in the image (its front view)'),
      images: z.array(ImageInputSchema).min(1).max(2).describe('input image, plus a style reference for editType style'),
      cfg: z.number().min(0).optional(),
      cfgImage: z.number().min(0).optional(),
      ...sampling,
      ...imageResult,
    })
    .superRefine((req, ctx) => editFieldIssues(req).forEach((i) => ctx.addIssue({ code: 'custom', path: [i.field], message: i.reason }))),
  z.strictObject({
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

/** The image fields of a request, by task: what the API uploads and the worker hands the engine, in this order. */
export type ImageField = 'image' | 'mask' | `images.${number}`;

/** A job's images: those the engine gets, in request order (`image`, or `images.0`, `images.1`), and a painting mask. */
export interface JobImages<T> {
  images: T[];
  mask?: T;
}

/** A job row's `inputs`: the object keys of its uploaded images, by the role they play. */
export const StoredImagesSchema = z.strictObject({ images: z.array(z.string().min(1)), mask: z.string().min(1).optional() });

/** The images of a request as given (base64, reference, upload or part), by the role they play. */
export function requestImages(req: JobRequest): JobImages<ImageInput> {
  switch (req.task) {
    case 't2i':
      return { images: [] };
    case 'paint':
      return { images: [req.image], mask: req.mask };
    case 'i2i':
      return { images: req.images };
    case 'mmu':
      return { images: [req.image] };
  }
}

/** A request without its base64 images: what in-process callers (CLI, tests, benchmarks) build, images given decoded. */
export type LocalRequest = WithoutImages<JobRequest>;
type WithoutImages<R> = R extends unknown ? Omit<R, 'image' | 'images' | 'mask'> : never;

export interface FieldIssue {
  field: string;
  reason: string;
}

export const JobViewSchema = z.object({
  id: z.uuid(),
  task: z.enum(JOB_TASKS),
  status: z.enum(JOB_STATUSES),
  progress: z.number().min(0).max(1),
  step: z.number().int().describe('steps run so far; for a finished job, the steps it ran'),
  steps: z.number().int().nullable().describe('steps planned (a job can finish before: every token decided early)'),
  seed: z.number().int().nullable(),
  model: z.object({ name: z.string(), checksum: z.string().nullable() }),
  attempts: z.number().int(),
  apiKeyId: z.string().nullable().describe('the key that submitted the job'),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  deadline: z.string().nullable().describe('not started by then, the job ends expired'),
  queue: z
    .object({
      teamAhead: z.number().int().describe("the team's own jobs ahead of this one"),
      ahead: z.number().int().describe('an estimate of the jobs that start before it, all teams (round robin)'),
      etaSeconds: z.number().nullable().describe('an estimate of the wait, from the fleet’s starts in the last 5 minutes'),
    })
    .nullable()
    .optional()
    .describe('while queued, on GET /v1/jobs/:id: where it stands'),
  resultDeletedAt: z.string().nullable().describe("when retention removed the job's images (RESULT_TTL_DAYS)"),
  timings: z.record(z.string(), z.number()).nullable(),
  result: z
    .union([
      z.object({
        kind: z.literal('image'),
        url: z.string(),
        contentType: z.string(),
        images: z.array(z.string()).describe('the URL of every image the job made (n); the first is url'),
      }),
      z.object({ kind: z.literal('text'), text: z.string(), url: z.string() }),
    ])
    .nullable(),
  error: z.object({ type: z.string(), message: z.string(), field: z.string().optional() }).nullable(),
});
export type JobView = z.infer<typeof JobViewSchema>;

/** A page of `GET /v1/jobs`. */
export const JOB_LIST_LIMITS = { default: 20, max: 100 } as const;

const commaList = <V extends string>(values: readonly V[]) =>
  z
    .string()
    .transform((s, ctx): V[] => {
      const list = s.split(',').map((v) => v.trim());
      const known = (v: string): v is V => (values as readonly string[]).includes(v);
      if (list.every(known)) return list;
      ctx.addIssue({ code: 'custom', message: `must be one or more of ${values.join(', ')}, comma-separated` });
      return z.NEVER;
    })
    .describe(`one or more of ${values.join(', ')}, comma-separated`);

/** The query of `GET /v1/jobs` (unknown parameters are refused, like unknown body fields). */
export const JobListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(JOB_LIST_LIMITS.max).default(JOB_LIST_LIMITS.default).describe('jobs per page (1–100, default 20)'),
  after: z.uuid().optional().describe('the last job id of the previous page: the page after it'),
  status: commaList(JOB_STATUSES).optional(),
  task: commaList(JOB_TASKS).optional(),
  createdFrom: z.iso.datetime({ offset: true }).optional().describe('only jobs created at or after this time (ISO 8601)'),
  createdBefore: z.iso.datetime({ offset: true }).optional().describe('only jobs created before this time (ISO 8601)'),
});
export type JobListQuery = z.infer<typeof JobListQuerySchema>;

/** `GET /v1/jobs`: newest first; `next` is the URL of the next page (null on the last). */
export const JobListSchema = z.object({ data: z.array(JobViewSchema), hasMore: z.boolean(), next: z.string().nullable() });
export type JobList = z.infer<typeof JobListSchema>;

/**
 * Server-sent events of a job (`GET /v1/jobs/:id/events`, types in enums.ts). Each carries `id:` (replay with
 * `Last-Event-ID`) and JSON data with `jobId` and `at`, plus: progress `{step, steps}`; preview `{step, url}`;
 * completed `{url, text?}`; failed `{error}`; started `{attempt}`. The stream ends after completed, failed or canceled.
 */
export type { JobStreamEventType } from './enums';

/**
 * Examples of the OpenAPI document (docs/openapi.json): requests and answers of every route. Typed with the wire
 * schemas' types, so the compiler keeps them in shape; `apps/api/src/openapi.spec.ts` also parses each with its schema.
 */
import type { JobList, JobRequest, JobView } from '@dimoo/contracts';
import type {
  AuditPageSchema,
  CreatedKeySchema,
  CreatedTeamSchema,
  KeyListSchema,
  RotatedKeySchema,
  RotatedWebhookSecretSchema,
  TeamViewSchema,
  WebhookDeliveriesSchema,
  WebhookSecretsSchema,
} from '@dimoo/contracts';
import type { z } from 'zod';

export const EXAMPLE_IDS = {
  job: '0b6f3c5e-8d1a-4f7b-9c2e-5a4d3b2c1f00',
  team: '7d2e9a41-3c6b-4e8f-a1d0-2b5c8e9f4a11',
  key: 'c4a8e2f1-6b3d-4a9e-8f7c-1d2e3f4a5b22',
  newKey: 'e9b1d3c5-7f2a-4b6e-9d8c-3a4b5c6d7e33',
  upload: '3e5a7c9b-1d2f-4a6b-8c0d-2e4f6a8b0c66',
};

/** A 1×1 PNG (base64): put yours here (PNG, JPEG or WebP; a data: URL works too). */
const IMAGE = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4AWP4DwQACfsD/c8LaHIAAAAASUVORK5CYII=';
/** A 1×1 mask: white (brighter than half) is regenerated. */
const MASK = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4AWMAgv8AAQQBAP8H9UQAAAAASUVORK5CYII=';

const request = (summary: string, value: JobRequest) => ({ summary, value });

/** One request per task and image-to-image kind. */
export const JOB_REQUEST_EXAMPLES = {
  t2i: request('Text to image', { task: 't2i', prompt: 'a red circle at the top left', seed: 7, steps: 16, cfg: 2 }),
  t2iWebhook: request('Text to image, WebP, high priority, a webhook on progress and the end', {
    task: 't2i',
    prompt: 'a blue square at the center',
    outputFormat: 'webp',
    priority: 'high',
    previewEvery: 4,
    webhook: 'https://example.com/dimoo-hook',
    webhookEvents: ['progress', 'completed', 'failed'],
  }),
  paint: request('Paint: regenerate the masked cells', { task: 'paint', prompt: 'a green triangle', image: IMAGE, mask: MASK }),
  edit: request('Image to image: edit', { task: 'i2i', editType: 'edit', prompt: 'make the circle blue', images: [IMAGE] }),
  subject: request('Image to image: subject-driven', { task: 'i2i', editType: 'subject', prompt: 'the same object on a beach', images: [IMAGE] }),
  control: request('Image to image: controlled generation', { task: 'i2i', editType: 'control', prompt: 'a house following these edges', images: [IMAGE] }),
  style: request('Image to image: style transfer (the second image is the style reference)', {
    task: 'i2i',
    editType: 'style',
    prompt: 'in this style',
    images: [IMAGE, IMAGE],
  }),
  dense: request('Image to image: dense prediction (a depth map)', { task: 'i2i', editType: 'dense', target: 'depth', images: [IMAGE] }),
  multiView: request('Image to image: another view of the object', { task: 'i2i', editType: 'multiView', view: 'back', images: [IMAGE] }),
  mmu: request('Understanding: a question about an image', { task: 'mmu', question: 'what colour is the shape?', image: IMAGE }),
};

const part = (description: string) => ({ type: 'string', format: 'binary', description });
/** A submit as a multipart form: the JSON request in `request`, each image a part named after its field. */
export const MULTIPART_SUBMIT = {
  schema: {
    type: 'object',
    required: ['request'],
    properties: {
      request: { type: 'string', description: 'the JSON request (JobRequest) without its image fields' },
      image: part('the image (paint, mmu)'),
      mask: part('the mask (paint)'),
      'images.0': part('the first image (i2i)'),
      'images.1': part('the second image (i2i style: the style reference)'),
    },
  },
  example: { request: '{"task":"paint","prompt":"a green triangle"}' },
};

const CREATED = '2026-11-30T10:00:00.000Z';
const base: JobView = {
  id: EXAMPLE_IDS.job,
  task: 't2i',
  status: 'queued',
  progress: 0,
  step: 0,
  steps: null,
  seed: 7,
  model: { name: 'dimoo-tiny', checksum: 'sha256:3f1c9a0d5e7b2c4a6f8e0d1b3c5a7e9f' },
  attempts: 0,
  apiKeyId: EXAMPLE_IDS.key,
  createdAt: CREATED,
  startedAt: null,
  finishedAt: null,
  deadline: null,
  resultDeletedAt: null,
  timings: null,
  result: null,
  error: null,
};
const resultUrl = `/v1/jobs/${EXAMPLE_IDS.job}/result`;

export const JOB_VIEWS = {
  queued: base,
  running: { ...base, status: 'running', progress: 0.5, step: 8, steps: 16, attempts: 1, startedAt: '2026-11-30T10:00:00.120Z' },
  succeeded: {
    ...base,
    status: 'succeeded',
    progress: 1,
    step: 16,
    steps: 16,
    attempts: 1,
    startedAt: '2026-11-30T10:00:00.120Z',
    finishedAt: '2026-11-30T10:00:02.480Z',
    timings: { steps: 16, samplingMs: 2210, uploadMs: 12 },
    result: { kind: 'image', url: resultUrl, contentType: 'image/png', images: [resultUrl] },
  },
  answered: {
    ...base,
    task: 'mmu',
    status: 'succeeded',
    progress: 1,
    step: 32,
    steps: 32,
    attempts: 1,
    startedAt: '2026-11-30T10:00:00.120Z',
    finishedAt: '2026-11-30T10:00:01.050Z',
    result: { kind: 'text', text: 'The shape is red.', url: resultUrl },
  },
  canceled: { ...base, status: 'canceled', finishedAt: '2026-11-30T10:00:00.300Z' },
} satisfies Record<string, JobView>;

export const JOB_LIST: JobList = {
  data: [JOB_VIEWS.running, { ...JOB_VIEWS.succeeded, id: '1c7e5a3b-9d2f-4e6a-8b1c-0d9e8f7a6b44' }],
  hasMore: true,
  next: '/v1/jobs?limit=2&after=1c7e5a3b-9d2f-4e6a-8b1c-0d9e8f7a6b44',
};

/** What `GET /v1/jobs/:id/events` sends for a short job. */
export const EVENT_STREAM = [
  'retry: 2000',
  '',
  'id: 101',
  'event: queued',
  `data: {"jobId":"${EXAMPLE_IDS.job}","at":"2026-11-30T10:00:00.000Z"}`,
  '',
  'id: 103',
  'event: started',
  `data: {"jobId":"${EXAMPLE_IDS.job}","at":"2026-11-30T10:00:00.120Z","attempt":1}`,
  '',
  'id: 104',
  'event: progress',
  `data: {"jobId":"${EXAMPLE_IDS.job}","at":"2026-11-30T10:00:01.100Z","step":8,"steps":16}`,
  '',
  'id: 105',
  'event: preview',
  `data: {"jobId":"${EXAMPLE_IDS.job}","at":"2026-11-30T10:00:01.110Z","step":8,"url":"/v1/jobs/${EXAMPLE_IDS.job}/previews/8","contentType":"image/png"}`,
  '',
  'id: 107',
  'event: completed',
  `data: {"jobId":"${EXAMPLE_IDS.job}","at":"2026-11-30T10:00:02.480Z","url":"${resultUrl}"}`,
  '',
  '',
].join('\n');

type Of<S extends z.ZodType> = z.infer<S>;

export const TEAM: Of<typeof TeamViewSchema> = { id: EXAMPLE_IDS.team, name: 'research', weight: 2, maxQueued: 500, maxRunning: null, submitsPerMinute: 120 };
export const CREATED_TEAM: Of<typeof CreatedTeamSchema> = { id: EXAMPLE_IDS.team, name: 'research' };
export const CREATED_KEY: Of<typeof CreatedKeySchema> = { id: EXAMPLE_IDS.key, key: 'dimoo_4f9a2c1e7b3d5a8c0e6f2b4d9a1c3e5f7b9d', scopes: ['submit', 'read'] };
export const KEYS: Of<typeof KeyListSchema> = {
  data: [
    {
      id: EXAMPLE_IDS.newKey,
      name: 'ci',
      prefix: 'dimoo_8c2e4a',
      scopes: ['submit', 'read'],
      createdAt: '2026-11-30T09:00:00.000Z',
      revokedAt: null,
      expiresAt: null,
    },
    {
      id: EXAMPLE_IDS.key,
      name: 'ci',
      prefix: 'dimoo_4f9a2c',
      scopes: ['submit', 'read'],
      createdAt: '2026-10-01T09:00:00.000Z',
      revokedAt: null,
      expiresAt: '2026-12-01T09:00:00.000Z',
    },
  ],
};
export const ROTATED_KEY: Of<typeof RotatedKeySchema> = {
  id: EXAMPLE_IDS.newKey,
  key: 'dimoo_8c2e4a6b1d3f5e7a9c0b2d4f6a8c1e3b5d7f',
  replaces: EXAMPLE_IDS.key,
};
export const AUDIT: Of<typeof AuditPageSchema> = {
  data: [
    {
      id: '42',
      at: '2026-11-30T09:00:00.000Z',
      actor: 'bootstrap',
      actorKeyId: null,
      action: 'key.rotate',
      target: { type: 'apiKey', id: EXAMPLE_IDS.key },
      details: { graceSeconds: 86400, newKeyId: EXAMPLE_IDS.newKey },
    },
  ],
  hasMore: false,
};
export const DELIVERIES: Of<typeof WebhookDeliveriesSchema> = {
  url: 'https://example.com/dimoo-hook',
  data: [
    {
      id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c55',
      eventId: '107',
      event: 'completed',
      status: 'delivered',
      attempts: 2,
      deliveredAt: '2026-11-30T10:00:04.600Z',
      log: [
        { at: '2026-11-30T10:00:02.500Z', status: 502, error: 'HTTP 502', ms: 40, address: '203.0.113.7' },
        { at: '2026-11-30T10:00:04.550Z', status: 200, error: null, ms: 35, address: '203.0.113.7' },
      ],
    },
  ],
};
export const WEBHOOK_SECRETS: Of<typeof WebhookSecretsSchema> = { secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] };
export const ROTATED_SECRET: Of<typeof RotatedWebhookSecretSchema> = { secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD', graceSeconds: 86400 };

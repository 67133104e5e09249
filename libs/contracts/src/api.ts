/**
 * The API's answers besides the job view (jobs.ts): problems (RFC 9457), the messages of a job's event stream, teams,
 * keys, the audit log and webhook deliveries. The OpenAPI document (docs/openapi.json, `npm run openapi`) publishes
 * these shapes and the SDK (libs/sdk) is generated from it.
 */
import { z } from 'zod';
import type { JobStreamEventType } from './enums';
import { API_KEY_SCOPES } from './enums';

/** A field of a request (body field, query parameter or header) and why it was refused. */
export const FieldIssueSchema = z.object({ field: z.string(), reason: z.string() });

/** Every error answer: `application/problem+json`. */
export const ProblemSchema = z.object({
  type: z.string().describe('`about:blank#<slug>`: the kind of problem, stable for programs (e.g. invalid-request, rate-limited)'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z.array(FieldIssueSchema).optional().describe('input errors: every refused field with its reason'),
});
export type Problem = z.infer<typeof ProblemSchema>;

const JobErrorSchema = z.object({ type: z.string(), message: z.string(), field: z.string().optional() });
const at = z.string().describe('when the event was recorded (ISO 8601)');
const streamEvent = <E extends JobStreamEventType, D extends z.ZodRawShape>(event: E, data: D) =>
  z.object({
    id: z.string().describe('the event id: resume after it with Last-Event-ID'),
    event: z.literal(event),
    data: z.object({ jobId: z.uuid(), at, ...data }),
  });

/**
 * One message of `GET /v1/jobs/:id/events` (server-sent events: `id:`, `event:`, `data:` JSON). The stream ends after
 * completed, failed, canceled or expired.
 */
export const JobStreamEventSchema = z.discriminatedUnion('event', [
  streamEvent('queued', { reason: z.string().optional().describe('why the job was queued again (a lost worker)') }),
  streamEvent('started', { attempt: z.number().int().nullable() }),
  streamEvent('progress', { step: z.number().int(), steps: z.number().int() }),
  streamEvent('preview', { step: z.number().int(), url: z.string().describe('GET it for the preview PNG'), contentType: z.literal('image/png') }),
  streamEvent('completed', { url: z.string().describe('the result (GET: 303 to the image)'), text: z.string().optional().describe('the answer (mmu)') }),
  streamEvent('failed', { error: JobErrorSchema.nullable() }),
  streamEvent('canceled', {}),
  streamEvent('expired', {}),
]);
export type JobStreamEvent = z.infer<typeof JobStreamEventSchema>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** the schema covers every stream event type (enums.ts) and no other */
const _everyStreamEvent: Same<JobStreamEvent['event'], JobStreamEventType> = true;

const nullableLimit = z.number().int().min(1).nullable();
/** A team as admins see it: its share of the fleet (weight) and its limits (null: none). */
export const TeamViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  weight: z.number(),
  maxQueued: nullableLimit.describe('jobs waiting at once (429 beyond)'),
  maxRunning: nullableLimit.describe('jobs running at once (more wait)'),
  submitsPerMinute: nullableLimit.describe('submissions per minute (429 beyond)'),
});
export const CreatedTeamSchema = z.object({ id: z.uuid(), name: z.string() });

const time = z.string().describe('ISO 8601');
/** A key as admins see it: never its hash or plaintext. */
export const KeyViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string().describe('the first characters of the key (not secret): how logs and the audit log name it'),
  scopes: z.array(z.enum(API_KEY_SCOPES)),
  createdAt: time,
  revokedAt: time.nullable(),
  expiresAt: time.nullable().describe('a rotated key works until then'),
});
export const KeyListSchema = z.object({ data: z.array(KeyViewSchema) });
export const CreatedKeySchema = z.object({
  id: z.uuid(),
  key: z.string().describe('the key itself: shown in this answer only'),
  scopes: z.array(z.enum(API_KEY_SCOPES)),
});
export const RotatedKeySchema = z.object({
  id: z.uuid(),
  key: z.string().describe('the new key: shown in this answer only'),
  replaces: z.uuid().describe('the old key, working for graceSeconds more'),
});

export const AuditEntrySchema = z.object({
  id: z.string(),
  at: time,
  actor: z.string().describe('`bootstrap` or the acting key’s prefix'),
  actorKeyId: z.uuid().nullable(),
  action: z.string(),
  target: z.object({ type: z.string(), id: z.string() }),
  details: z.record(z.string(), z.unknown()).nullable(),
});
export const AuditPageSchema = z.object({ data: z.array(AuditEntrySchema), hasMore: z.boolean() });

/** One try of a webhook delivery, as its log keeps it. */
const DeliveryTrySchema = z.object({
  at: time,
  status: z.number().int().nullable().describe("the receiver's HTTP status; null when none answered"),
  error: z.string().nullable().optional(),
  ms: z.number(),
  address: z.string().optional().describe('the address posted to'),
});
export const WebhookDeliveriesSchema = z.object({
  url: z.string().nullable().describe("the job's webhook URL; null without one"),
  data: z.array(
    z.object({
      id: z.uuid().describe('the delivery id: the `webhook-id` header of each try'),
      eventId: z.string(),
      event: z.string().describe('the stream name of the event: started, progress, completed, failed, canceled, expired'),
      status: z.string().describe('pending, delivered or failed'),
      attempts: z.number().int(),
      deliveredAt: time.nullable(),
      log: z.array(DeliveryTrySchema),
    }),
  ),
});
export const WebhookSecretsSchema = z.object({ secrets: z.array(z.string()).describe('whsec_…, newest first') });
export const RotatedWebhookSecretSchema = z.object({ secret: z.string(), graceSeconds: z.number().int() });

/** `POST /v1/uploads`: where to PUT one image, then `{ "upload": id }` in a job. */
export const UploadSchema = z.object({
  id: z.uuid().describe('use it in a job as { "upload": id }'),
  url: z.string().describe('PUT the image bytes there (presigned, no API key)'),
  method: z.literal('PUT'),
  maxBytes: z.number().int(),
  expiresAt: time.describe('the URL works until then'),
  usableUntil: time.describe('the upload can be used in jobs until then'),
});

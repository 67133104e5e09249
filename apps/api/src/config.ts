/** The API's environment, validated once at boot: a bad value stops the process with the variable named. */
import { join } from 'node:path';
import { ServiceEnvSchema } from '@dimoo/config';
import { z } from 'zod';

export const ApiEnvSchema = ServiceEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  /**
   * the served model's manifest.json: requests are resolved against its defaults and limits, the API reads no other
   * model file (k8s mounts it from a ConfigMap, so the API runs with no model volume and with no worker up)
   */
  MODEL_MANIFEST: z.string().min(1).optional(),
  /** without MODEL_MANIFEST (local runs, compose): the model directory whose manifest.json is read */
  MODEL_DIR: z.string().min(1).optional(),
  /** bootstrap admin key: creates teams and their keys */
  ADMIN_API_KEY: z.string().min(24, 'use at least 24 characters'),
  /**
   * the bootstrap key before a rotation, accepted as well until removed: rotate without downtime by setting the new
   * key as ADMIN_API_KEY and the old one here, rolling out, then removing it
   */
  ADMIN_API_KEY_PREVIOUS: z.string().min(24, 'use at least 24 characters').optional(),
  /**
   * how long a verified API key and a team's share are remembered (no database round trip); 0: never. A revocation or
   * a change of limits takes effect at once on the replica that made it and, through Redis, on the others; this is
   * the bound when that message is lost (Redis down)
   */
  API_KEY_CACHE_MS: z.coerce.number().int().min(0).default(5000),
  /** jobs waiting in all before submits are refused with 503 (0: no cap) */
  MAX_QUEUED_JOBS: z.coerce.number().int().min(0).default(100000),
  /** failed authentications a source address may make per minute before it gets 429 */
  AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(20 * 1024 * 1024),
  /** how long a result's presigned URL (`GET /v1/jobs/:id/result`'s 303) stays valid */
  RESULT_URL_TTL_SECONDS: z.coerce.number().int().min(1).max(604800).default(3600),
  /** a finished job's images (inputs, previews, result) are removed this many days after it finished; 0: kept */
  RESULT_TTL_DAYS: z.coerce.number().min(0).default(30),
  /** how often the retention sweeper looks for expired results */
  RETENTION_SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(60000),
  OUTBOX_INTERVAL_MS: z.coerce.number().int().positive().default(2000),
  /**
   * how often the outbox also checks every queued job Redis should hold (a job whose hand-over was cut short by a
   * crash); at once when Redis lost its data
   */
  OUTBOX_FULL_SCAN_MS: z.coerce.number().int().positive().default(60000),
  /** rows the outbox and the reaper read per page (a pass reads up to 10 pages, resuming where the last stopped) */
  OUTBOX_PAGE_SIZE: z.coerce.number().int().min(1).max(10000).default(500),
  /** how often the reaper reconciles running jobs with the queue */
  REAPER_INTERVAL_MS: z.coerce.number().int().positive().default(10000),
  /** a running job whose worker sent nothing for this long, and that the queue lost, goes back to the queue */
  REAPER_STALE_MS: z.coerce.number().int().positive().default(90000),
  /** how often the orphan sweeper looks through a page of job objects (inputs of a submit that was never recorded) */
  ORPHAN_SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(600000),
  /** an object no job row points at is removed once it is this old (a submit writes its row seconds after its inputs) */
  ORPHAN_MIN_AGE_MS: z.coerce.number().int().min(1000).default(3600000),
  /**
   * events are pushed (Postgres LISTEN/NOTIFY); open streams also read the log this often, in case a notification was
   * lost while the listening connection was down (one query for all of them)
   */
  EVENTS_POLL_MS: z.coerce.number().int().min(20).default(2000),
  /** comment line sent on idle event streams so proxies keep them open */
  EVENTS_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15000),
}).refine((env) => env.MODEL_MANIFEST ?? env.MODEL_DIR, {
  path: ['MODEL_MANIFEST'],
  message: "set MODEL_MANIFEST (the served model's manifest.json) or MODEL_DIR (its directory)",
});
export type ApiEnv = z.infer<typeof ApiEnvSchema>;

/** The manifest file the API reads at boot: MODEL_MANIFEST, else `${MODEL_DIR}/manifest.json`. */
export const manifestFile = (env: ApiEnv): string => env.MODEL_MANIFEST ?? join(env.MODEL_DIR!, 'manifest.json');

/**
 * Examples of the admin routes in the OpenAPI document: teams, jobs of every team, retries and queues. Typed with the
 * wire schemas' types; `apps/api/src/openapi.spec.ts` also parses each with its schema.
 */
import type { AdminJob, AdminJobDetail, AdminJobPage, QueueItem } from '@dimoo/contracts';
import { QUEUE_NAMES } from '@dimoo/queue';
import { EXAMPLE_IDS, JOB_VIEWS, TEAM } from '../common/examples';

export const TEAMS = {
  items: [TEAM, { ...TEAM, id: '5b1d3f7a-9c2e-4a6b-8d0f-1e3a5c7e9b55', name: 'web', weight: 1, maxQueued: null, submitsPerMinute: null }],
};

const ofTeam = { teamId: EXAMPLE_IDS.team, teamName: TEAM.name, apiKeyId: EXAMPLE_IDS.key, retryOf: null };
const FAILED_JOB = '2d4f6a8c-0e1b-4c3d-9e5f-7a9b1c3d5e77';

export const ADMIN_JOBS = {
  succeeded: { ...JOB_VIEWS.succeeded, ...ofTeam },
  failed: {
    ...JOB_VIEWS.running,
    ...ofTeam,
    id: FAILED_JOB,
    status: 'failed',
    finishedAt: '2026-11-30T10:00:01.300Z',
    error: { type: 'engine-error', message: 'the engine thread exited' },
  },
  retried: { ...JOB_VIEWS.queued, ...ofTeam, apiKeyId: null, retryOf: FAILED_JOB },
} satisfies Record<string, AdminJob>;

export const ADMIN_JOB_PAGE: AdminJobPage = {
  items: [ADMIN_JOBS.succeeded, ADMIN_JOBS.failed],
  hasMore: true,
  next: `/v1/admin/jobs?limit=2&status=succeeded%2Cfailed&after=${FAILED_JOB}`,
};

const at = (ms: number) => new Date(Date.parse('2026-11-30T10:00:00.000Z') + ms).toISOString();
export const ADMIN_JOB_DETAIL: AdminJobDetail = {
  ...ADMIN_JOBS.succeeded,
  params: { task: 't2i', prompt: 'a red circle at the top left', steps: 16, seed: 7 },
  events: [
    { seq: 101, type: 'queued', at: at(0), data: null },
    { seq: 102, type: 'enqueued', at: at(4), data: null },
    { seq: 103, type: 'started', at: at(120), data: { workerId: 'worker-1', batchId: null, attempt: 1 } },
    { seq: 104, type: 'progress', at: at(1100), data: { step: 8, steps: 16 } },
    { seq: 107, type: 'succeeded', at: at(2480), data: { resultKey: 'teams/…/result.png', resultText: null } },
  ],
  timings: { waitMs: 120, runMs: 2360, totalMs: 2480, steps: 16, samplingMs: 2210, uploadMs: 12 },
};

export const QUEUE: QueueItem = {
  name: QUEUE_NAMES.generation,
  paused: false,
  counts: { waiting: 3, prioritized: 0, active: 8, delayed: 0, completed: 1204, failed: 2 },
};
export const QUEUES = { items: [QUEUE] };

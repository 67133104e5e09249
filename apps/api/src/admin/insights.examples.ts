/**
 * Examples of the admin read models in the OpenAPI document (workers, stats, batches, usage). Typed with the wire
 * schemas' types; `apps/api/src/openapi.spec.ts` also parses each with its schema.
 */
import type { AdminStats, BatchList, Usage, WorkerList } from '@dimoo/contracts';
import { EXAMPLE_IDS } from '../common/examples';

const CHECKSUM = '3f1c9a0d5e7b2c4a6f8e0d1b3c5a7e9f1d3b5a7c9e0f2d4b6a8c0e1f3a5b7c9d';
const BATCH = '9a7c5e3b-1d0f-4e2a-8b6c-4d2f0a8e6c44';
const counts = { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, expired: 0 };

export const WORKERS: WorkerList = {
  items: [
    {
      id: 'dimoo-worker-gpu-7c9f4-1',
      host: 'dimoo-worker-gpu-7c9f4',
      pid: 1,
      modelName: 'dimoo',
      modelVersion: '1.0',
      modelChecksum: CHECKSUM,
      modelMatches: true,
      executionProvider: 'cuda',
      slots: 8,
      runningJobs: 3,
      currentBatchId: BATCH,
      jobsDone: 1289,
      jobsFailed: 2,
      lastError: 'EngineJobError: prompt too long for the model (512 tokens at most)',
      startedAt: '2026-11-30T08:00:00.000Z',
      heartbeatAt: '2026-11-30T10:00:00.000Z',
      stale: false,
    },
  ],
};

export const STATS: AdminStats = {
  generatedAt: '2026-11-30T10:02:30.000Z',
  minutes: 3,
  byStatus: { ...counts, queued: 4, running: 3, succeeded: 41, failed: 1 },
  byTeam: [{ teamId: EXAMPLE_IDS.team, teamName: 'research', byStatus: { ...counts, queued: 4, running: 3, succeeded: 41, failed: 1 } }],
  series: [
    { t: '2026-11-30T10:00:00.000Z', succeeded: 15, failed: 1, waitP50Ms: 820, waitP95Ms: 2400, runP50Ms: 4100, runP95Ms: 6900 },
    { t: '2026-11-30T10:01:00.000Z', succeeded: 17, failed: 0, waitP50Ms: 910, waitP95Ms: 2650, runP50Ms: 4050, runP95Ms: 7120 },
    { t: '2026-11-30T10:02:00.000Z', succeeded: 9, failed: 0, waitP50Ms: 760, waitP95Ms: 1900, runP50Ms: 3980, runP95Ms: 6400 },
  ],
  batches: {
    count: 6,
    meanSize: 5.4,
    maxSize: 8,
    stepP50Ms: 38.5,
    stepP95Ms: 61.2,
    cacheHitRatio: 0.41,
    maxCacheBytes: 268435456,
    positions: 1180000,
    fullPositions: 2000000,
  },
  oldestWaiting: { id: EXAMPLE_IDS.job, teamId: EXAMPLE_IDS.team, createdAt: '2026-11-30T10:02:18.000Z', ageS: 12 },
  failuresLastHour: 1,
  workers: { live: 2, stale: 0 },
  waitingNoWorker: false,
};

export const BATCHES: BatchList = {
  items: [
    {
      id: BATCH,
      workerId: 'dimoo-worker-gpu-7c9f4-1',
      startedAt: '2026-11-30T10:00:00.000Z',
      finishedAt: '2026-11-30T10:00:01.900Z',
      jobIds: [EXAMPLE_IDS.job, '2d4f6a8c-0e1b-4c3d-9e5f-7a9b1c3d5e77'],
      stats: {
        steps: 32,
        jobs: 2,
        sizeOverTime: [
          [0, 1],
          [120, 2],
        ],
        maxSize: 2,
        meanSize: 1.94,
        modelCalls: 32,
        stepMs: { mean: 58.1, p50: 55.2, p95: 80.4, max: 96.3 },
        forwardMs: 1702.4,
        positions: 41000,
        fullPositions: 65536,
        cacheHitRatio: 0.37,
        maxCacheBytes: 33554432,
        maxBatchCost: 2048,
      },
    },
  ],
};

export const USAGE: Usage = {
  items: [
    { day: '2026-11-29', teamId: EXAMPLE_IDS.team, teamName: 'research', jobs: 812, images: 1104, computeSeconds: 3321.5 },
    { day: '2026-11-30', teamId: EXAMPLE_IDS.team, teamName: 'research', jobs: 240, images: 302, computeSeconds: 988.25 },
  ],
};

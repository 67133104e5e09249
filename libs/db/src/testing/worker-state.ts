import type { WorkerState } from '../worker.repository';

/** A worker's registry row for tests: an idle CPU worker of the tiny model, changed by `over`. */
export const workerState = (over: Partial<WorkerState> = {}): WorkerState => ({
  id: 'w1',
  host: 'node-a',
  pid: 41,
  modelName: 'dimoo-tiny',
  modelVersion: '1',
  modelChecksum: 'abc',
  executionProvider: 'cpu',
  slots: 4,
  heartbeatMs: 1000,
  runningJobs: 0,
  currentBatchId: null,
  jobsDone: 0,
  jobsFailed: 0,
  lastError: null,
  startedAt: new Date(),
  ...over,
});

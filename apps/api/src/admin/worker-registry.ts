/**
 * The worker registry as this API judges it: each registered worker, stale or not (the database's clock against the
 * worker's own heartbeat period, `WORKER_STALE_PERIODS` of them), and whether it serves the model this API resolves
 * requests against (its model checksum against that of `MODEL_MANIFEST`). Read by `GET /v1/admin/workers` and the
 * metrics (`dimoo_registered_workers{state}`).
 */
import { Inject, Injectable } from '@nestjs/common';
import type { ModelManifest, WorkerView } from '@dimoo/contracts';
import { WorkerRepository } from '@dimoo/db';
import { modelChecksum } from '@dimoo/model';
import { MODEL_MANIFEST } from '../tokens';

@Injectable()
export class WorkerRegistry {
  /** the checksum of the served manifest's files: what a worker's own must equal */
  readonly servedChecksum: string;

  constructor(
    private readonly workers: WorkerRepository,
    @Inject(MODEL_MANIFEST) manifest: ModelManifest,
  ) {
    this.servedChecksum = modelChecksum(manifest);
  }

  async list(): Promise<WorkerView[]> {
    return (await this.workers.list()).map((w) => ({
      id: w.id,
      host: w.host,
      pid: w.pid,
      modelName: w.modelName,
      modelVersion: w.modelVersion,
      modelChecksum: w.modelChecksum,
      modelMatches: w.modelChecksum === this.servedChecksum,
      executionProvider: w.executionProvider,
      slots: w.slots,
      runningJobs: w.runningJobs,
      currentBatchId: w.currentBatchId,
      jobsDone: w.jobsDone,
      jobsFailed: w.jobsFailed,
      lastError: w.lastError,
      startedAt: w.startedAt.toISOString(),
      heartbeatAt: w.heartbeatAt.toISOString(),
      stale: w.stale,
    }));
  }
}

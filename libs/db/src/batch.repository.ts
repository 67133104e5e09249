import { NotFound } from './errors';
import { type Batch, isUuid, Prisma, type PrismaClient } from './prisma';

/** Batches a worker ran (several jobs stepped together). Jobs point at them through `Job.batchId`. */
export class BatchRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  public async open(workerId: string): Promise<Batch> {
    return this.prisma.batch.create({ data: { workerId } });
  }

  /**
   * Stores a finished batch in one go (the worker accumulates it in memory while it runs) with the jobs that ran in it,
   * and points those jobs at it — each job at the first batch it ran in. `jobIds` may name a job's engine runs
   * (`<job>#<i>` for image i of a job of n images): each job is recorded once. `id`: the id the worker gave the batch
   * while it ran (its registry row shows it), a new one otherwise.
   */
  public async record(input: {
    id?: string;
    workerId: string;
    startedAt: Date;
    finishedAt: Date;
    jobIds: readonly string[];
    stats: Prisma.InputJsonValue;
  }): Promise<Batch> {
    const ids = [...new Set(input.jobIds.map((id) => id.split('#')[0]!))].filter(isUuid);
    return this.prisma.$transaction(async (tx) => {
      const batch = await tx.batch.create({
        data: {
          ...(input.id !== undefined && isUuid(input.id) ? { id: input.id } : {}),
          workerId: input.workerId,
          createdAt: input.startedAt,
          finishedAt: input.finishedAt,
          stats: input.stats,
          jobIds: ids,
        },
      });
      if (ids.length > 0) await tx.job.updateMany({ where: { id: { in: ids }, batchId: null }, data: { batchId: batch.id } });
      return batch;
    });
  }

  /** The most recent batches, newest first (dashboard, metrics). */
  public async recent(limit = 50): Promise<Batch[]> {
    return this.prisma.batch.findMany({ orderBy: { createdAt: 'desc' }, take: limit });
  }

  /** @throws NotFound */
  public async close(id: string, stats?: Prisma.InputJsonValue): Promise<Batch> {
    if (!isUuid(id)) throw new NotFound('batch', id);
    const { count } = await this.prisma.batch.updateMany({
      where: { id },
      data: { finishedAt: new Date(), stats: stats ?? Prisma.DbNull },
    });
    if (count === 0) throw new NotFound('batch', id);
    return this.prisma.batch.findUniqueOrThrow({ where: { id } });
  }
}

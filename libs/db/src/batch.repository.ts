import { NotFound } from './errors';
import { type Batch, isUuid, Prisma, type PrismaClient } from './prisma';

/** Batches a worker ran (several jobs stepped together). Jobs point at them through `Job.batchId`. */
export class BatchRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  public async open(workerId: string): Promise<Batch> {
    return this.prisma.batch.create({ data: { workerId } });
  }

  /**
   * Stores a finished batch in one go (the worker accumulates it in memory while it runs) and points the jobs that ran
   * in it at it — each job at the first batch it ran in.
   */
  public async record(input: { workerId: string; startedAt: Date; finishedAt: Date; jobIds: readonly string[]; stats: Prisma.InputJsonValue }): Promise<Batch> {
    return this.prisma.$transaction(async (tx) => {
      const batch = await tx.batch.create({ data: { workerId: input.workerId, createdAt: input.startedAt, finishedAt: input.finishedAt, stats: input.stats } });
      const ids = input.jobIds.filter(isUuid);
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

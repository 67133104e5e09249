import { NotFound } from './errors';
import { type Batch, isUuid, Prisma, type PrismaClient } from './prisma';

/** Batches a worker ran (several jobs stepped together). Jobs point at them through `Job.batchId`. */
export class BatchRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  public async open(workerId: string): Promise<Batch> {
    return this.prisma.batch.create({ data: { workerId } });
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

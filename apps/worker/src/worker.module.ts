import type { DynamicModule } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { TelemetryShutdown } from '@dimoo/config';
import { BatchRepository, createPrisma, JobRepository, PrismaClient, WorkerRepository } from '@dimoo/db';
import type { EngineHost } from '@dimoo/runtime';
import { ObjectStore, openObjectStore } from '@dimoo/storage';
import type { WorkerEnv } from './config';
import { GenerationProcessor } from './generation.processor';
import { WorkerMetrics } from './metrics';
import { ENGINE, WORKER_ENV } from './tokens';

/** Exports the last spans at shutdown: an imported module shuts down after the module importing it (the processor). */
@Module({ providers: [TelemetryShutdown] })
class TelemetryModule {}

@Module({})
export class WorkerModule {
  static forRoot(env: WorkerEnv, engine: EngineHost, metrics: WorkerMetrics): DynamicModule {
    return {
      module: WorkerModule,
      imports: [TelemetryModule],
      providers: [
        { provide: WORKER_ENV, useValue: env },
        { provide: ENGINE, useValue: engine },
        { provide: WorkerMetrics, useValue: metrics },
        {
          provide: PrismaClient,
          useFactory: () => createPrisma(env.DATABASE_URL, { connectionTimeoutMs: env.DATABASE_TIMEOUT_MS, queryTimeoutMs: env.DATABASE_TIMEOUT_MS }),
        },
        { provide: JobRepository, useFactory: (p: PrismaClient) => new JobRepository(p), inject: [PrismaClient] },
        { provide: BatchRepository, useFactory: (p: PrismaClient) => new BatchRepository(p), inject: [PrismaClient] },
        { provide: WorkerRepository, useFactory: (p: PrismaClient) => new WorkerRepository(p), inject: [PrismaClient] },
        { provide: ObjectStore, useFactory: () => openObjectStore(env) },
        GenerationProcessor,
      ],
    };
  }
}

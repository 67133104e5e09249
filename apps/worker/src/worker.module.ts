import type { DynamicModule } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { createPrisma, JobRepository, PrismaClient } from '@dimoo/db';
import type { EngineHost } from '@dimoo/runtime';
import { ObjectStore } from '@dimoo/storage';
import type { WorkerEnv } from './config';
import { GenerationProcessor } from './generation.processor';
import { ENGINE, WORKER_ENV } from './tokens';

@Module({})
export class WorkerModule {
  static forRoot(env: WorkerEnv, engine: EngineHost): DynamicModule {
    return {
      module: WorkerModule,
      providers: [
        { provide: WORKER_ENV, useValue: env },
        { provide: ENGINE, useValue: engine },
        { provide: PrismaClient, useFactory: () => createPrisma(env.DATABASE_URL) },
        { provide: JobRepository, useFactory: (p: PrismaClient) => new JobRepository(p), inject: [PrismaClient] },
        {
          provide: ObjectStore,
          useFactory: async () => {
            const store = new ObjectStore({
              endPoint: env.S3_ENDPOINT,
              port: env.S3_PORT,
              useSSL: env.S3_USE_SSL,
              accessKey: env.S3_ACCESS_KEY,
              secretKey: env.S3_SECRET_KEY,
              bucket: env.S3_BUCKET,
              region: env.S3_REGION,
            });
            await store.ensureBucket();
            return store;
          },
        },
        GenerationProcessor,
      ],
    };
  }
}

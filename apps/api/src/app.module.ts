import type { DynamicModule } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { BullModule } from '@nestjs/bullmq';
import type { ModelManifest } from '@dimoo/contracts';
import {
  AdminJobRepository,
  ApiKeyRepository,
  createPrisma,
  InsightsRepository,
  JobRepository,
  PrismaClient,
  WebhookRepository,
  WorkerRepository,
} from '@dimoo/db';
import { ObjectStore, openObjectStore } from '@dimoo/storage';
import { AdminController, AuditController } from './auth/admin.controller';
import { ApiKeyGuard } from './auth/api-key.guard';
import { CacheBus, KeyCache, TeamShares } from './auth/caches';
import { ProblemFilter } from './common/problem';
import type { ApiEnv } from './config';
import { QUEUE_NAMES, queueTelemetry, redisConnection } from '@dimoo/queue';
import { tracingEnabled } from '@dimoo/config';
import { ObservabilityModule } from './common/logging';
import { InsightsController } from './admin/insights.controller';
import { AdminJobsController } from './admin/admin-jobs.controller';
import { BoardSessions } from './admin/board';
import { QueuesController } from './admin/queues.controller';
import { WorkerRegistry } from './admin/worker-registry';
import { HealthController } from './health/health.controller';
import { MetricsController } from './metrics/metrics.controller';
import { ApiMetrics } from './metrics/metrics.service';
import { DispatchService } from './jobs/dispatch.service';
import { JobEventsHub } from './jobs/job-events.service';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { OrphanSweeperService } from './jobs/orphan-sweeper.service';
import { OutboxService } from './jobs/outbox.service';
import { ReaperService } from './jobs/reaper.service';
import { RetentionService } from './jobs/retention.service';
import { InputImages } from './jobs/inputs';
import { UploadsController } from './jobs/uploads.controller';
import { WebhooksController } from './jobs/webhooks.controller';
import { API_ENV, MODEL_MANIFEST } from './tokens';

@Module({})
export class AppModule {
  static forRoot(env: ApiEnv, manifest: ModelManifest): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ObservabilityModule.forRoot(env),
        BullModule.forRoot({
          connection: redisConnection(env.REDIS_URL, { offlineQueue: false }),
          prefix: env.QUEUE_PREFIX,
          telemetry: queueTelemetry(tracingEnabled()),
        }),
        BullModule.registerQueue({ name: QUEUE_NAMES.generation }),
      ],
      controllers: [
        JobsController,
        UploadsController,
        WebhooksController,
        AdminController,
        AuditController,
        InsightsController,
        AdminJobsController,
        QueuesController,
        HealthController,
        MetricsController,
      ],
      providers: [
        { provide: API_ENV, useValue: env },
        { provide: MODEL_MANIFEST, useValue: manifest },
        {
          provide: PrismaClient,
          useFactory: () => createPrisma(env.DATABASE_URL, { connectionTimeoutMs: env.DATABASE_TIMEOUT_MS, queryTimeoutMs: env.DATABASE_TIMEOUT_MS }),
        },
        { provide: JobRepository, useFactory: (p: PrismaClient) => new JobRepository(p), inject: [PrismaClient] },
        { provide: ApiKeyRepository, useFactory: (p: PrismaClient) => new ApiKeyRepository(p), inject: [PrismaClient] },
        { provide: WebhookRepository, useFactory: (p: PrismaClient) => new WebhookRepository(p), inject: [PrismaClient] },
        { provide: AdminJobRepository, useFactory: (p: PrismaClient) => new AdminJobRepository(p), inject: [PrismaClient] },
        BoardSessions,
        { provide: WorkerRepository, useFactory: (p: PrismaClient) => new WorkerRepository(p), inject: [PrismaClient] },
        { provide: InsightsRepository, useFactory: (p: PrismaClient) => new InsightsRepository(p), inject: [PrismaClient] },
        WorkerRegistry,
        { provide: ObjectStore, useFactory: () => openObjectStore(env) },
        KeyCache,
        TeamShares,
        CacheBus,
        ApiKeyGuard,
        DispatchService,
        JobsService,
        InputImages,
        JobEventsHub,
        OutboxService,
        ReaperService,
        RetentionService,
        OrphanSweeperService,
        ApiMetrics,
        { provide: APP_FILTER, useClass: ProblemFilter },
      ],
    };
  }
}

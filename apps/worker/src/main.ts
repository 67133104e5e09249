import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { EngineHost } from '@dimoo/runtime';
import { loadEnv } from '@dimoo/config';
import type { WorkerEnv } from './config';
import { WorkerEnvSchema } from './config';
import { WorkerModule } from './worker.module';

export async function createWorker(env: WorkerEnv): Promise<INestApplicationContext> {
  const log = new Logger('worker');
  // refuses to start on a missing or corrupt model, or a missing provider without ALLOW_CPU_FALLBACK
  const engine = await EngineHost.start(
    {
      modelDir: env.MODEL_DIR,
      verify: true,
      ...(env.MAX_BATCH_ROWS ? { maxRows: env.MAX_BATCH_ROWS } : {}),
      batch: { mode: env.BATCH_MODE, costBudget: env.BATCH_COST_BUDGET, waitMs: env.BATCH_WAIT_MS },
      previewEvery: env.PREVIEW_EVERY_STEPS,
      mlCachePath: env.ML_CACHE_PATH,
      session: {
        provider: env.EXECUTION_PROVIDER,
        allowCpuFallback: env.ALLOW_CPU_FALLBACK,
        ...(env.INTRA_OP_THREADS ? { intraOpThreads: env.INTRA_OP_THREADS } : {}),
      },
    },
    { onLog: (m) => log.warn(m) },
  );
  log.log(
    `model ${engine.model.name} ${engine.model.version} (${engine.model.checksum.slice(0, 12)}) on ${engine.provider}; ${env.BATCH_SLOTS} batch slots, ${env.BATCH_MODE} batching (budget ${env.BATCH_COST_BUDGET}, window ${env.BATCH_WAIT_MS} ms)`,
  );
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(env, engine), { abortOnError: false, logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  return app;
}

if (require.main === module) {
  createWorker(loadEnv(WorkerEnvSchema)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

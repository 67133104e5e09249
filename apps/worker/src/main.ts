// first: tracing patches http, pg and ioredis as they load
import './instrument';
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { EngineHost } from '@dimoo/runtime';
import { Logger as PinoNestLogger, PinoLogger } from 'nestjs-pino';
import { createLogger, loadEnv, serviceName, tracingEnabled } from '@dimoo/config';
import type { WorkerEnv } from './config';
import { WorkerEnvSchema } from './config';
import { HealthServer } from './health';
import { WorkerMetrics } from './metrics';
import { WorkerModule } from './worker.module';

export async function createWorker(env: WorkerEnv): Promise<INestApplicationContext | null> {
  // every Logger's lines through pino (LOG_FORMAT, LOG_LEVEL), each with this worker's id
  const pino = createLogger(serviceName('dimoo-worker', env), env, { base: { worker: env.WORKER_ID }, traces: tracingEnabled() });
  const logger = new PinoNestLogger(new PinoLogger({ pinoHttp: { logger: pino } }), {});
  Logger.overrideLogger(logger);
  const log = new Logger('worker');
  let app: INestApplicationContext | null = null;
  const metrics = new WorkerMetrics(env.WORKER_ID);
  const health = await HealthServer.start(env.HEALTH_PORT, env.WORKER_ID, metrics.registry);
  // refuses to start on a missing or corrupt model, or a missing provider without ALLOW_CPU_FALLBACK
  const engine = await EngineHost.start(
    {
      modelDir: env.MODEL_DIR,
      verify: true,
      ...(env.MAX_BATCH_ROWS ? { maxRows: env.MAX_BATCH_ROWS } : {}),
      batch: { mode: env.BATCH_MODE, costBudget: env.BATCH_COST_BUDGET, waitMs: env.BATCH_WAIT_MS },
      previewEvery: env.PREVIEW_EVERY_STEPS,
      mlCachePath: env.ML_CACHE_PATH,
      ...(env.FAULT_ENGINE_EXIT_AFTER_STEPS ? { exitAfterSteps: env.FAULT_ENGINE_EXIT_AFTER_STEPS } : {}),
      session: {
        provider: env.EXECUTION_PROVIDER,
        allowCpuFallback: env.ALLOW_CPU_FALLBACK,
        ...(env.INTRA_OP_THREADS ? { intraOpThreads: env.INTRA_OP_THREADS } : {}),
      },
    },
    {
      onLog: (m) => log.warn(m),
      // the engine thread died: the jobs it held were failed back to the queue (retried, on another worker too);
      // this process can run nothing more, so it stops taking jobs and ends non-zero for its supervisor to restart it
      onDeath: (err) => {
        log.error(`${err.message}: stopping`);
        health.set({ state: 'stopping' });
        const exit = () => process.exit(1);
        void (app ? app.close().then(exit, exit) : exit());
      },
    },
  ).catch((err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    // one line a log pipeline (and the dashboard) can pick out: this worker can serve nothing
    console.error(JSON.stringify({ event: 'model-load-failed', worker: env.WORKER_ID, modelDir: env.MODEL_DIR, error }));
    if (!health.serving) throw err;
    // with a health endpoint the worker stays up and says why it is not ready: a restart would not load the model either
    health.set({ state: 'model-failed', error });
    return null;
  });
  if (!engine) return null;
  log.log(
    `model ${engine.model.name} ${engine.model.version} (${engine.model.checksum.slice(0, 12)}) on ${engine.provider}; ${env.BATCH_SLOTS} batch slots, ${env.BATCH_MODE} batching (budget ${env.BATCH_COST_BUDGET}, window ${env.BATCH_WAIT_MS} ms)`,
  );
  app = await NestFactory.createApplicationContext(WorkerModule.forRoot(env, engine, metrics), { abortOnError: false, logger });
  app.enableShutdownHooks();
  health.set({ state: 'ready', model: `${engine.model.name} ${engine.model.version}` });
  return app;
}

if (require.main === module) {
  createWorker(loadEnv(WorkerEnvSchema)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

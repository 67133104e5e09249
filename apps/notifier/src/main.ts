/** The webhook notifier's entry point: `node -r @swc-node/register apps/notifier/src/main.ts` (env: NotifierEnvSchema). */
// first: tracing patches http, pg and ioredis as they load
import './instrument';
import { Logger } from '@nestjs/common';
import { Logger as PinoNestLogger, PinoLogger } from 'nestjs-pino';
import { createLogger, loadEnv, serviceName, shutdownTelemetry, tracingEnabled } from '@dimoo/config';
import { createPrisma } from '@dimoo/db';
import { NotifierEnvSchema } from './config';
import { NotifierMetrics, serveMetrics } from './metrics';
import { Notifier } from './notifier';

async function main(): Promise<void> {
  const env = loadEnv(NotifierEnvSchema);
  // every Logger's lines through pino (LOG_FORMAT, LOG_LEVEL)
  const pino = createLogger(serviceName('dimoo-notifier', env), env, { traces: tracingEnabled() });
  Logger.overrideLogger(new PinoNestLogger(new PinoLogger({ pinoHttp: { logger: pino } }), {}));
  const prisma = createPrisma(env.DATABASE_URL, { connectionTimeoutMs: env.DATABASE_TIMEOUT_MS, queryTimeoutMs: env.DATABASE_TIMEOUT_MS });
  const metrics = new NotifierMetrics();
  const notifier = new Notifier(env, prisma, metrics);
  const server = await serveMetrics(env.METRICS_PORT, metrics);
  await notifier.start();
  new Logger('notifier').log(`delivering webhooks (${env.WEBHOOK_ALLOW.length} allowed private range(s))`);
  const stop = () =>
    void notifier
      .close()
      .then(() => new Promise((r) => (server ? server.close(r) : r(undefined))))
      .then(() => prisma.$disconnect())
      .then(() => shutdownTelemetry())
      .then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

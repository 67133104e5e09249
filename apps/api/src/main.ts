// first: tracing patches http, Express, Nest, pg and ioredis as they load
import './instrument';
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { Logger as PinoLogger } from 'nestjs-pino';
import type { ModelManifest } from '@dimoo/contracts';
import { loadManifestFile } from '@dimoo/model';
import { AppModule } from './app.module';
import { mountBoard } from './admin/board';
import { bodyErrors, clientErrors, jsonBody } from './common/body';
import { RequestLogging } from './common/logging';
import { mountDashboard } from './dashboard';
import type { ApiEnv } from './config';
import { buildOpenApiDocument } from './openapi';
import { ApiEnvSchema, manifestFile } from './config';
import { MODEL_MANIFEST } from './tokens';
import { loadEnv } from '@dimoo/config';

export async function createApi(env: ApiEnv): Promise<NestExpressApplication> {
  // the manifest alone (no model file): the API serves no model, it resolves requests against the served one's limits
  const manifest = await loadManifestFile(manifestFile(env));
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, manifest), { bodyParser: false, abortOnError: false, bufferLogs: true });
  // Nest's own lines and every Logger's go through pino (LOG_FORMAT, LOG_LEVEL: common/logging.ts)
  app.useLogger(app.get(PinoLogger));
  // first: every request gets its id and its line, refused bodies and unrouted ones too
  app.use(app.get(RequestLogging).middleware);
  app.use(jsonBody(env.MAX_BODY_BYTES));
  app.use(bodyErrors);
  mountBoard(app);
  mountDashboard(app);
  clientErrors(app.getHttpServer());
  app.enableShutdownHooks();
  // the same document `npm run openapi` writes to docs/openapi.json
  SwaggerModule.setup('docs', app, buildOpenApiDocument(app));
  return app;
}

async function main(): Promise<void> {
  const env = loadEnv(ApiEnvSchema);
  const app = await createApi(env);
  await app.listen(env.PORT, env.HOST);
  const model = app.get<ModelManifest>(MODEL_MANIFEST);
  new Logger('api').log(`listening on http://${env.HOST}:${env.PORT} (docs at /docs); model ${model.name} ${model.version} (${manifestFile(env)})`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

import 'reflect-metadata';
import type { LogLevel } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { loadManifest } from '@dimoo/model';
import { AppModule } from './app.module';
import { bodyErrors, clientErrors, jsonBody } from './common/body';
import type { ApiEnv } from './config';
import { buildOpenApiDocument } from './openapi';
import { ApiEnvSchema } from './config';
import { loadEnv } from '@dimoo/config';

export async function createApi(env: ApiEnv, logger: LogLevel[] = ['error', 'warn', 'log']): Promise<NestExpressApplication> {
  const manifest = await loadManifest(env.MODEL_DIR, { verify: false });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, manifest), { bodyParser: false, abortOnError: false, logger });
  app.use(jsonBody(env.MAX_BODY_BYTES));
  app.use(bodyErrors);
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
  new Logger('api').log(`listening on http://${env.HOST}:${env.PORT} (docs at /docs)`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

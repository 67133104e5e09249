import 'reflect-metadata';
import type { LogLevel } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { loadManifest } from '@dimoo/model';
import { AppModule } from './app.module';
import type { ApiEnv } from './config';
import { ApiEnvSchema } from './config';
import { loadEnv } from '@dimoo/config';

/** Body-parser failures (bad JSON, too large) as problem+json, before any route runs. */
function bodyErrors(err: { type?: string; status?: number; message?: string }, _req: Request, res: Response, next: NextFunction): void {
  if (err.type === 'entity.parse.failed' || err.type === 'entity.too.large') {
    const status = err.type === 'entity.too.large' ? 413 : 400;
    res
      .status(status)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: `about:blank#${err.type === 'entity.too.large' ? 'body-too-large' : 'malformed-json'}`,
          title: status === 413 ? 'Request body too large' : 'Malformed JSON',
          status,
          detail: err.message,
          errors: [{ field: '(body)', reason: err.message ?? 'unreadable body' }],
        }),
      );
    return;
  }
  next(err);
}

export async function createApi(env: ApiEnv, logger: LogLevel[] = ['error', 'warn', 'log']): Promise<NestExpressApplication> {
  const manifest = await loadManifest(env.MODEL_DIR, { verify: false });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, manifest), { bodyParser: false, abortOnError: false, logger });
  app.use(express.json({ limit: env.MAX_BODY_BYTES }));
  app.use(bodyErrors);
  app.enableShutdownHooks();
  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('DiMOO Serve')
      .setDescription('Discrete-diffusion omni model as an async job service')
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, doc);
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

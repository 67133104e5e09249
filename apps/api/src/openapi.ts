/**
 * The OpenAPI document: built from the controllers' metadata (apps/api/src/common/openapi.ts), served at /docs and
 * /docs-json, and written to docs/openapi.json by `npm run openapi` (the SDK, libs/sdk, is generated from that file).
 *
 * The script needs no Postgres, Redis or S3: it creates the real AppModule in Nest's preview mode, which resolves the
 * module graph (controllers, routes, decorators) without instantiating any provider, so no client is created and
 * nothing connects. The document is therefore the served one, not a copy kept beside it: same module, same routes,
 * same function (`buildOpenApiDocument`); the end-to-end tests compare the file with a running API's /docs-json.
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { ModelManifest } from '@dimoo/contracts';
import { AppModule } from './app.module';
import { addMoreBodies, componentSchemas, SECURITY } from './common/openapi';
import { ApiEnvSchema } from './config';

export const OPENAPI_FILE = resolve(__dirname, '../../../docs/openapi.json');

/** The document of an application created from AppModule (served or preview). */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setOpenAPIVersion('3.1.0')
    .setTitle('DiMOO Serve')
    .setDescription(
      'A discrete-diffusion omni model (text to image, painting, image to image, understanding) as an async job API. ' +
        'Submit a job (`POST /v1/jobs`: 202 and a Location), then poll it (`Prefer: wait=N` holds the answer), follow its ' +
        'event stream (SSE) or receive webhooks; fetch the result (303 to a presigned URL). Every error is ' +
        '`application/problem+json`. Examples for each task: docs/api.md.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'an API key: `Authorization: Bearer dimoo_…`' }, SECURITY.bearer)
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'the same key in the X-API-Key header' }, SECURITY.apiKey)
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  addMoreBodies(doc);
  doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, ...componentSchemas() } };
  return doc;
}

/** Placeholders that pass the API's environment schema; preview mode reads none of them. */
const PREVIEW_ENV = {
  DATABASE_URL: 'postgresql://openapi.invalid/unused',
  REDIS_URL: 'redis://openapi.invalid:6379',
  S3_ACCESS_KEY: 'unused',
  S3_SECRET_KEY: 'unused',
  MODEL_DIR: 'unused',
  ADMIN_API_KEY: 'unused-openapi-document-placeholder',
};

/** The document, without any service: AppModule in preview mode (no provider is instantiated, nothing connects). */
export async function openApiDocument(): Promise<OpenAPIObject> {
  const app = await NestFactory.create(AppModule.forRoot(ApiEnvSchema.parse(PREVIEW_ENV), {} as ModelManifest), {
    preview: true,
    logger: false,
    abortOnError: false,
  });
  try {
    return buildOpenApiDocument(app);
  } finally {
    await app.close();
  }
}

/** The document as committed: JSON, two-space indented, newline-terminated. */
export const renderOpenApi = (doc: OpenAPIObject) => `${JSON.stringify(doc, null, 2)}\n`;

async function main(): Promise<void> {
  const doc = await openApiDocument();
  writeFileSync(OPENAPI_FILE, renderOpenApi(doc));
  const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  console.log(`wrote ${OPENAPI_FILE} (${Object.keys(doc.paths).length} paths, ${operations} operations)`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
}

/**
 * A whole platform on this machine for integration tests: a private Postgres database (migrated), a private Redis
 * server (so tests may stop and flush it), an S3-protocol server, the API in-process and workers as child processes
 * (so tests may SIGKILL them).
 */
import { resolve } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { TestDatabase } from '@dimoo/db/testing';
import { createTestDatabase } from '@dimoo/db/testing';
import type { S3TestServer } from '@dimoo/storage/testing';
import { startS3Server } from '@dimoo/storage/testing';
import { freePort, platformServiceEnv, RedisServer } from '@dimoo/queue/testing';
import type { ApiEnv } from '../config';
import { ApiEnvSchema } from '../config';
import { createApi } from '../main';

export { freePort, RedisServer, sleep, WorkerProcess } from '@dimoo/queue/testing';

export const ROOT = resolve(__dirname, '../../../..');
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface Platform {
  api: NestExpressApplication;
  url: string;
  env: ApiEnv;
  workerEnv: NodeJS.ProcessEnv;
  db: TestDatabase;
  s3: S3TestServer;
  redis: RedisServer;
  close(): Promise<void>;
}

export async function startPlatform(options: { quiet?: boolean; modelDir?: string } = {}): Promise<Platform> {
  const db = await createTestDatabase();
  const s3 = await startS3Server();
  const redis = new RedisServer(await freePort());
  await redis.start();
  const shared = platformServiceEnv({
    databaseUrl: db.url,
    redisPort: redis.port,
    s3,
    name: 'dimoo-test',
    modelDir: options.modelDir ?? resolve(ROOT, 'models/tiny'),
  });
  const env = ApiEnvSchema.parse({ ...shared, ADMIN_API_KEY: ADMIN_KEY, PORT: '0', OUTBOX_INTERVAL_MS: '300', MAX_BODY_BYTES: String(2 * 1024 * 1024) });
  const api = await createApi(env, options.quiet ? ['error', 'warn'] : undefined);
  await api.listen(0, '127.0.0.1');
  const { port } = api.getHttpServer().address() as { port: number };
  return {
    api,
    url: `http://127.0.0.1:${port}`,
    env,
    workerEnv: { ...shared, BATCH_SLOTS: '4', LOCK_DURATION_MS: '2000', PROGRESS_INTERVAL_MS: '100' },
    db,
    s3,
    redis,
    async close() {
      await api.close();
      await redis.stop();
      await db.drop();
      await s3.dispose();
    },
  };
}

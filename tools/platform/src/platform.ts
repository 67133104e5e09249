/**
 * A whole platform on this machine for integration tests and the demo: a private Postgres database (migrated), a
 * private Redis server (so tests may stop and flush it), an S3-protocol server, and the API and workers as child
 * processes run from sources (so tests may SIGKILL them, and see what each process loaded).
 */
import type { TestDatabase } from '@dimoo/db/testing';
import { createTestDatabase } from '@dimoo/db/testing';
import type { S3TestServer } from '@dimoo/storage/testing';
import { startS3Server } from '@dimoo/storage/testing';
import { ObjectStore } from '@dimoo/storage';
import { resolve } from 'node:path';
import { FaultProxy } from './fault-proxy';
import { ApiProcess, freePort, platformServiceEnv, RedisServer, WORKSPACE_ROOT } from './processes';

export const ROOT = WORKSPACE_ROOT;
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface Platform {
  api: ApiProcess;
  url: string;
  /** the API process's environment */
  env: Record<string, string>;
  /** what a worker of this platform needs (spread it into a WorkerProcess's environment) */
  workerEnv: Record<string, string>;
  db: TestDatabase;
  s3: S3TestServer;
  redis: RedisServer;
  /** with `faults: true`: the proxies every service reaches Postgres, Redis and S3 through (tests keep direct access) */
  faults: { postgres: FaultProxy; redis: FaultProxy; s3: FaultProxy } | null;
  /** Stops the API (SIGTERM) and starts a new one on the same port and environment. */
  restartApi(): Promise<void>;
  close(): Promise<void>;
}

export async function startPlatform(options: { modelDir?: string; apiEnv?: Record<string, string>; faults?: boolean } = {}): Promise<Platform> {
  const db = await createTestDatabase();
  const s3 = await startS3Server();
  const redis = new RedisServer(await freePort());
  await redis.start();
  const dbUrl = new URL(db.url);
  const faults = options.faults
    ? {
        postgres: await FaultProxy.start({ host: dbUrl.hostname, port: Number(dbUrl.port || 5432) }),
        redis: await FaultProxy.start({ host: '127.0.0.1', port: redis.port }),
        s3: await FaultProxy.start({ host: s3.endPoint, port: s3.port }),
      }
    : null;
  if (faults) dbUrl.port = String(faults.postgres.port);
  const shared = platformServiceEnv({
    databaseUrl: dbUrl.toString(),
    redisPort: faults?.redis.port ?? redis.port,
    s3: faults ? { endPoint: s3.endPoint, port: faults.s3.port, config: (bucket: string) => s3.config(bucket) } : s3,
    name: 'dimoo-test',
    modelDir: options.modelDir ?? resolve(ROOT, 'models/tiny'),
  });
  const port = await freePort();
  const env = {
    ...shared,
    ADMIN_API_KEY: ADMIN_KEY,
    PORT: String(port),
    HOST: '127.0.0.1',
    OUTBOX_INTERVAL_MS: '300',
    OUTBOX_FULL_SCAN_MS: '3000',
    MAX_BODY_BYTES: String(2 * 1024 * 1024),
    ...options.apiEnv,
  };
  const api = new ApiProcess(env);
  try {
    await api.ready();
  } catch (err) {
    await Promise.allSettled([api.kill('SIGKILL'), redis.stop(), db.drop(), s3.dispose(), ...Object.values(faults ?? {}).map((f) => f.close())]);
    throw err;
  }
  const platform: Platform = {
    api,
    url: `http://127.0.0.1:${port}`,
    env,
    workerEnv: { ...shared, BATCH_SLOTS: '4', LOCK_DURATION_MS: '2000', PROGRESS_INTERVAL_MS: '100' },
    db,
    s3,
    redis,
    faults,
    async restartApi() {
      await platform.api.kill('SIGTERM');
      platform.api = new ApiProcess(env);
      await platform.api.ready();
    },
    async close() {
      await platform.api.kill('SIGTERM');
      for (const f of Object.values(faults ?? {})) await f.close();
      await redis.stop();
      await db.drop();
      await s3.dispose();
    },
  };
  return platform;
}

/** The platform's bucket, reached directly (not through a fault proxy): what tests look at and plant objects in. */
export function platformStore(p: Platform): ObjectStore {
  const bucket = p.env['S3_BUCKET']!;
  const { accessKey, secretKey } = p.s3.config(bucket);
  return new ObjectStore({ endPoint: p.s3.endPoint, port: p.s3.port, useSSL: false, accessKey, secretKey, bucket });
}

/** A new team and a key for it, made through the admin API (the way a test's users get one). */
export async function platformTeam(p: Pick<Platform, 'url'>, name: string, scopes?: readonly string[]): Promise<{ id: string; key: string }> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${p.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, string>;
  };
  const team = await post('/v1/teams', { name });
  const key = await post(`/v1/teams/${team['id']}/keys`, { name: 'test', ...(scopes ? { scopes } : {}) });
  return { id: team['id']!, key: key['key']! };
}

/**
 * A whole platform on this machine for integration tests: a private Postgres database (migrated), a private Redis
 * server (so tests may stop and flush it), an S3-protocol server, the API in-process and workers as child processes
 * (so tests may SIGKILL them).
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { resolve } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { TestDatabase } from '@dimoo/db/testing';
import { createTestDatabase } from '@dimoo/db/testing';
import type { S3TestServer } from '@dimoo/storage/testing';
import { startS3Server } from '@dimoo/storage/testing';
import type { ApiEnv } from '../config';
import { ApiEnvSchema } from '../config';
import { createApi } from '../main';

export const ROOT = resolve(__dirname, '../../../..');
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

export class RedisServer {
  private proc: ChildProcess | null = null;
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  }
}

const canConnect = (port: number) =>
  new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class WorkerProcess {
  readonly output: string[] = [];
  private proc: ChildProcess;

  constructor(env: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/worker/src/main.ts'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  async ready(timeoutMs = 60000): Promise<void> {
    const t0 = Date.now();
    while (!this.output.join('').includes('batch slots')) {
      if (this.proc.exitCode !== null) throw new Error(`worker exited: ${this.output.join('')}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`worker not ready: ${this.output.join('')}`);
      await sleep(100);
    }
  }

  /** Sends `signal` and resolves with the exit code (null when a signal ended it) once the process is gone. */
  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    return new Promise((r) => {
      this.proc.once('exit', (code) => r(code));
      this.proc.kill(signal);
    });
  }
}

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

export async function startPlatform(options: { quiet?: boolean } = {}): Promise<Platform> {
  const db = await createTestDatabase();
  const s3 = await startS3Server();
  const redis = new RedisServer(await freePort());
  await redis.start();
  const shared = {
    DATABASE_URL: db.url,
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    QUEUE_PREFIX: 'dimoo-test',
    S3_ENDPOINT: s3.endPoint,
    S3_PORT: String(s3.port),
    S3_ACCESS_KEY: s3.config('dimoo-test').accessKey,
    S3_SECRET_KEY: s3.config('dimoo-test').secretKey,
    S3_BUCKET: 'dimoo-test',
    MODEL_DIR: resolve(ROOT, 'models/tiny'),
  };
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

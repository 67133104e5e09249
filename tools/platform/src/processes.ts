/**
 * Processes for integration tests, the demo and the serving benchmark: a private Redis server (tests may stop and
 * flush it) and the services (API, worker) as child processes run from sources (tests may SIGKILL them, and read what
 * each process loaded).
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { resolve } from 'node:path';

export const WORKSPACE_ROOT = resolve(__dirname, '../../..');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

export const canConnect = (port: number) =>
  new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });

export class RedisServer {
  private proc: ChildProcess | null = null;
  /** `dataDir`: keep the data there (an append-only file) across restarts; without it, nothing is kept. */
  constructor(
    readonly port: number,
    private readonly dataDir?: string,
  ) {}

  async start(): Promise<void> {
    const persistence = this.dataDir ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', this.dataDir] : ['--appendonly', 'no'];
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--maxmemory-policy', 'noeviction'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  }

  /** SIGKILL by default (tests); SIGTERM lets a persistent server write its data first. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill(signal);
    });
  }
}

/** A service entry point (`apps/<name>/src/main.ts`) run from sources in a child process. */
export class ServiceProcess {
  readonly output: string[] = [];
  private readonly proc: ChildProcess;

  constructor(
    entry: string,
    env: NodeJS.ProcessEnv,
    private readonly readyLine: string,
  ) {
    this.proc = spawn(process.execPath, ['-r', '@swc-node/register', entry], {
      cwd: WORKSPACE_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  async ready(timeoutMs = 60000): Promise<void> {
    const t0 = Date.now();
    while (!this.output.join('').includes(this.readyLine)) {
      if (this.proc.exitCode !== null) throw new Error(`${this.readyLine}: process exited: ${this.output.join('')}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`not ready: ${this.output.join('')}`);
      await sleep(50);
    }
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('the process did not start');
    return this.proc.pid;
  }

  /** Resolves with the exit code (null when a signal ended it) once the process ends by itself. */
  async exited(timeoutMs = 60_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms: ${this.output.join('').slice(-2000)}`)), timeoutMs);
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
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

/** An API process (apps/api); ready once it listens. */
export class ApiProcess extends ServiceProcess {
  constructor(env: NodeJS.ProcessEnv) {
    super('apps/api/src/main.ts', env, 'listening on');
  }
}

/** The webhook notifier (apps/notifier); ready once it delivers. */
export class NotifierProcess extends ServiceProcess {
  constructor(env: NodeJS.ProcessEnv) {
    super('apps/notifier/src/main.ts', env, 'delivering webhooks');
  }
}

/** A worker process (apps/worker); ready once it has loaded its model and listens to the queue. */
export class WorkerProcess extends ServiceProcess {
  constructor(env: NodeJS.ProcessEnv) {
    super('apps/worker/src/main.ts', env, 'batch slots');
  }
}

/**
 * The variables every service process shares (libs/queue ServiceEnvSchema) for a test platform: its database, its
 * private Redis, an S3-protocol test server and a bucket/queue name of its own.
 */
export function platformServiceEnv(p: {
  databaseUrl: string;
  redisPort: number;
  s3: { endPoint: string; port: number; config(bucket: string): { accessKey: string; secretKey: string } };
  name: string;
  modelDir: string;
}): Record<string, string> {
  const { accessKey, secretKey } = p.s3.config(p.name);
  return {
    DATABASE_URL: p.databaseUrl,
    REDIS_URL: `redis://127.0.0.1:${p.redisPort}`,
    QUEUE_PREFIX: p.name,
    S3_ENDPOINT: p.s3.endPoint,
    S3_PORT: String(p.s3.port),
    S3_ACCESS_KEY: accessKey,
    S3_SECRET_KEY: secretKey,
    S3_BUCKET: p.name,
    MODEL_DIR: p.modelDir,
    // the ready lines the harness waits for are info-level: a developer's LOG_LEVEL=warn must not hide them
    LOG_LEVEL: 'info',
  };
}

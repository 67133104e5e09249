/**
 * `npm run serve`: the whole service on this machine, kept running until Ctrl-C — its own database in the local
 * Postgres (created and migrated), a private Redis and the S3 test server keeping their data under `--data`, the API,
 * and `--workers` workers on the embedded tiny model. Prints the URL, the docs URL and a team API key (created on the
 * first start, kept in `<data>/serve.json`); `--info FILE` writes `{ url, adminKey, teamKey }` as JSON for scripts.
 * Jobs, results and keys survive a restart.
 *   npm run serve -- [--port 8080] [--workers 1] [--info serve-info.json] [--data .dimoo]
 *                    [--database-url postgresql://postgres@127.0.0.1:5432/dimoo_serve]
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrateDeploy } from '@dimoo/db/testing';
import { startS3Server } from '@dimoo/storage/testing';
import { ROOT } from './platform';
import { ApiProcess, freePort, platformServiceEnv, RedisServer, WorkerProcess } from './processes';

interface State {
  adminKey: string;
  teamId?: string;
  teamKey?: string;
  redisPort: number;
  s3Port: number;
}

/** Creates the database when it does not exist (the local Postgres, as its superuser). */
async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`--database-url: database name ${name} must be a plain identifier`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      workers: { type: 'string', default: '1' },
      info: { type: 'string' },
      data: { type: 'string', default: '.dimoo' },
      'database-url': { type: 'string', default: process.env['SERVE_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/dimoo_serve' },
    },
  });
  const port = Number(values.port);
  const workers = Number(values.workers);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('--port: a TCP port number');
  if (!Number.isInteger(workers) || workers < 0 || workers > 16) throw new Error('--workers: 0 to 16');
  const data = resolve(values.data);
  const statePath = resolve(data, 'serve.json');
  await mkdir(resolve(data, 'redis'), { recursive: true });
  await mkdir(resolve(data, 's3'), { recursive: true });
  const state: State = existsSync(statePath)
    ? (JSON.parse(await readFile(statePath, 'utf8')) as State)
    : { adminKey: `dimoo-admin-${randomBytes(24).toString('base64url')}`, redisPort: await freePort(), s3Port: await freePort() };
  const save = async () => {
    await writeFile(statePath, `${JSON.stringify(state, null, 2)}\n`);
    await chmod(statePath, 0o600);
  };
  await save();

  const stops: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping (jobs still running go back to the queue and run at the next start)…');
    void stopAll().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const databaseUrl = values['database-url'];
    console.log(`database ${new URL(databaseUrl).pathname.slice(1)}: migrating…`);
    await ensureDatabase(databaseUrl);
    await migrateDeploy(databaseUrl);
    const redis = new RedisServer(state.redisPort, resolve(data, 'redis'));
    await redis.start();
    stops.push(() => redis.stop('SIGTERM'));
    const s3 = await startS3Server({ directory: resolve(data, 's3'), port: state.s3Port });
    stops.push(() => s3.stop()); // not dispose: that removes the data
    const shared = platformServiceEnv({ databaseUrl, redisPort: redis.port, s3, name: 'dimoo-serve', modelDir: resolve(ROOT, 'models/tiny') });
    const api = new ApiProcess({ ...shared, ADMIN_API_KEY: state.adminKey, PORT: String(port), HOST: '127.0.0.1' });
    stops.push(() => api.kill('SIGTERM'));
    await api.ready();
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < workers; i++) {
      const worker = new WorkerProcess({ ...shared, WORKER_ID: `serve-worker-${i + 1}` });
      stops.push(() => worker.kill('SIGTERM'));
      await worker.ready();
    }
    if (!state.teamKey) {
      const post = async (path: string, body: unknown) => {
        const res = await fetch(`${url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${state.adminKey}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
        return res.json() as Promise<Record<string, string>>;
      };
      state.teamId ??= (await post('/v1/teams', { name: 'default' }))['id'];
      state.teamKey = (await post(`/v1/teams/${state.teamId}/keys`, { name: 'serve' }))['key'];
      await save();
    }
    if (values.info) await writeFile(resolve(values.info), `${JSON.stringify({ url, adminKey: state.adminKey, teamKey: state.teamKey }, null, 2)}\n`);
    console.log(`
DiMOO Serve is running (${workers} worker(s), tiny model; data in ${data}).
  API       ${url}
  API docs  ${url}/docs
  dashboard ${url}/admin/ (sign in with the admin key; build it once: npm run dashboard:build)
  team key  ${state.teamKey}
  admin key in ${statePath}

  curl -s -X POST ${url}/v1/jobs -H "authorization: Bearer ${state.teamKey}" -H 'content-type: application/json' \\
       -H 'prefer: wait=30' -d '{"task":"t2i","prompt":"a red circle at the top left"}'

Ctrl-C stops it.`);
  } catch (err) {
    await stopAll();
    throw err;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

// Throwaway PostgreSQL databases for integration tests (this project's and other projects'). Each call creates a fresh
// database holding the committed migrations, applied by the same `prisma migrate deploy` that production runs.
//
// `prisma migrate deploy` takes ~12 s here (the WASM schema engine leaves a 10 s timer behind), so by default it runs
// once per set of migrations: into a template database named after their hash, kept across runs, which each test
// database then copies (CREATE DATABASE … TEMPLATE, well under a second). Pass `template: false` to run the CLI
// against the new database itself.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import pg from 'pg';

const execFileAsync = promisify(execFile);

/** Where test databases are created. Override with DATABASE_ADMIN_URL (a superuser or a CREATEDB role). */
export const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

const TEMPLATE_PREFIX = 'dimoo_tmpl_';
/** pg_advisory_lock key serializing template builds and copies across processes (arbitrary constant). */
const TEMPLATE_LOCK = 0x64696d6f;

export interface TestDatabase {
  name: string;
  /** Connection URL of the new database. */
  url: string;
  /** Drops the database, closing any connection left open. */
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** @defaultValue process.env.DATABASE_ADMIN_URL ?? DEFAULT_ADMIN_URL */
  adminUrl?: string;
  /** @defaultValue 'dimoo_test' */
  prefix?: string;
  /** Apply the committed migrations. @defaultValue true */
  migrate?: boolean;
  /** Copy a migrated template instead of running `prisma migrate deploy` on the new database. @defaultValue true */
  template?: boolean;
}

export function workspaceRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'prisma.config.ts')) && existsSync(path.join(dir, 'prisma', 'schema.prisma'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`No prisma.config.ts above ${from}`);
  }
}

/** Runs `prisma migrate deploy` against `databaseUrl` (the CLI, as in production). */
export async function migrateDeploy(databaseUrl: string): Promise<void> {
  const root = workspaceRoot();
  const cli = require.resolve('prisma/build/index.js', { paths: [root] });
  try {
    await execFileAsync(process.execPath, [cli, 'migrate', 'deploy'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, CHECKPOINT_DISABLE: '1', PRISMA_HIDE_UPDATE_MESSAGE: '1' },
      timeout: 120_000,
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`prisma migrate deploy failed:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error });
  }
}

/** Hash of the committed migrations (names and SQL): the template's identity. */
export function migrationsHash(root: string = workspaceRoot()): string {
  const dir = path.join(root, 'prisma', 'migrations');
  const hash = createHash('sha256');
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory()) continue;
    hash.update(entry.name).update('\0');
    const sql = path.join(dir, entry.name, 'migration.sql');
    if (existsSync(sql)) hash.update(readFileSync(sql)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function randomName(prefix: string): string {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  if (!/^[a-z0-9_]{1,63}$/.test(name)) throw new Error(`Invalid database name ${name}`);
  return name;
}

async function withAdmin<T>(adminUrl: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/** Creates `name` as a copy of the migrated template, building the template first when needed. */
async function createFromTemplate(client: pg.Client, adminUrl: string, name: string): Promise<void> {
  const template = `${TEMPLATE_PREFIX}${migrationsHash()}`;
  await client.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK]);
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (found.rowCount === 0) {
      // Build under a scratch name and rename once complete, so a half-migrated template is never used.
      const building = randomName(`${TEMPLATE_PREFIX}build`);
      await client.query(`CREATE DATABASE "${building}"`);
      try {
        await migrateDeploy(databaseUrl(adminUrl, building));
        await client.query(`ALTER DATABASE "${building}" RENAME TO "${template}"`);
      } catch (error) {
        await dropDatabase(client, building);
        throw error;
      }
      // Templates of other migration sets (older checkouts) are only rebuilt if needed again.
      const stale = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE '${TEMPLATE_PREFIX}%' AND datname <> $1`, [
        template,
      ]);
      for (const { datname } of stale.rows) await dropDatabase(client, datname).catch(() => undefined);
    }
    await client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK]);
  }
}

export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = options.adminUrl ?? process.env['DATABASE_ADMIN_URL'] ?? DEFAULT_ADMIN_URL;
  const name = randomName(options.prefix ?? 'dimoo_test');
  const url = databaseUrl(adminUrl, name);
  const migrate = options.migrate ?? true;
  const template = options.template ?? true;
  await withAdmin(adminUrl, (client) =>
    migrate && template ? createFromTemplate(client, adminUrl, name) : client.query(`CREATE DATABASE "${name}"`).then(() => undefined),
  );
  const drop = (): Promise<void> => withAdmin(adminUrl, (client) => dropDatabase(client, name));
  if (migrate && !template) {
    try {
      await migrateDeploy(url);
    } catch (error) {
      await drop();
      throw error;
    }
  }
  return { name, url, drop };
}

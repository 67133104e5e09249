// Migration-only driver adapter for the Prisma CLI (WASM schema engine). Used by prisma.config.ts, nowhere else:
// the runtime client uses the stock `PrismaPg` (see ../prisma.ts).
//
// It works around three bugs of @prisma/adapter-pg 6.19 that break `prisma migrate`:
//  1. The engine's catalog queries return Postgres-internal types (`name`, `"char"`, `regclass`, ...) that the adapter
//     cannot map ("Column type 'name' could not be deserialized", prisma/orm#27403). Every connection of our pools is a
//     `CatalogAsTextClient`, which relabels such result columns as text (or text[]) before the adapter reads them.
//  2. Given a connection string, the adapter's shadow database is the main database (the string wins over `database`).
//     We connect the shadow database with explicit host/port/user/password/database fields.
//  3. The adapter drops the shadow database while its pool is still open. We close the pool first.
// And one the recipe did not list: the adapter's `executeScript` splits a migration on every ";" (comments, string
// literals and function bodies included) and runs the pieces one by one, so a failing migration is left half-applied.
// We send the whole script as one simple query instead, which Postgres runs as one implicit transaction (as Prisma's
// native engine does). Consequence: a migration that needs to run outside a transaction (CREATE INDEX CONCURRENTLY)
// must be a migration of that single statement.
import { randomUUID } from 'node:crypto';

import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';

const TEXT_OID = 25;
const TEXT_ARRAY_OID = 1009;

/** Catalog scalar types the adapter rejects: "char", name, int2vector, regproc, xid, cid, oidvector, pg_node_tree, reg*. */
const CATALOG_SCALARS = new Set([18, 19, 22, 24, 28, 29, 30, 194, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 4191]);
/** Their array types. */
const CATALOG_ARRAYS = new Set([1002, 1003, 1006, 1008, 1011, 1012, 1013, 2207, 2208, 2209, 2210, 2211, 3735, 3770, 4090, 4097, 4192]);

type TypeId = Parameters<typeof pg.types.getTypeParser>[0];
// pg's own text[] parser (array OIDs are missing from pg-types' TypeId enum, hence the cast).
const parseTextArray = pg.types.getTypeParser(TEXT_ARRAY_OID as TypeId, 'text') as (value: string) => string[];

interface FieldLike {
  dataTypeID: number;
}
interface ResultLike {
  fields?: FieldLike[];
  rows?: unknown[];
}

function relabelResult(result: ResultLike): void {
  const fields = result.fields;
  if (!fields) return;
  fields.forEach((field, column) => {
    if (CATALOG_SCALARS.has(field.dataTypeID)) {
      field.dataTypeID = TEXT_OID;
    } else if (CATALOG_ARRAYS.has(field.dataTypeID)) {
      field.dataTypeID = TEXT_ARRAY_OID;
      for (const row of result.rows ?? []) {
        // rowMode 'array' (what the adapter uses) or object rows.
        const key = Array.isArray(row) ? column : (fields[column] as { name?: string }).name;
        if (key === undefined) continue;
        const cells = row as Record<string | number, unknown>;
        const value = cells[key];
        if (typeof value === 'string') cells[key] = parseTextArray(value);
      }
    }
  });
}

/** Exported for tests only. */
export function relabelCatalogColumns<T>(result: T): T {
  if (Array.isArray(result)) {
    for (const r of result) relabelResult(r as ResultLike);
  } else if (result && typeof result === 'object') {
    relabelResult(result);
  }
  return result;
}

/** A pg client whose query results never carry catalog types the Prisma adapter cannot deserialize. */
export class CatalogAsTextClient extends pg.Client {}

const baseQuery = Reflect.get(pg.Client.prototype, 'query') as (...args: unknown[]) => unknown;
Object.defineProperty(CatalogAsTextClient.prototype, 'query', {
  configurable: true,
  writable: true,
  value: function query(this: pg.Client, ...args: unknown[]): unknown {
    const [config] = args;
    // Submittables (cursors, streams) manage their own results: leave them alone.
    if (config && typeof (config as { submit?: unknown }).submit === 'function') return Reflect.apply(baseQuery, this, args);
    const last = args.length > 1 ? args[args.length - 1] : undefined;
    if (typeof last === 'function') {
      const callback = last as (err: unknown, res: unknown) => void;
      const wrapped = (err: unknown, res: unknown): void => callback(err, err ? res : relabelCatalogColumns(res));
      return Reflect.apply(baseQuery, this, [...args.slice(0, -1), wrapped]);
    }
    return (Reflect.apply(baseQuery, this, args) as Promise<unknown>).then(relabelCatalogColumns);
  },
});

export interface ConnectionFields {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  ssl?: boolean;
}

/** Splits a postgres:// URL into explicit pg connection fields. */
export function connectionFields(databaseUrl: string): ConnectionFields {
  const url = new URL(databaseUrl);
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`Not a PostgreSQL URL (protocol ${url.protocol})`);
  }
  const sslmode = url.searchParams.get('sslmode');
  return {
    host: decodeURIComponent(url.hostname) || '127.0.0.1',
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || 'postgres',
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres',
    ...(sslmode && sslmode !== 'disable' ? { ssl: true } : {}),
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

type PgAdapter = Awaited<ReturnType<PrismaPg['connect']>>;

async function connectMigrationAdapter(fields: ConnectionFields): Promise<PgAdapter> {
  // allowExitOnIdle: the CLI does not always dispose the adapter, and idle pooled connections would otherwise keep it
  // alive for pg's idle timeout (10 s) after the command is done.
  const adapter = await new PrismaPg({ ...fields, Client: CatalogAsTextClient, allowExitOnIdle: true }).connect();
  const pool = adapter.underlyingDriver();
  const toDriverError = (adapter as unknown as { onError(error: unknown): never }).onError.bind(adapter);
  adapter.executeScript = async (script: string): Promise<void> => {
    try {
      await pool.query(script);
    } catch (error) {
      toDriverError(error);
    }
  };
  return adapter;
}

/** The factory prisma.config.ts hands to the CLI. */
export class MigrationAdapterFactory implements SqlMigrationAwareDriverAdapterFactory {
  public readonly provider = 'postgres';
  public readonly adapterName = '@prisma/adapter-pg';

  private readonly fields: ConnectionFields;

  public constructor(databaseUrl: string) {
    this.fields = connectionFields(databaseUrl);
  }

  public connect(): Promise<SqlDriverAdapter> {
    return connectMigrationAdapter(this.fields);
  }

  public async connectToShadowDb(): Promise<SqlDriverAdapter> {
    const database = `prisma_migrate_shadow_db_${randomUUID()}`;
    await this.admin(`CREATE DATABASE ${quoteIdent(database)}`);
    let adapter: SqlDriverAdapter;
    try {
      adapter = await connectMigrationAdapter({ ...this.fields, database });
    } catch (error) {
      await this.admin(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`);
      throw error;
    }
    const closePool = adapter.dispose.bind(adapter);
    adapter.dispose = async (): Promise<void> => {
      await closePool();
      await this.admin(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`);
    };
    return adapter;
  }

  private async admin(sql: string): Promise<void> {
    const client = new pg.Client(this.fields);
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }
}

export function migrationAdapter(databaseUrl: string | undefined): MigrationAdapterFactory {
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/dimoo)');
  return new MigrationAdapterFactory(databaseUrl);
}

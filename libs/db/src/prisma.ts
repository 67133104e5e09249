import { PrismaPg } from '@prisma/adapter-pg';

import { Prisma, PrismaClient } from './generated/prisma/client';

// the job enums are @dimoo/contracts' (enums.ts); enums.spec.ts holds Prisma's equal to them
export { Prisma, PrismaClient } from './generated/prisma/client';
export type { ApiKey, AuditEntry, Batch, Job, JobEvent, Team } from './generated/prisma/client';

export interface CreatePrismaOptions {
  /** Pool size of the pg driver. @defaultValue 10 (pg's default) */
  maxConnections?: number;
  /** Milliseconds to wait for a free connection before failing. @defaultValue 0 (wait forever, pg's default) */
  connectionTimeoutMs?: number;
  /**
   * Milliseconds a query may wait for its answer before it fails (a cut-off server otherwise holds a pooled connection
   * forever). @defaultValue 0 (no limit, pg's default)
   */
  queryTimeoutMs?: number;
  /** Called with each SQL statement sent (COMMIT included, BEGIN not): tests count round trips with it. */
  onQuery?: (sql: string) => void;
}

/**
 * A Prisma client over the pg driver adapter (query compiler in WASM, no engine binary).
 * Call `$disconnect()` on shutdown.
 */
export function createPrisma(databaseUrl: string, options: CreatePrismaOptions = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    ...(options.maxConnections === undefined ? {} : { max: options.maxConnections }),
    ...(options.connectionTimeoutMs === undefined ? {} : { connectionTimeoutMillis: options.connectionTimeoutMs }),
    ...(options.queryTimeoutMs === undefined ? {} : { query_timeout: options.queryTimeoutMs }),
  });
  if (!options.onQuery) return new PrismaClient({ adapter });
  const client = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
  const onQuery = options.onQuery;
  client.$on('query', (e) => onQuery(e.query));
  return client;
}

/** Known Prisma error codes the repositories translate into typed errors. */
export function prismaErrorCode(error: unknown): string | undefined {
  return error instanceof Prisma.PrismaClientKnownRequestError ? error.code : undefined;
}

export const UNIQUE_VIOLATION = 'P2002';
export const FOREIGN_KEY_VIOLATION = 'P2003';
export const RECORD_NOT_FOUND = 'P2025';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are Postgres uuids: anything else can match no row (and would make Postgres raise instead of returning none). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

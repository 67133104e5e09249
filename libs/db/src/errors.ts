import type { JobStatus } from '@dimoo/contracts';
import { Prisma } from './generated/prisma/client';

/** Base class of the errors this library throws on purpose; match with `instanceof`, never on messages. */
export abstract class DbError extends Error {
  protected constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export type EntityName = 'job' | 'team' | 'apiKey' | 'batch';

/** The row does not exist, or belongs to another team (the two are indistinguishable on purpose). */
export class NotFound extends DbError {
  public constructor(
    public readonly entity: EntityName,
    public readonly id: string,
  ) {
    super(`${entity} ${id} not found`);
  }
}

/** A unique value (team name, key prefix) is already taken. */
export class AlreadyExists extends DbError {
  public constructor(
    public readonly entity: EntityName,
    public readonly field: string,
    options?: ErrorOptions,
  ) {
    super(`${entity} with this ${field} already exists`, options);
  }
}

export type TransitionName = 'start' | 'progress' | 'succeed' | 'fail' | 'requestCancel' | 'canceled' | 'markEnqueued' | 'delete';

/** The job exists but its status does not allow the transition (e.g. cancelling a finished job). */
export class TransitionRejected extends DbError {
  public constructor(
    public readonly jobId: string,
    public readonly transition: TransitionName,
    public readonly status: JobStatus,
  ) {
    super(`job ${jobId}: ${transition} rejected in status ${status}`);
  }
}

/** Driver-adapter error kinds that mean "the database did not answer", not "the query is wrong". */
const UNREACHABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'TlsConnectionError', 'TooManyConnections', 'SocketTimeout']);
/** Prisma codes of the same: server unreachable, timed out, closed, pool timeout. */
const UNREACHABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** What the pg driver says when a connection dies or never comes (it throws plain Errors). */
const DRIVER_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/;

/**
 * Whether an error means Postgres could not be reached (down, restarting, cut off, too slow) rather than that the query
 * was wrong: the caller may retry later (the API answers 503 with Retry-After; the worker retries with backoff).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof Prisma.PrismaClientInitializationError) return true;
    const meta = (e as { meta?: { driverAdapterError?: { cause?: { kind?: string } } } }).meta;
    const kind = meta?.driverAdapterError?.cause?.kind;
    if (kind !== undefined && UNREACHABLE_KINDS.has(kind)) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code) && e instanceof Prisma.PrismaClientKnownRequestError) return true;
    if (typeof code === 'string' && /^E(CONNREFUSED|CONNRESET|TIMEDOUT|PIPE|HOSTUNREACH|NOTFOUND)$/.test(code)) return true;
    if (e instanceof Error && DRIVER_MESSAGES.test(e.message)) return true;
  }
  return false;
}

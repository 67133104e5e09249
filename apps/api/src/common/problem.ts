/**
 * Errors as RFC 9457 problem+json: a type, a title, the status, and for input errors every field with its reason.
 */
import type { ArgumentsHost, ExceptionFilter } from '@nestjs/common';
import { Catch, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import type { FieldIssue } from '@dimoo/contracts';
import { SUBMIT_AS_HEADER } from '@dimoo/contracts';
import { AlreadyExists, isDatabaseUnavailable, NotFound, TransitionRejected } from '@dimoo/db';
import { StorageUnavailable } from '@dimoo/storage';

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    detail?: string,
    readonly errors?: FieldIssue[],
    /** seconds, sent as Retry-After (503, 429) */
    readonly retryAfter?: number,
    /** more response headers (RateLimit-Policy, RateLimit) */
    readonly headers?: Record<string, string>,
  ) {
    super(detail ?? title);
  }
}

/** How long a client should wait before retrying after an outage answer. */
export const RETRY_AFTER_SECONDS = 5;

export const databaseUnavailable = () =>
  new ProblemError(
    HttpStatus.SERVICE_UNAVAILABLE,
    'database-unavailable',
    'Database unavailable',
    'the job record cannot be read or written now; retry later',
    undefined,
    RETRY_AFTER_SECONDS,
  );
export const storageUnavailable = (what = 'object storage cannot be reached now') =>
  new ProblemError(HttpStatus.SERVICE_UNAVAILABLE, 'storage-unavailable', 'Storage unavailable', `${what}; retry later`, undefined, RETRY_AFTER_SECONDS);

/**
 * The typed errors of the data layer as problems: a missing row is 404, a taken unique value or a transition the
 * current status forbids is 409, an outage is 503 with Retry-After. Anything else is not a problem of the request.
 */
export function problemOf(exception: unknown): ProblemError | null {
  if (exception instanceof ProblemError) return exception;
  if (exception instanceof NotFound) return notFound(`${exception.entity} ${exception.id}`);
  if (exception instanceof AlreadyExists) return new ProblemError(HttpStatus.CONFLICT, 'already-exists', 'Already exists', exception.message);
  if (exception instanceof TransitionRejected) {
    return new ProblemError(
      HttpStatus.CONFLICT,
      'conflict',
      'Conflict',
      `job ${exception.jobId} is ${exception.status}: ${exception.transition} does not apply`,
    );
  }
  if (isDatabaseUnavailable(exception)) return databaseUnavailable();
  if (exception instanceof StorageUnavailable) return storageUnavailable();
  return null;
}

/** A problem as its answer's body (problem+json); the OpenAPI document's examples are made with it too. */
export const problemBody = (problem: ProblemError): Record<string, unknown> => ({
  type: `about:blank#${problem.slug}`,
  title: problem.title,
  status: problem.status,
  detail: problem.message,
  ...(problem.errors ? { errors: problem.errors } : {}),
});

/** An `X-Dimoo-Team` header from a key without the admin scope. */
export const submitAsForbidden = () =>
  new ProblemError(HttpStatus.FORBIDDEN, 'forbidden', 'Forbidden', `only an admin-scoped key may submit as another team (${SUBMIT_AS_HEADER})`);

export const invalidRequest = (errors: FieldIssue[]) =>
  new ProblemError(HttpStatus.BAD_REQUEST, 'invalid-request', 'Invalid request', errors.map((e) => `${e.field}: ${e.reason}`).join('; '), errors);
export const notFound = (what: string) => new ProblemError(HttpStatus.NOT_FOUND, 'not-found', 'Not found', `${what} not found`);

@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let body: Record<string, unknown>;
    const problem = problemOf(exception);
    if (problem) {
      body = problemBody(problem);
      if (problem.retryAfter !== undefined) res.setHeader('Retry-After', String(problem.retryAfter));
      for (const [name, value] of Object.entries(problem.headers ?? {})) res.setHeader(name, value);
      if (problem.status >= 500) this.logger.warn(`${problem.slug}: ${exception instanceof Error ? exception.message.split('\n').at(-1) : String(exception)}`);
    } else if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const detail = bodyParserDetail(exception);
      // the framework's own refusals (a broken multipart body, a part too large): the body is what they are about
      body = {
        type: `about:blank#${status === 413 ? 'body-too-large' : 'invalid-request'}`,
        title: status === 413 ? 'Request body too large' : (HttpStatus[status] ?? 'Error'),
        status,
        detail,
        ...(status === 400 || status === 413 ? { errors: [{ field: '(body)', reason: detail }] } : {}),
      };
    } else {
      this.logger.error(exception instanceof Error ? exception.stack : String(exception));
      body = { type: 'about:blank#internal', title: 'Internal error', status: 500, detail: 'the server failed to handle the request' };
    }
    res
      .status(body['status'] as number)
      .type('application/problem+json')
      .send(JSON.stringify(body));
  }
}

function bodyParserDetail(e: HttpException): string {
  const r = e.getResponse();
  if (typeof r === 'string') return r;
  const m = (r as { message?: unknown }).message;
  return Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : e.message;
}

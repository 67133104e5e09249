/**
 * Errors as RFC 9457 problem+json: a type, a title, the status, and for input errors every field with its reason.
 */
import type { ArgumentsHost, ExceptionFilter } from '@nestjs/common';
import { Catch, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import type { FieldIssue } from '@dimoo/contracts';

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    detail?: string,
    readonly errors?: FieldIssue[],
  ) {
    super(detail ?? title);
  }
}

export const invalidRequest = (errors: FieldIssue[]) =>
  new ProblemError(HttpStatus.BAD_REQUEST, 'invalid-request', 'Invalid request', errors.map((e) => `${e.field}: ${e.reason}`).join('; '), errors);
export const notFound = (what: string) => new ProblemError(HttpStatus.NOT_FOUND, 'not-found', 'Not found', `${what} not found`);

@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let body: Record<string, unknown>;
    if (exception instanceof ProblemError) {
      body = {
        type: `about:blank#${exception.slug}`,
        title: exception.title,
        status: exception.status,
        detail: exception.message,
        ...(exception.errors ? { errors: exception.errors } : {}),
      };
    } else if (exception instanceof HttpException) {
      const status = exception.getStatus();
      body = { type: 'about:blank', title: HttpStatus[status] ?? 'Error', status, detail: bodyParserDetail(exception) };
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

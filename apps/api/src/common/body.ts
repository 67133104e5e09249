/**
 * Request bodies before any route sees them: JSON only, valid UTF-8 (an invalid sequence is refused, never replaced),
 * nested at most MAX_DEPTH deep (a deeply nested body cannot exhaust the parser's stack), at most MAX_BODY_BYTES; and
 * what the HTTP parser itself refuses (a header flood: 431) answered as problem+json too.
 */
import type { Server } from 'node:http';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/** Deepest nesting of arrays and objects a body may have (a job request needs 3). */
export const MAX_DEPTH = 32;

class BodyRefused extends Error {
  readonly status = 400;
  constructor(
    readonly type: 'encoding.invalid' | 'nesting.too.deep',
    message: string,
  ) {
    super(message);
  }
}

/** The deepest nesting of `[` and `{` outside strings. */
export function jsonDepth(buf: Buffer, stopAbove: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      // a backslash escapes the next character: it cannot end the string
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      deepest = Math.max(deepest, ++depth);
      if (deepest > stopAbove) return deepest;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

export function jsonBody(limit: number): RequestHandler {
  return express.json({
    limit,
    verify: (_req, _res, buf) => {
      if (!isUtf8(buf)) throw new BodyRefused('encoding.invalid', 'the body is not valid UTF-8');
      if (jsonDepth(buf, MAX_DEPTH) > MAX_DEPTH) throw new BodyRefused('nesting.too.deep', `the body nests deeper than ${MAX_DEPTH} levels`);
    },
  });
}

const problems: Record<string, { status: number; slug: string; title: string }> = {
  'entity.parse.failed': { status: 400, slug: 'malformed-json', title: 'Malformed JSON' },
  'entity.too.large': { status: 413, slug: 'body-too-large', title: 'Request body too large' },
  'encoding.invalid': { status: 400, slug: 'invalid-encoding', title: 'Invalid encoding' },
  'encoding.unsupported': { status: 415, slug: 'unsupported-encoding', title: 'Unsupported encoding' },
  'charset.unsupported': { status: 415, slug: 'unsupported-charset', title: 'Unsupported charset' },
  'nesting.too.deep': { status: 400, slug: 'too-deep', title: 'Body nested too deep' },
};

const problemJson = (p: { status: number; slug: string; title: string }, detail: string) =>
  JSON.stringify({ type: `about:blank#${p.slug}`, title: p.title, status: p.status, detail, errors: [{ field: '(body)', reason: detail }] });

/** Body-parser failures as problem+json, before any route runs. */
export function bodyErrors(err: { type?: string; message?: string }, _req: Request, res: Response, next: NextFunction): void {
  const p = err.type ? problems[err.type] : undefined;
  if (!p) return next(err);
  res
    .status(p.status)
    .type('application/problem+json')
    .send(problemJson(p, err.message ?? p.title));
}

/** What Node's HTTP parser refuses (header floods, malformed requests) as problem+json, not a bare status line. */
export function clientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) return void socket.destroy();
    const flood = err.code === 'HPE_HEADER_OVERFLOW';
    const p = flood
      ? { status: 431, slug: 'headers-too-large', title: 'Request Header Fields Too Large' }
      : { status: 400, slug: 'bad-request', title: 'Bad Request' };
    const body = problemJson(p, flood ? 'the request headers are too large' : 'the request could not be parsed');
    socket.end(
      `HTTP/1.1 ${p.status} ${p.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

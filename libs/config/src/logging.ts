/**
 * Log lines of every process: pino, one JSON object per line on stdout (LOG_FORMAT=json, what a log pipeline reads) or
 * one readable line (LOG_FORMAT=pretty, for a terminal). Every line carries the process's base fields (`service`,
 * `pid`, `hostname`, plus what the process adds, e.g. the worker's id), the fields of the scope it was written in
 * (`withLogFields`: a job's `jobId` and `teamId`) and, while tracing is on, the active span's `trace_id` / `span_id`.
 * Request lines (the API's pino-http) add `reqId`. Bodies are never logged; credentials are removed (`REDACTED_PATHS`).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import pino from 'pino';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'pretty'] as const;

export const LoggingEnvSchema = z.object({
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /** json: one JSON object per line (deployments); pretty: one readable line (a terminal) */
  LOG_FORMAT: z.enum(LOG_FORMATS).default('json'),
});
export type LoggingEnv = z.infer<typeof LoggingEnvSchema>;

/** Where credentials could appear in a logged object: replaced, whatever serializer let them through. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
];

const scope = new AsyncLocalStorage<Readonly<Record<string, string>>>();

/** Runs `fn` with `fields` (and the enclosing scope's) on every line logged inside it, awaited continuations included. */
export function withLogFields<T>(fields: Readonly<Record<string, string>>, fn: () => T): T {
  return scope.run({ ...scope.getStore(), ...fields }, fn);
}

/** The fields of the current scope (`withLogFields`). */
export function logFields(): Readonly<Record<string, string>> {
  return scope.getStore() ?? {};
}

/**
 * The process's root logger. `base`: fields on every line besides `service`, `pid` and `hostname`; `traces`: add the
 * active span's ids (set when tracing is on; without it there is no span to read). `destination`: tests.
 */
export function createLogger(
  service: string,
  env: LoggingEnv,
  { base = {}, traces = false, destination }: { base?: Record<string, unknown>; traces?: boolean; destination?: DestinationStream } = {},
): Logger {
  const options: LoggerOptions = {
    level: env.LOG_LEVEL,
    base: { service, pid: process.pid, hostname: hostname(), ...base },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => {
      const fields = scope.getStore();
      if (!traces) return fields ?? {};
      const span = trace.getActiveSpan()?.spanContext();
      return span && isSpanContextValid(span) ? { ...fields, trace_id: span.traceId, span_id: span.spanId } : (fields ?? {});
    },
  };
  const out = destination ?? (env.LOG_FORMAT === 'pretty' ? prettyStream(process.stdout) : pino.destination({ dest: 1, sync: true }));
  return pino(options, out);
}

const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'context']);

/** One JSON line as one readable line: `12:00:00.000 INFO  [context] message key=value …` (errors: their stack). */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const text = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  const time = text(o['time']).slice(11, 23);
  const level = text(o['level']).toUpperCase();
  const context = o['context'] ? `[${text(o['context'])}] ` : '';
  const rest = Object.entries(o)
    .filter(([k]) => !HIDDEN.has(k) && k !== 'err')
    .map(([k, v]) => `${k}=${text(v)}`);
  const err = o['err'] as { stack?: string; message?: string } | undefined;
  const stack = err ? `\n${err.stack ?? err.message ?? ''}` : '';
  return `${time} ${level.padEnd(5)} ${context}${text(o['msg'])}${rest.length ? ` ${rest.join(' ')}` : ''}${stack}\n`;
}

function prettyStream(out: NodeJS.WritableStream): DestinationStream {
  return { write: (line: string) => void out.write(prettyLine(line)) };
}

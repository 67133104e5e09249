/**
 * Traces (OpenTelemetry), shared by the API, the worker and the notifier. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is
 * set: then nothing of the SDK is even loaded. On, each process exports its spans over OTLP/HTTP (JSON) to
 * `${OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`, and the standard OTEL_* variables the SDK reads (OTEL_TRACES_SAMPLER,
 * OTEL_BSP_SCHEDULE_DELAY, OTEL_NODE_ENABLED_INSTRUMENTATIONS, …) apply.
 *
 * Instrumentations patch modules as they are loaded, so `startTelemetry` runs before Nest, BullMQ, pg or http are
 * loaded: each main.ts imports its `instrument.ts` first.
 */
import type { Attributes, Span } from '@opentelemetry/api';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { z } from 'zod';

export const TelemetryEnvSchema = z.object({
  /** an OTLP/HTTP collector's base URL (e.g. http://otel-collector:4318); unset or empty: no tracing */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.url({ protocol: /^https?$/ }).optional()),
  /** the service name on spans and log lines; default: the process's own (dimoo-api, dimoo-worker, dimoo-notifier) */
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
});
export type TelemetryEnv = z.infer<typeof TelemetryEnvSchema>;

/** What the SDK module (`tracing-sdk.ts`) gives back: loaded only when tracing is on. */
export interface TracingSdk {
  shutdown(): Promise<void>;
}

let sdk: TracingSdk | null = null;

/** The service name of this process's spans and log lines. */
export const serviceName = (fallback: string, env: Pick<TelemetryEnv, 'OTEL_SERVICE_NAME'>): string => env.OTEL_SERVICE_NAME ?? fallback;

/**
 * Starts tracing when an endpoint is set; returns whether it did. An invalid value starts nothing here: the process's
 * full environment check at boot names it and stops the process.
 */
export function startTelemetry(defaultService: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (sdk) return true;
  const parsed = TelemetryEnvSchema.safeParse(env);
  if (!parsed.success || !parsed.data.OTEL_EXPORTER_OTLP_ENDPOINT) return false;
  // loaded here and only here: the SDK and its instrumentations cost a second and some memory at start
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startSdk } = require('./tracing-sdk') as typeof import('./tracing-sdk');
  sdk = startSdk(serviceName(defaultService, parsed.data));
  return true;
}

export const tracingEnabled = (): boolean => sdk !== null;

/** Exports what is left and stops tracing (a process's last step, after its own shutdown). */
export async function shutdownTelemetry(): Promise<void> {
  const s = sdk;
  sdk = null;
  await s?.shutdown().catch(() => undefined);
}

/** Flushes the spans at application shutdown (Nest calls it; modules imported last shut down last). */
export class TelemetryShutdown {
  onApplicationShutdown(): Promise<void> {
    return shutdownTelemetry();
  }
}

const tracer = () => trace.getTracer('dimoo');

/** A span begun by `startSpan`: ended by its owner. */
export interface OpenSpan {
  setAttributes(attributes: Attributes): void;
  /** ends it; an error marks it failed */
  end(err?: unknown): void;
}

const NO_SPAN: OpenSpan = { setAttributes: () => undefined, end: () => undefined };

/** Begins a span (a child of the active one) that is not made active: for work whose end the caller sees elsewhere. */
export function startSpan(name: string, attributes: Attributes): OpenSpan {
  if (!sdk) return NO_SPAN;
  const span = tracer().startSpan(name, { attributes });
  return {
    setAttributes: (a) => void span.setAttributes(a),
    end: (err?: unknown) => {
      if (err !== undefined) failed(span, err);
      span.end();
    },
  };
}

function failed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * Runs `fn` in a new span (a child of the active one), ended when `fn` settles; an error marks it failed. Without
 * tracing, just `fn`.
 */
export async function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  if (!sdk) return fn();
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      failed(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

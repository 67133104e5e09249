/**
 * The OpenTelemetry SDK of a process, loaded by `startTelemetry` only when tracing is on. Spans only: metrics stay
 * Prometheus' (`/metrics`) and logs stay on stdout.
 *
 * Instrumented: incoming and outgoing HTTP (the API's requests, S3), Express and Nest (route and handler), pg (Prisma's
 * queries) and ioredis; BullMQ's own spans come from `bullmq-otel` on each queue and worker (`@dimoo/queue`). Work that
 * no request or job started (timers: the outbox, heartbeats, the dispatcher's passes) makes no database or Redis spans,
 * and probes (`/healthz`, `/readyz`, `/metrics`) make none: a trace is about a request or a job.
 */
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TracingSdk } from './telemetry';

const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

export function startSdk(service: string): TracingSdk {
  // the standard variable still chooses; this is the default set (the rest of the package adds only start-up time)
  process.env['OTEL_NODE_ENABLED_INSTRUMENTATIONS'] ??= 'http,express,nestjs-core,pg,ioredis';
  const sdk = new NodeSDK({
    serviceName: service,
    // OTLP/HTTP with JSON bodies to ${OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces (the exporter reads the variable)
    traceExporter: new OTLPTraceExporter(),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      getNodeAutoInstrumentations({
        '@opentelemetry/instrumentation-http': {
          ignoreIncomingRequestHook: (req) => PROBES.has((req.url ?? '').split('?')[0]!),
          requireParentforOutgoingSpans: true,
        },
        '@opentelemetry/instrumentation-pg': { requireParentSpan: true },
        '@opentelemetry/instrumentation-ioredis': { requireParentSpan: true },
      }),
    ],
  });
  sdk.start();
  return sdk;
}

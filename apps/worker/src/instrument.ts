/** Imported first by main.ts: tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) must start before the modules it patches load. */
import { startTelemetry } from '@dimoo/config';

startTelemetry('dimoo-worker');

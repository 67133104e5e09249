/** Tracing is off, and costs nothing, unless an OTLP endpoint is set; the settings are checked like every other. */
import { ServiceEnvSchema } from './env';
import { inSpan, startSpan, startTelemetry, TelemetryEnvSchema, tracingEnabled } from './telemetry';

const loaded = (pkg: string) => Object.keys(require.cache).some((f) => f.includes(`/node_modules/${pkg}/`));

describe('telemetry', () => {
  it('without an endpoint (unset, empty, or not a URL) starts nothing and loads no SDK', async () => {
    for (const env of [{}, { OTEL_EXPORTER_OTLP_ENDPOINT: '' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }]) {
      expect(startTelemetry('dimoo-test', env)).toBe(false);
    }
    expect(tracingEnabled()).toBe(false);
    expect(loaded('@opentelemetry/sdk-node')).toBe(false);
    expect(loaded('@opentelemetry/auto-instrumentations-node')).toBe(false);
    // spans are no-ops: the work runs as it is
    await expect(inSpan('work', {}, () => Promise.resolve(42))).resolves.toBe(42);
    await expect(inSpan('work', {}, () => Promise.reject(new Error('failed')))).rejects.toThrow('failed');
    expect(() => startSpan('work', {}).end(new Error('x'))).not.toThrow();
  });

  it('is validated with the shared environment: an endpoint must be a URL, empty is unset', () => {
    const base = { DATABASE_URL: 'postgres://db.invalid/d', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b', MODEL_DIR: '/m' };
    expect(ServiceEnvSchema.parse({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: '' }).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
    expect(ServiceEnvSchema.safeParse({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }).error?.issues.map((i) => i.path[0])).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT',
    ]);
    expect(TelemetryEnvSchema.parse({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', OTEL_SERVICE_NAME: 'api-eu' })).toEqual({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318',
      OTEL_SERVICE_NAME: 'api-eu',
    });
  });
});

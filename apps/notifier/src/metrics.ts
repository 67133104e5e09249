/**
 * The notifier's Prometheus metrics, served at `/metrics` (and `/healthz`) on METRICS_PORT (off when 0). The names are
 * a contract with the deployment (`deploy/prometheus/alerts.yaml`, `deploy/grafana/dimoo.json`).
 * - `dimoo_webhook_deliveries_total{outcome}`: each try of a delivery: `delivered`, `retry` (failed, another try
 *   follows) or `failed` (the last try failed, or the target was refused);
 * - `dimoo_webhook_delivery_seconds`: how long each try's request took (refused targets make none);
 * - prom-client's process metrics, prefixed `dimoo_notifier_`.
 */
import { createServer, type Server } from 'node:http';
import { processRegistry } from '@dimoo/config';
import { Counter, Histogram } from 'prom-client';

export const DELIVERY_OUTCOMES = ['delivered', 'retry', 'failed'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

export class NotifierMetrics {
  readonly registry = processRegistry('dimoo_notifier_');
  private readonly deliveries: Counter<'outcome'>;
  private readonly seconds: Histogram;

  constructor() {
    const registers = [this.registry];
    this.deliveries = new Counter({
      name: 'dimoo_webhook_deliveries_total',
      help: 'Webhook delivery tries by outcome: delivered, retry (another try follows), failed (the last one, or a refused target)',
      labelNames: ['outcome'],
      registers,
    });
    // every series from the start at 0: `increase()` then counts a series' first try too
    for (const outcome of DELIVERY_OUTCOMES) this.deliveries.inc({ outcome }, 0);
    this.seconds = new Histogram({
      name: 'dimoo_webhook_delivery_seconds',
      help: 'Time a webhook request took, until the answer or the timeout',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  /** One try: its outcome and, when a request was made, how long it took. */
  delivery(outcome: DeliveryOutcome, ms: number | null): void {
    this.deliveries.inc({ outcome });
    if (ms !== null) this.seconds.observe(ms / 1000);
  }
}

/** `/metrics` and `/healthz` on `port` (all interfaces: Prometheus scrapes the pod); null when the port is 0. */
export async function serveMetrics(port: number, metrics: NotifierMetrics): Promise<Server | null> {
  if (port === 0) return null;
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', resolve);
  });
  return server;
}

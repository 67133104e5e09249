/**
 * The worker's health endpoint (HEALTH_PORT; off when 0): `/healthz` answers while the process runs, `/readyz` only
 * once the model is loaded and the worker takes jobs — and says why not otherwise (loading, or the model failed to
 * load, with the reason), so an operator or a probe sees what a crash loop would hide. `/metrics` is the worker's
 * Prometheus exposition (`metrics.ts`), served whatever the state.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export type WorkerState = { state: 'loading' } | { state: 'ready'; model: string } | { state: 'model-failed'; error: string } | { state: 'stopping' };

export class HealthServer {
  private status: WorkerState = { state: 'loading' };

  private constructor(private readonly server: Server | null) {}

  static async start(port: number, workerId: string, metrics: Registry | null = null): Promise<HealthServer> {
    if (port === 0) return new HealthServer(null);
    let health: HealthServer | null = null;
    const server = createServer((req, res) => {
      if (req.url === '/metrics' && metrics) {
        metrics.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
        );
        return;
      }
      const status = health!.status;
      const ready = status.state === 'ready';
      const code = req.url === '/healthz' ? 200 : req.url === '/readyz' ? (ready ? 200 : 503) : 404;
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ worker: workerId, ...status }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '0.0.0.0', resolve);
    });
    health = new HealthServer(server);
    return health;
  }

  set(status: WorkerState): void {
    this.status = status;
  }

  get serving(): boolean {
    return this.server !== null;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/**
 * A TCP proxy on 127.0.0.1 for fault injection: put it between a service and Postgres, Redis or the S3 server, then
 * change its mode while tests run. Faults apply to open connections and to new ones:
 * - `pass`: forward both ways;
 * - `latency`: forward, each chunk delayed by `ms` (order kept);
 * - `drop`: close every connection (FIN) and every new one at once;
 * - `reset`: reset every connection (RST) and every new one at once;
 * - `blackhole`: accept, forward nothing either way, never answer (clients see timeouts, not errors).
 * It never touches the server behind it: the machine's shared Postgres and Redis are only ever proxied.
 */
import type { Server, Socket } from 'node:net';
import { connect, createServer } from 'node:net';

export type FaultMode = { kind: 'pass' } | { kind: 'latency'; ms: number } | { kind: 'drop' } | { kind: 'reset' } | { kind: 'blackhole' };

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class FaultProxy {
  private mode: FaultMode = { kind: 'pass' };
  private readonly pairs = new Set<Pair>();
  /** connections accepted since start */
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    let proxy: FaultProxy | null = null;
    const server = createServer((client) => proxy?.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    proxy = new FaultProxy(server, (server.address() as { port: number }).port, target);
    return proxy;
  }

  get current(): FaultMode {
    return this.mode;
  }

  /** Switches the fault; `drop` and `reset` also end every open connection now. */
  set(mode: FaultMode): void {
    this.mode = mode;
    if (mode.kind === 'drop' || mode.kind === 'reset') for (const p of [...this.pairs]) this.end(p, mode.kind);
  }

  /** Runs `body` with the fault on, then back to `pass`. */
  async during<T>(mode: FaultMode, body: () => Promise<T>): Promise<T> {
    this.set(mode);
    try {
      return await body();
    } finally {
      this.set({ kind: 'pass' });
    }
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.end(p, 'reset');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.connections++;
    client.on('error', () => undefined);
    if (this.mode.kind === 'drop') return void client.end();
    if (this.mode.kind === 'reset') return void client.resetAndDestroy();
    const upstream = connect(this.target.port, this.target.host);
    upstream.on('error', () => this.end(pair, 'reset'));
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    client.on('close', () => this.end(pair, 'drop'));
    upstream.on('close', () => this.end(pair, 'drop'));
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  /** Forwards `from` → `to` under the mode in force when each chunk arrives. */
  private forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      const mode = this.mode;
      switch (mode.kind) {
        case 'pass':
          to.write(chunk);
          return;
        case 'latency':
          // the same delay for every chunk keeps them in order
          setTimeout(() => to.writable && to.write(chunk), mode.ms);
          return;
        case 'blackhole':
          return; // swallowed: the other side waits forever
        case 'drop':
        case 'reset':
          return;
      }
    });
  }

  private end(pair: Pair, how: 'drop' | 'reset'): void {
    if (!this.pairs.delete(pair)) return;
    for (const s of [pair.client, pair.upstream]) {
      if (s.destroyed) continue;
      if (how === 'reset') s.resetAndDestroy();
      else s.end();
    }
  }
}

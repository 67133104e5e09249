/** One webhook request: POST to the pinned address (no redirects followed), bounded in time. */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { PinnedTarget } from './address';

export interface Attempt {
  ok: boolean;
  /** the HTTP status, null when no answer came */
  status: number | null;
  error: string | null;
  ms: number;
}

export function post(target: PinnedTarget, body: string, headers: Record<string, string>, timeoutMs: number): Promise<Attempt> {
  const t0 = performance.now();
  const done = (status: number | null, error: string | null): Attempt => ({
    ok: status !== null && status >= 200 && status < 300,
    status,
    error,
    ms: Math.round(performance.now() - t0),
  });
  // the connection goes to the address that was checked, whatever the name resolves to now
  const pinned: LookupFunction = (_host, options, callback) => {
    if (options.all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  return new Promise((resolve) => {
    const req = (target.url.protocol === 'https:' ? https : http).request(
      target.url,
      {
        method: 'POST',
        lookup: pinned,
        timeout: timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'dimoo-serve-webhooks/1', ...headers },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(done(res.statusCode ?? null, res.statusCode && res.statusCode >= 300 ? `answered ${res.statusCode}` : null)));
        res.on('error', (e) => resolve(done(res.statusCode ?? null, e.message)));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve(done(null, e.message)));
    req.end(body);
  });
}

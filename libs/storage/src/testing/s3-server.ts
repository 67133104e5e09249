// An S3-protocol server for integration tests: s3rver (devDependency) on 127.0.0.1, a free port, a temp directory.
// s3rver does not check signatures: never use it to test authentication. It cannot do multipart uploads either.
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import type { StorageConfig } from '../object-store';

interface S3rverOptions {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  resetOnClose?: boolean;
  configureBuckets?: { name: string }[];
}
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: { closeAllConnections?: () => void };
}
type S3rverConstructor = new (options: S3rverOptions) => S3rverInstance;

export interface S3TestServer {
  endPoint: string;
  port: number;
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  directory: string;
  /** Connection settings for an `ObjectStore` on this server (s3rver accepts any credentials). */
  config(bucket: string): StorageConfig;
  /** Stops the server (keeps the data, so `start` on the same directory would find it). */
  stop(): Promise<void>;
  /** Stops the server and deletes its directory. */
  dispose(): Promise<void>;
}

export interface S3TestServerOptions {
  /** Buckets to create before the server starts. */
  buckets?: string[];
  /** Reuse a directory (e.g. to restart a stopped server); a fresh temp directory otherwise. */
  directory?: string;
  /** Listen on this port. @defaultValue 0 (a free port) */
  port?: number;
}

export async function startS3Server(options: S3TestServerOptions = {}): Promise<S3TestServer> {
  // Loaded lazily through createRequire: s3rver is a devDependency and ships no types.
  const S3rver = createRequire(__filename)('s3rver') as S3rverConstructor;
  const directory = options.directory ?? (await mkdtemp(path.join(os.tmpdir(), 'dimoo-s3rver-')));
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    directory,
    silent: true,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  const { port } = await server.run();
  let running = true;
  const stop = async (): Promise<void> => {
    if (!running) return;
    running = false;
    const closed = server.close();
    // Keep-alive sockets would hold close() open until they time out.
    server.httpServer?.closeAllConnections?.();
    await closed;
  };
  return {
    endPoint: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    directory,
    config: (bucket) => ({
      endPoint: '127.0.0.1',
      port,
      useSSL: false,
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
      bucket,
      region: 'us-east-1',
    }),
    stop,
    dispose: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

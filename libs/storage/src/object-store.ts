import http from 'node:http';
import https from 'node:https';

import { Client, type ClientOptions } from 'minio';

import { BucketNotFound, ObjectNotFound, toStorageError } from './errors';

export interface StorageEndpoint {
  endPoint: string;
  port: number;
  useSSL: boolean;
}

export interface StorageConfig extends StorageEndpoint {
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** Also spares the client a region lookup before presigning. @defaultValue 'us-east-1' */
  region?: string;
  /**
   * The address clients outside the cluster reach the store at (e.g. `s3.example.com:443`). Presigned URLs are
   * signed for this host; without it they carry `endPoint`. @defaultValue the endpoint above
   */
  publicEndpoint?: StorageEndpoint;
  /** A request with no response activity for this long fails with StorageUnavailable. @defaultValue 30000 */
  requestTimeoutMs?: number;
}

export interface ObjectStat {
  size: number;
  etag: string;
  contentType: string | undefined;
  lastModified: Date;
  metadata: Record<string, unknown>;
}

/** Sends requests through node:http(s) and aborts those that stay silent longer than `timeoutMs`. */
function timeoutTransport(useSSL: boolean, timeoutMs: number): NonNullable<ClientOptions['transport']> {
  const base = useSSL ? https : http;
  const request = (options: http.RequestOptions, callback?: (res: http.IncomingMessage) => void): http.ClientRequest => {
    const req = base.request(options, callback);
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no response from object storage within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    return req;
  };
  return { request } as unknown as NonNullable<ClientOptions['transport']>;
}

function client(endpoint: StorageEndpoint, config: StorageConfig, region: string): Client {
  return new Client({
    endPoint: endpoint.endPoint,
    port: endpoint.port,
    useSSL: endpoint.useSSL,
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region,
    // MinIO and s3rver: bucket in the path, no per-bucket DNS names.
    pathStyle: true,
    transport: timeoutTransport(endpoint.useSSL, config.requestTimeoutMs ?? 30_000),
    // Failures surface at once as typed errors; callers decide whether to retry (minio's own retry throws untyped
    // errors and logs with console.warn).
    retryOptions: { disableRetry: true },
  });
}

/**
 * One bucket of S3-compatible storage (MinIO in production) through the minio client. Every failure is a typed
 * `StorageError`: `StorageUnavailable` (retry), `ObjectNotFound`, `BucketNotFound`, or `StorageError` itself.
 */
export class ObjectStore {
  public readonly bucket: string;
  private readonly region: string;
  private readonly client: Client;
  private readonly presigner: Client;

  public constructor(config: StorageConfig) {
    this.bucket = config.bucket;
    this.region = config.region ?? 'us-east-1';
    this.client = client(config, config, this.region);
    this.presigner = config.publicEndpoint ? client(config.publicEndpoint, config, this.region) : this.client;
  }

  /** Creates the bucket if it is missing; safe to call on every boot, from several processes at once. */
  public async ensureBucket(): Promise<void> {
    await this.call('ensureBucket', undefined, async () => {
      if (await this.client.bucketExists(this.bucket)) return;
      try {
        await this.client.makeBucket(this.bucket, this.region);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        // Another process created it in between.
        if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
        throw error;
      }
    });
  }

  /** Readiness: resolves when the store answers and the bucket exists. @throws StorageUnavailable, BucketNotFound */
  public async ping(): Promise<void> {
    const exists = await this.call('ping', undefined, () => this.client.bucketExists(this.bucket));
    if (!exists) throw new BucketNotFound(this.bucket);
  }

  /** Stores `bytes` under `key` in one request (the size is always sent: no multipart, no unknown-length streams). */
  public async put(key: string, bytes: Uint8Array, contentType: string): Promise<{ etag: string }> {
    const body = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const info = await this.call('put', key, () => this.client.putObject(this.bucket, key, body, body.length, { 'Content-Type': contentType }));
    return { etag: info.etag };
  }

  /** @throws ObjectNotFound */
  public async get(key: string): Promise<Buffer> {
    return this.call('get', key, async () => {
      const stream = await this.client.getObject(this.bucket, key);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
      return Buffer.concat(chunks);
    });
  }

  /** @throws ObjectNotFound */
  public async stat(key: string): Promise<ObjectStat> {
    const stat = await this.call('stat', key, () => this.client.statObject(this.bucket, key));
    const metadata = stat.metaData as Record<string, unknown>;
    const contentType = metadata['content-type'];
    return {
      size: stat.size,
      etag: stat.etag,
      contentType: typeof contentType === 'string' ? contentType : undefined,
      lastModified: stat.lastModified,
      metadata,
    };
  }

  /** Whether an object exists under `key`. */
  public async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (error) {
      if (error instanceof ObjectNotFound) return false;
      throw error;
    }
  }

  /**
   * A URL anyone can GET the object with until it expires (signed offline: no request to the store).
   * @param expirySeconds 1 s to 7 days
   */
  public async presignedGet(key: string, expirySeconds: number): Promise<string> {
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > 604_800) {
      throw new RangeError(`presigned URL expiry must be 1..604800 seconds, got ${expirySeconds}`);
    }
    return this.call('presignedGet', key, () => this.presigner.presignedGetObject(this.bucket, key, expirySeconds));
  }

  /**
   * A URL anyone can PUT one object to under `key` until it expires (signed offline). The size is not bounded by the
   * signature: whoever reads the object checks it (`stat`).
   * @param expirySeconds 1 s to 7 days
   */
  public async presignedPut(key: string, expirySeconds: number): Promise<string> {
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > 604_800) {
      throw new RangeError(`presigned URL expiry must be 1..604800 seconds, got ${expirySeconds}`);
    }
    return this.call('presignedPut', key, () => this.presigner.presignedPutObject(this.bucket, key, expirySeconds));
  }

  /**
   * Objects under `prefix` (recursively) in key order, with size and age; for sweepers and tests, not hot paths.
   * `startAfter` and `limit` page through a large prefix: the next page starts after the last key of this one.
   */
  public async list(prefix: string, page: { startAfter?: string; limit?: number } = {}): Promise<{ key: string; size: number; lastModified: Date }[]> {
    return this.call('list', prefix, async () => {
      const out: { key: string; size: number; lastModified: Date }[] = [];
      const limit = page.limit ?? Infinity;
      if (limit <= 0) return out;
      for await (const item of this.client.listObjectsV2(this.bucket, prefix, true, page.startAfter ?? '')) {
        const o = item as { name?: string; size?: number; lastModified?: Date };
        if (o.name) out.push({ key: o.name, size: o.size ?? 0, lastModified: o.lastModified ?? new Date(0) });
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  /** Removes every object under `prefix` (a job's inputs, previews and results); none there is not an error. */
  public async removeAll(prefix: string): Promise<number> {
    const objects = await this.list(prefix);
    await Promise.all(objects.map((o) => this.remove(o.key)));
    return objects.length;
  }

  /** Removes the object; removing a missing object is not an error. */
  public async remove(key: string): Promise<void> {
    await this.call('remove', key, () => this.client.removeObject(this.bucket, key));
  }

  private async call<T>(operation: string, key: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw toStorageError(error, { bucket: this.bucket, operation, ...(key === undefined ? {} : { key }) });
    }
  }
}

/** An ObjectStore from the services' S3_* settings, its bucket created if missing (run on boot). */
export async function openObjectStore(env: {
  S3_ENDPOINT: string;
  S3_PORT: number;
  S3_USE_SSL: boolean;
  S3_ACCESS_KEY: string;
  S3_SECRET_KEY: string;
  S3_BUCKET: string;
  S3_REGION: string;
  S3_PUBLIC_URL?: string | undefined;
}): Promise<ObjectStore> {
  const pub = env.S3_PUBLIC_URL ? new URL(env.S3_PUBLIC_URL) : null;
  const publicEndpoint = pub
    ? { endPoint: pub.hostname, port: Number(pub.port) || (pub.protocol === 'https:' ? 443 : 80), useSSL: pub.protocol === 'https:' }
    : null;
  const store = new ObjectStore({
    ...(publicEndpoint ? { publicEndpoint } : {}),
    endPoint: env.S3_ENDPOINT,
    port: env.S3_PORT,
    useSSL: env.S3_USE_SSL,
    accessKey: env.S3_ACCESS_KEY,
    secretKey: env.S3_SECRET_KEY,
    bucket: env.S3_BUCKET,
    region: env.S3_REGION,
  });
  await store.ensureBucket();
  return store;
}

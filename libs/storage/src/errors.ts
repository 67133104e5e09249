/** Base class of the errors `ObjectStore` throws; match with `instanceof`, never on messages. */
export class StorageError extends Error {
  public constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The store could not be reached or answered "try later" (connection refused/reset, timeout, 5xx, SlowDown). Retry. */
export class StorageUnavailable extends StorageError {}

/** No object under this key. */
export class ObjectNotFound extends StorageError {
  public constructor(
    public readonly key: string,
    options?: ErrorOptions,
  ) {
    super(`object ${key} not found`, options);
  }
}

/** The configured bucket does not exist (run `ensureBucket()` at boot). */
export class BucketNotFound extends StorageError {
  public constructor(
    public readonly bucket: string,
    options?: ErrorOptions,
  ) {
    super(`bucket ${bucket} not found`, options);
  }
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const UNAVAILABLE_S3_CODES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'XMinioServerNotInitialized']);
const NOT_FOUND_S3_CODES = new Set(['NoSuchKey', 'NotFound']);

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // AggregateError (a host with several addresses, all refused) carries the codes of its parts.
  if (error instanceof AggregateError) return error.errors.map(errorCode).find((c) => c !== undefined);
  return undefined;
}

/** Maps a minio / Node error to a typed storage error. `key` names the object the operation was about, if any. */
export function toStorageError(error: unknown, context: { bucket: string; key?: string; operation: string }): StorageError {
  if (error instanceof StorageError) return error;
  const code = errorCode(error);
  const what = `${context.operation} ${context.bucket}${context.key === undefined ? '' : `/${context.key}`}`;
  if (code !== undefined && (NETWORK_ERROR_CODES.has(code) || UNAVAILABLE_S3_CODES.has(code))) {
    return new StorageUnavailable(`${what}: storage unavailable (${code})`, { cause: error });
  }
  if (code === 'NoSuchBucket') return new BucketNotFound(context.bucket, { cause: error });
  if (code !== undefined && NOT_FOUND_S3_CODES.has(code) && context.key !== undefined) {
    return new ObjectNotFound(context.key, { cause: error });
  }
  return new StorageError(`${what} failed${code === undefined ? '' : ` (${code})`}`, { cause: error });
}

/**
 * Input images for a request's image fields (`image`, `mask`, `images`): from a file, bytes, or base64 already; a
 * reference (an earlier job's result `{ jobId }`, an upload `{ upload }`) is passed on as it is.
 */
import { readFile } from 'node:fs/promises';

/** A file path or a `data:` URL, the image's bytes, or its base64. */
export type ImageSource = string | Uint8Array | ArrayBuffer | { base64: string };

/** The base64 of an image, as a request's image fields take it (a data: URL as it is). */
export async function imageInput(source: ImageSource): Promise<string> {
  if (typeof source === 'string') return source.startsWith('data:') ? source : (await readFile(source)).toString('base64');
  if ('base64' in source) return source.base64;
  return Buffer.from(source instanceof ArrayBuffer ? new Uint8Array(source) : source).toString('base64');
}

/** The bytes of an image (for an upload). */
export async function imageBytes(source: ImageSource): Promise<Buffer> {
  const base64 = await imageInput(source);
  return Buffer.from(base64.startsWith('data:') ? base64.slice(base64.indexOf(',') + 1) : base64, 'base64');
}

/** An image the API already holds: an earlier image result of the team, or an upload (`POST /v1/uploads`). */
export type ImageReference = { jobId: string } | { upload: string };
const isReference = (v: unknown): v is ImageReference => typeof v === 'object' && v !== null && ('jobId' in v || 'upload' in v);

type ImageFields = 'image' | 'mask' | 'images';
type Given = ImageSource | ImageReference;
/** A request whose image fields may be given as files, bytes or base64 (`withImages` turns them into base64). */
export type WithImageSources<R> = R extends unknown ? { [K in keyof R]: K extends 'images' ? Given[] : K extends ImageFields ? Given : R[K] } : never;

const field = async (v: Given) => (isReference(v) ? v : imageInput(v));

/** The request with its image fields read and encoded (`image`, `mask`, every item of `images`); references kept. */
export async function withImages<R extends object>(request: WithImageSources<R>): Promise<R> {
  const out: Record<string, unknown> = { ...request };
  for (const key of ['image', 'mask'] as const) {
    const value = out[key];
    if (value !== undefined) out[key] = await field(value as Given);
  }
  if (Array.isArray(out['images'])) out['images'] = await Promise.all((out['images'] as Given[]).map(field));
  return out as R;
}

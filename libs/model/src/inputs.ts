/**
 * A request's input images as resolution needs them: decoded off the event loop (libvips threads), their sizes, and
 * the token cells a painting mask regenerates. The API does this with the uploaded bytes; in-process callers with
 * images they already hold.
 */
import type { ImageSize, JobImages, ResolveContext } from '@dimoo/contracts';
import type { RgbImage } from './image';
import { decodeImage } from './image';
import { maskCells } from './mask';

/** Decodes every image; an undecodable one becomes null (resolution names its field). */
export async function decodeJobImages(bytes: JobImages<Uint8Array>): Promise<JobImages<RgbImage | null>> {
  const decode = (b: Uint8Array) => decodeImage(b).catch(() => null);
  const [images, mask] = await Promise.all([Promise.all(bytes.images.map(decode)), bytes.mask === undefined ? undefined : decode(bytes.mask)]);
  return mask === undefined ? { images } : { images, mask };
}

const sizeOf = (img: RgbImage): ImageSize => ({ height: img.height, width: img.width });

/** What `resolveJob` needs to know of the decoded images. */
export function imageFacts(decoded: JobImages<RgbImage | null>, gridFactor: number): Pick<ResolveContext, 'inputs' | 'mask'> {
  const facts: Pick<ResolveContext, 'inputs' | 'mask'> = { inputs: decoded.images.map((img) => (img ? sizeOf(img) : null)) };
  if (decoded.mask !== undefined) facts.mask = decoded.mask ? { size: sizeOf(decoded.mask), cells: maskCells(decoded.mask, gridFactor) } : null;
  return facts;
}

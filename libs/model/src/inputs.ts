/**
 * A request's input images as resolution needs them: their sizes and the token cells a painting mask regenerates. The
 * API reads them from the uploaded bytes (`inspectJobImages`: headers, no pixels but the mask's); in-process callers
 * from images they already hold (`imageFacts`).
 */
import type { ImageSize, JobImages, ModelManifest, ResolveContext } from '@dimoo/contracts';
import type { RgbImage } from './image';
import { decodeImage } from './image';
import { maskCells } from './mask';
import { probeImage } from './probe';

const sizeOf = (img: RgbImage): ImageSize => ({ height: img.height, width: img.width });

/** What `resolveJob` needs to know of the decoded images. */
export function imageFacts(decoded: JobImages<RgbImage | null>, gridFactor: number): Pick<ResolveContext, 'inputs' | 'mask'> {
  const facts: Pick<ResolveContext, 'inputs' | 'mask'> = { inputs: decoded.images.map((img) => (img ? sizeOf(img) : null)) };
  if (decoded.mask !== undefined) facts.mask = decoded.mask ? { size: sizeOf(decoded.mask), cells: maskCells(decoded.mask, gridFactor) } : null;
  return facts;
}

/**
 * What the API needs of a request's uploaded images, decoding no pixels but a mask's (its token cells), and a mask
 * only when its header size is within the model's limits. `reasons` says, per unreadable image (its index in
 * `images`, or `mask`), what is wrong with it.
 */
export async function inspectJobImages(
  bytes: JobImages<Buffer>,
  manifest: ModelManifest,
): Promise<{ facts: Pick<ResolveContext, 'inputs' | 'mask'>; reasons: { images: (string | null)[]; mask: string | null } }> {
  const probes = await Promise.all(bytes.images.map(probeImage));
  const facts: Pick<ResolveContext, 'inputs' | 'mask'> = { inputs: probes.map((p) => (p.ok ? { height: p.height, width: p.width } : null)) };
  const reasons = { images: probes.map((p) => (p.ok ? null : p.reason)), mask: null as string | null };
  if (bytes.mask !== undefined) {
    const probe = await probeImage(bytes.mask);
    const { maxSize, gridFactor } = manifest.image;
    if (!probe.ok) {
      facts.mask = null;
      reasons.mask = probe.reason;
    } else if (probe.width > maxSize || probe.height > maxSize) {
      facts.mask = { size: { height: probe.height, width: probe.width }, cells: '' }; // refused for its size, undecoded
    } else {
      const mask = await decodeImage(bytes.mask).catch(() => null);
      facts.mask = mask ? { size: { height: mask.height, width: mask.width }, cells: maskCells(mask, gridFactor) } : null;
      if (!mask) reasons.mask = 'is not a decodable PNG, JPEG or WebP image';
    }
  }
  return { facts, reasons };
}

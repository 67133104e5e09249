/**
 * Tests' requests: the API's request fields with the images inline and already decoded (a painting mask as 0/1
 * pixels), resolved exactly as the API resolves an HTTP request.
 */
import type { LocalRequest, ModelManifest } from '@dimoo/contracts';
import type { RgbImage } from '@dimoo/model';
import type { EngineJob } from '../pipeline';
import { resolveLocal } from '../pipeline';

type Of<T extends LocalRequest['task']> = Extract<LocalRequest, { task: T }>;

export type InlineRequest =
  | Of<'t2i'>
  | (Of<'paint'> & { image: RgbImage; /** H·W, non-zero = regenerate */ mask: Uint8Array })
  | (Of<'i2i'> & { images: RgbImage[] })
  | (Of<'mmu'> & { image: RgbImage });

/** A 0/1 pixel mask as the mask image a client would send (white where 1). */
export function maskImage(pixels: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  pixels.forEach((v, i) => v && data.fill(255, i * 3, i * 3 + 3));
  return { width, height, data };
}

export function inlineJob(manifest: ModelManifest, req: InlineRequest): EngineJob {
  switch (req.task) {
    case 't2i':
      return resolveLocal(manifest, req);
    case 'paint': {
      const { image, mask, ...rest } = req;
      return resolveLocal(manifest, rest, { images: [image], mask: maskImage(mask, image.width, image.height) });
    }
    case 'i2i': {
      const { images, ...rest } = req;
      return resolveLocal(manifest, rest, { images });
    }
    case 'mmu': {
      const { image, ...rest } = req;
      return resolveLocal(manifest, rest, { images: [image] });
    }
  }
}

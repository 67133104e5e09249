import sharp from 'sharp';
import type { PlanarImage } from './vq';

/** Interleaved 8-bit RGB. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Decodes PNG/JPEG/WebP… to RGB. libvips runs on its own threads, off the event loop. */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const { data, info } = await sharp(bytes).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** PNG of the image, optionally resized (area-averaged) to `size`. */
export async function encodePng(image: RgbImage, size?: { width: number; height: number }): Promise<Buffer> {
  const img = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
  return (size ? img.resize(size.width, size.height, { kernel: 'mitchell' }) : img).png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer();
}

export function toPlanar(image: RgbImage): PlanarImage {
  const { width: W, height: H } = image;
  const data = new Float32Array(3 * H * W);
  for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) data[c * H * W + i] = image.data[i * 3 + c]! / 255;
  return { width: W, height: H, data };
}

export function fromPlanar(image: PlanarImage): RgbImage {
  const { width: W, height: H } = image;
  const data = new Uint8Array(3 * H * W);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = Math.round(Math.min(1, Math.max(0, image.data[c * H * W + i]!)) * 255);
  }
  return { width: W, height: H, data };
}

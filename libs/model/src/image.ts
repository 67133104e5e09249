import type { OutputFormat } from '@dimoo/contracts';
import sharp from 'sharp';

/** Interleaved 8-bit RGB. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Decodes PNG/JPEG/WebP… to RGB, turned upright by its EXIF orientation (a phone photo is what its viewer shows).
 * libvips runs on its own threads, off the event loop.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const { data, info } = await sharp(bytes).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

const raw = (image: RgbImage) => sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });

/** PNG of the image, optionally resized (area-averaged) to `size`. */
export async function encodePng(image: RgbImage, size?: { width: number; height: number }): Promise<Buffer> {
  const img = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
  return (size ? img.resize(size.width, size.height, { kernel: 'mitchell' }) : img).png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer();
}

/** A result image in one of the output formats (@dimoo/contracts OUTPUT_FORMATS). */
export async function encodeImage(image: RgbImage, format: OutputFormat): Promise<Buffer> {
  switch (format) {
    case 'png':
      return encodePng(image);
    case 'webp':
      return raw(image).webp({ quality: 90, effort: 4 }).toBuffer();
    case 'jpeg':
      return raw(image).jpeg({ quality: 90, mozjpeg: true }).toBuffer();
  }
}

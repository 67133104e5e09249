/**
 * What an uploaded image is, without decoding its pixels: a structure check of the container (PNG chunk CRCs and
 * IEND, JPEG SOI…EOI, the WebP RIFF size) and its header (size after EXIF orientation, animation). A hostile file — a
 * few KB declaring 30,000 × 30,000 pixels, a truncated or corrupt one, an animation — is refused here, before any
 * decoder allocates for it.
 */
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export type Probe = { ok: true; format: ImageFormat; width: number; height: number } | { ok: false; reason: string };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The container's own consistency; the reason when it is broken. */
export function checkStructure(bytes: Buffer): { format: ImageFormat } | { reason: string } {
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return checkPng(bytes);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return checkJpeg(bytes);
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return checkWebp(bytes);
  return { reason: 'is not a PNG, JPEG or WebP image' };
}

function checkPng(bytes: Buffer): { format: ImageFormat } | { reason: string } {
  let o = 8;
  let first = true;
  let data = false;
  while (o + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(o);
    const type = bytes.toString('latin1', o + 4, o + 8);
    const end = o + 12 + length;
    if (end > bytes.length) return { reason: `is a truncated PNG (chunk ${type} runs past the end)` };
    if (first && type !== 'IHDR') return { reason: 'is a corrupt PNG (no IHDR first)' };
    if (crc32(bytes.subarray(o + 4, o + 8 + length)) !== bytes.readUInt32BE(o + 8 + length)) return { reason: `is a corrupt PNG (bad CRC in chunk ${type})` };
    if (type === 'IDAT') data = true;
    if (type === 'acTL') return { reason: 'is an animated PNG; send one frame' };
    if (type === 'IEND') return data ? { format: 'png' } : { reason: 'is a PNG without image data' };
    first = false;
    o = end;
  }
  return { reason: 'is a truncated PNG (no IEND)' };
}

function checkJpeg(bytes: Buffer): { format: ImageFormat } | { reason: string } {
  // encoders may pad after the end marker; nothing else may follow it
  let end = bytes.length;
  while (end > 2 && bytes[end - 1] === 0x00) end--;
  return bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9 ? { format: 'jpeg' } : { reason: 'is a truncated JPEG (no end-of-image marker)' };
}

function checkWebp(bytes: Buffer): { format: ImageFormat } | { reason: string } {
  const size = bytes.readUInt32LE(4);
  if (size + 8 !== bytes.length) return { reason: `is a truncated or padded WebP (RIFF says ${size + 8} bytes, got ${bytes.length})` };
  return { format: 'webp' };
}

/** Structure, then the header (sharp reads it without decoding pixels): the size as the image will be decoded. */
export async function probeImage(bytes: Buffer): Promise<Probe> {
  const structure = checkStructure(bytes);
  if ('reason' in structure) return { ok: false, reason: structure.reason };
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if ((meta.pages ?? 1) > 1) return { ok: false, reason: `is an animated image (${meta.pages} frames); send one frame` };
    if (!meta.width || !meta.height) return { ok: false, reason: 'has no readable size' };
    // EXIF orientations 5–8 turn the image a quarter: decoding applies the rotation, so the sides swap
    const turned = (meta.orientation ?? 1) >= 5;
    return { ok: true, format: structure.format, width: turned ? meta.height : meta.width, height: turned ? meta.width : meta.height };
  } catch (err) {
    return { ok: false, reason: `is not a readable ${structure.format.toUpperCase()} image (${err instanceof Error ? err.message : String(err)})` };
  }
}

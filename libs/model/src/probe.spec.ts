import sharp from 'sharp';
import { decodeImage } from './image';
import { checkStructure, probeImage } from './probe';
import { declaredPng } from './testing';

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: '#c03030' } });

describe('probing an upload without decoding it', () => {
  it('reads the size a hostile header declares, from a few bytes', async () => {
    const bomb = declaredPng(30_000, 30_000);
    expect(bomb.length).toBeLessThan(100);
    expect(await probeImage(bomb)).toEqual({ ok: true, format: 'png', width: 30_000, height: 30_000 });
  });

  it('refuses truncated and corrupt containers by their structure', async () => {
    const png = await solid(64, 64).png().toBuffer();
    const jpeg = await solid(64, 64).jpeg().toBuffer();
    const webp = await solid(64, 64).webp().toBuffer();
    expect(checkStructure(png)).toEqual({ format: 'png' });
    expect(checkStructure(jpeg)).toEqual({ format: 'jpeg' });
    expect(checkStructure(webp)).toEqual({ format: 'webp' });
    expect(checkStructure(png.subarray(0, png.length - 20))).toEqual({ reason: expect.stringContaining('truncated PNG') });
    const flipped = Buffer.from(png);
    flipped[flipped.length - 20] = flipped[flipped.length - 20]! ^ 0xff; // inside the last IDAT: its CRC no longer matches
    expect(checkStructure(flipped)).toEqual({ reason: expect.stringContaining('bad CRC') });
    expect(checkStructure(jpeg.subarray(0, jpeg.length - 10))).toEqual({ reason: expect.stringContaining('truncated JPEG') });
    expect(checkStructure(webp.subarray(0, webp.length - 4))).toEqual({ reason: expect.stringContaining('WebP') });
    expect(checkStructure(Buffer.from('GIF89a...'))).toEqual({ reason: 'is not a PNG, JPEG or WebP image' });
  });

  it('refuses animations', async () => {
    const frames = await Promise.all(
      ['#f00', '#00f'].map((c) =>
        sharp({ create: { width: 32, height: 32, channels: 3, background: c } })
          .png()
          .toBuffer(),
      ),
    );
    const animated = await sharp(frames, { join: { animated: true } })
      .webp()
      .toBuffer();
    expect(await probeImage(animated)).toEqual({ ok: false, reason: expect.stringContaining('animated') });
  });

  it('turns an EXIF-rotated photo upright: the probe and the decoder agree on its size and pixels', async () => {
    // stored 128×64, tagged "rotate 90° clockwise": shown (and decoded) 64×128
    const half = Buffer.alloc(64 * 64 * 3, 255);
    const raw = Buffer.concat(Array.from({ length: 64 }, (_, y) => Buffer.concat([Buffer.alloc(64 * 3, 0), half.subarray(y * 64 * 3, (y + 1) * 64 * 3)])));
    const stored = await sharp(raw, { raw: { width: 128, height: 64, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect(await probeImage(stored)).toEqual({ ok: true, format: 'jpeg', width: 64, height: 128 });
    const upright = await decodeImage(stored);
    expect([upright.width, upright.height]).toEqual([64, 128]);
    // stored left half black, right half white; turned 90° clockwise: top half black, bottom half white
    const at = (x: number, y: number) => upright.data[(y * 64 + x) * 3]!;
    expect([at(32, 10) < 40, at(32, 118) > 215]).toEqual([true, true]);
  });
});

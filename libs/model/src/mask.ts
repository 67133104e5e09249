/**
 * Painting masks (spec §2.3): a mask image's pixels brighter than half are regenerated; the pixel mask is
 * area-downsampled to the token grid and a cell is regenerated when more than half of its pixels are masked. Any shape
 * works; the reference's centred rectangles (inpaint inside, outpaint outside) are one helper. The API resolves a mask
 * to its cells once (`maskCells`, stored with the job); the engine only reads the cells.
 */
import type { RgbImage } from './image';

/** 1 where a mask image's pixel is brighter than half (mean of R, G, B above 127.5). */
export function maskPixels(mask: RgbImage): Uint8Array {
  const out = new Uint8Array(mask.width * mask.height);
  for (let i = 0; i < out.length; i++) {
    const o = i * 3;
    out[i] = mask.data[o]! + mask.data[o + 1]! + mask.data[o + 2]! > 3 * 127.5 ? 1 : 0;
  }
  return out;
}

export function maskToGrid(pixels: ArrayLike<number>, height: number, width: number, factor: number): boolean[] {
  const rows = Math.floor(height / factor);
  const cols = Math.floor(width / factor);
  const out: boolean[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      for (let y = r * factor; y < (r + 1) * factor; y++) {
        for (let x = c * factor; x < (c + 1) * factor; x++) sum += pixels[y * width + x]! > 0 ? 1 : 0;
      }
      out.push(sum / (factor * factor) > 0.5);
    }
  }
  return out;
}

/** The token cells a mask image regenerates, row-major, '1' or '0' per cell (a resolved paint job's `regenerate`). */
export function maskCells(mask: RgbImage, gridFactor: number): string {
  return maskToGrid(maskPixels(mask), mask.height, mask.width, gridFactor)
    .map((on) => (on ? '1' : '0'))
    .join('');
}

/** A resolved job's `regenerate` cells back as booleans, for the engine. */
export function cellsToGrid(cells: string): boolean[] {
  return Array.from(cells, (c) => c === '1');
}

/**
 * A paint result that leaves the rest untouched: every token cell not regenerated takes the input image's pixels, byte
 * for byte; the regenerated cells keep the decoded ones. Seam policy: a hard seam on the cell grid, no blending or
 * feathering. The pixels that change are exactly the token cells the mask selected (`maskCells`: a cell whose pixels
 * are more than half masked), so a masked pixel in a cell that was not selected keeps the input, and an unmasked pixel
 * in a selected cell shows the model's. The model sampled the regenerated cells knowing the kept cells' codes, so their
 * content continues across the edge; the edge itself is a step between the decoder's pixels and the input's.
 * Pure: `decoded` and `input` are left unchanged.
 */
export function keepUnregenerated(decoded: RgbImage, input: RgbImage, regenerate: readonly boolean[], gridFactor: number): RgbImage {
  const { width: W, height: H } = input;
  if (decoded.width !== W || decoded.height !== H) throw new Error(`decoded ${decoded.width}×${decoded.height} for an input of ${W}×${H}`);
  const cols = W / gridFactor;
  const rows = H / gridFactor;
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || regenerate.length !== rows * cols) {
    throw new Error(`${regenerate.length} cells for ${W}×${H} at a grid factor of ${gridFactor}`);
  }
  const data = Uint8Array.from(decoded.data);
  regenerate.forEach((regenerated, cell) => {
    if (regenerated) return;
    const y0 = Math.floor(cell / cols) * gridFactor;
    const x0 = (cell % cols) * gridFactor;
    for (let y = y0; y < y0 + gridFactor; y++) {
      const from = (y * W + x0) * 3;
      data.set(input.data.subarray(from, from + gridFactor * 3), from);
    }
  });
  return { width: W, height: H, data };
}

/** The reference's centred rectangle: mh = round(H·hRatio), mw = round(W·wRatio); inpaint masks inside, outpaint outside. */
export function rectangleMask(height: number, width: number, hRatio: number, wRatio: number, mode: 'inpaint' | 'outpaint'): Uint8Array {
  const mh = Math.round(height * hRatio);
  const mw = Math.round(width * wRatio);
  const top = Math.floor((height - mh) / 2);
  const left = Math.floor((width - mw) / 2);
  const out = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = y >= top && y < top + mh && x >= left && x < left + mw;
      out[y * width + x] = inside === (mode === 'inpaint') ? 1 : 0;
    }
  }
  return out;
}

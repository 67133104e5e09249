import type { RgbImage } from './image';
import { cellsToGrid, keepUnregenerated, maskCells, maskToGrid, rectangleMask } from './mask';

describe('painting masks', () => {
  it('masks a cell only when more than half of its pixels are masked', () => {
    const W = 4;
    const H = 2;
    // two 2×2 cells: left has 3/4 masked, right has exactly 2/4 masked
    const px = [1, 1, 1, 0, 1, 0, 1, 0];
    expect(maskToGrid(px, H, W, 2)).toEqual([true, false]);
  });

  it('builds the reference centred rectangles', () => {
    // a 16-px-wide centred band straddles two cells at exactly half each: no cell is masked
    expect(maskToGrid(rectangleMask(64, 64, 1.0, 0.25, 'inpaint'), 64, 64, 16).some(Boolean)).toBe(false);
    const grid = maskToGrid(rectangleMask(64, 64, 1.0, 0.5, 'inpaint'), 64, 64, 16);
    expect(grid).toEqual(Array.from({ length: 16 }, (_, i) => i % 4 === 1 || i % 4 === 2));
    const outpaint = rectangleMask(64, 64, 0.5, 0.5, 'outpaint');
    const g2 = maskToGrid(outpaint, 64, 64, 16);
    expect(g2.filter(Boolean).length).toBe(12);
    expect([g2[5], g2[6], g2[9], g2[10]]).toEqual([false, false, false, false]);
  });
});

describe('mask images', () => {
  it('regenerate the cells whose pixels are mostly brighter than half', () => {
    // 32×32, grid 16: the right half white, one top-left pixel white (a cell needs more than half)
    const data = new Uint8Array(32 * 32 * 3);
    for (let y = 0; y < 32; y++) for (let x = 16; x < 32; x++) data.fill(255, (y * 32 + x) * 3, (y * 32 + x + 1) * 3);
    data.fill(200, 0, 3);
    expect(maskCells({ width: 32, height: 32, data }, 16)).toBe('0101');
    expect(cellsToGrid('0101')).toEqual([false, true, false, true]);
  });
});

describe('keeping the input outside the regenerated cells', () => {
  const filled = (width: number, height: number, f: (x: number, y: number, c: number) => number): RgbImage => {
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = f(x, y, c);
    return { width, height, data };
  };

  it('copies every kept cell from the input and keeps the decoded pixels of the regenerated ones, on a hard seam', () => {
    // 6×4 at grid factor 2: 3 columns × 2 rows of cells; the middle column and the bottom-left cell regenerated
    const input = filled(6, 4, (x, y, c) => 10 * y + x + 100 * c);
    const decoded = filled(6, 4, (x, y, c) => 255 - (10 * y + x + 50 * c));
    const before = Uint8Array.from(decoded.data);
    const regenerate = [false, true, false, true, true, false];
    const out = keepUnregenerated(decoded, input, regenerate, 2);
    expect([out.width, out.height]).toEqual([6, 4]);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 6; x++) {
        const cell = Math.floor(y / 2) * 3 + Math.floor(x / 2);
        const from = regenerate[cell] ? decoded : input;
        const o = (y * 6 + x) * 3;
        expect([x, y, ...out.data.subarray(o, o + 3)]).toEqual([x, y, ...from.data.subarray(o, o + 3)]);
      }
    }
    // pure: the decoded image is not written to
    expect(decoded.data).toEqual(before);
    expect(out.data).not.toBe(decoded.data);
  });

  it('refuses images of different sizes and a cell count that is not the grid of the image', () => {
    const a = filled(4, 4, () => 0);
    expect(() =>
      keepUnregenerated(
        filled(4, 2, () => 0),
        a,
        [true, true],
        2,
      ),
    ).toThrow('decoded 4×2');
    expect(() => keepUnregenerated(a, a, [true, false, true], 2)).toThrow('3 cells');
    expect(() => keepUnregenerated(a, a, [true], 3)).toThrow('grid factor of 3');
  });
});

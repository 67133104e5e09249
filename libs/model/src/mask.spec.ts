import { cellsToGrid, maskCells, maskToGrid, rectangleMask } from './mask';

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

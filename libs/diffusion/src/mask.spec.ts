import { maskToGrid, rectangleMask } from './mask';

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

import { effectiveGuidance, guidanceWeights } from './guidance';
import { combineGuidance } from './sampling';

describe('guidance', () => {
  it('combines text guidance as (1 + w)·cond − w·uncond', () => {
    const cond = Float32Array.of(1, 2, 3);
    const uncond = Float32Array.of(0.5, 2, 4);
    const z = combineGuidance([cond, uncond], guidanceWeights({ kind: 'text', scale: 4 }));
    expect(Array.from(z)).toEqual([5 * 1 - 4 * 0.5, 5 * 2 - 4 * 2, 5 * 3 - 4 * 4]);
  });

  it('combines dual guidance as c + a(c − u_text) + b(c − u_img)', () => {
    const c = Float32Array.of(2, -1);
    const ut = Float32Array.of(1, 0);
    const ui = Float32Array.of(0.5, -3);
    const [a, b] = [2.5, 4];
    const z = combineGuidance([c, ut, ui], guidanceWeights({ kind: 'dual', text: a, image: b }));
    for (let j = 0; j < 2; j++) expect(z[j]).toBeCloseTo(c[j]! + a * (c[j]! - ut[j]!) + b * (c[j]! - ui[j]!), 5);
  });

  it('drops guidance that contributes nothing', () => {
    expect(effectiveGuidance({ kind: 'text', scale: 0 })).toEqual({ kind: 'none' });
    expect(effectiveGuidance({ kind: 'dual', text: 0, image: 0 })).toEqual({ kind: 'none' });
    expect(effectiveGuidance({ kind: 'dual', text: 0, image: 1 }).kind).toBe('dual');
    expect(guidanceWeights({ kind: 'none' })).toEqual([1]);
  });
});

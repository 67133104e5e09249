import { combineGuidance, guidanceWeights } from './sampler';

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

  // that a scale of 0 is resolved to none before the engine sees it: @dimoo/contracts resolve.spec.ts
  it('runs one row without guidance', () => {
    expect(guidanceWeights({ kind: 'none' })).toEqual([1]);
  });
});

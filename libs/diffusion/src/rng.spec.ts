import fc from 'fast-check';
import { gumbel, philox4x32, RngStream, seedKey, uniforms, wordToUniform } from './rng';

const hex = (w: Uint32Array) => Array.from(w, (x) => x.toString(16).padStart(8, '0'));

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toEqual([
      '408f276d',
      '41c83b0e',
      'a20bc7c6',
      '6d5451fd',
    ]);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });

  it('gives uniforms in (0, 1) that are exact float32 values', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (w) => {
        const u = wordToUniform(w);
        return u > 0 && u < 1 && Math.fround(u) === u && Number.isFinite(gumbel(u));
      }),
    );
  });

  it('depends only on seed, step, stream and index (prefixes agree, streams differ)', () => {
    const a = uniforms(42, 3, RngStream.TokenUniform, 10);
    const b = uniforms(42, 3, RngStream.TokenUniform, 64);
    expect(Array.from(b.subarray(0, 10))).toEqual(Array.from(a));
    expect(Array.from(uniforms(42, 3, RngStream.RemaskGumbel, 10))).not.toEqual(Array.from(a));
    expect(Array.from(uniforms(43, 3, RngStream.TokenUniform, 10))).not.toEqual(Array.from(a));
    expect(Array.from(uniforms(42, 4, RngStream.TokenUniform, 10))).not.toEqual(Array.from(a));
  });

  it('is roughly uniform', () => {
    const u = uniforms(7, 0, RngStream.TokenUniform, 20000);
    const mean = u.reduce((s, x) => s + x, 0) / u.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
  });

  it('rejects seeds outside [0, 2^53)', () => {
    expect(() => seedKey(-1)).toThrow(RangeError);
    expect(() => seedKey(1.5)).toThrow(RangeError);
    expect(seedKey(2 ** 32 + 5)).toEqual([5, 1]);
  });
});

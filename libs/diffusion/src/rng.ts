/**
 * Counter-based random numbers (docs/model-interface.md §6): Philox4x32-10 keyed by the job's seed.
 * A job's numbers depend only on (seed, step, stream, index), so batching never changes them.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

export const RngStream = { TokenUniform: 0, RemaskGumbel: 1, RandomRemask: 2 } as const;
export type RngStream = (typeof RngStream)[keyof typeof RngStream];

/** High 32 bits of the 64-bit product of two uint32 (JS numbers lose bits past 2^53, so split in 16-bit halves). */
function mulHi(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox4x32-10 block: four uint32 words for counter (c0..c3) and key (k0, k1). */
export function philox4x32(c: readonly [number, number, number, number], key: readonly [number, number]): Uint32Array {
  let [c0, c1, c2, c3] = c;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulHi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulHi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  return Uint32Array.of(c0, c1, c2, c3);
}

export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer in [0, 2^53): ${seed}`);
  return [(seed % 0x100000000) >>> 0, Math.floor(seed / 0x100000000) >>> 0];
}

/** Uniform in (0, 1) on the grid (2k + 1) / 2^24: exactly representable in float32, so host and graph agree. */
export function wordToUniform(word: number): number {
  return ((word >>> 9) + 0.5) / 8388608;
}

/** `count` uniforms for (seed, step, stream), index i from counter (⌊i/4⌋, step, stream, 0), word i mod 4. */
export function uniforms(seed: number, step: number, stream: RngStream, count: number): Float64Array {
  const key = seedKey(seed);
  const out = new Float64Array(count);
  for (let block = 0; block * 4 < count; block++) {
    const words = philox4x32([block, step >>> 0, stream, 0], key);
    for (let lane = 0; lane < 4 && block * 4 + lane < count; lane++) {
      out[block * 4 + lane] = wordToUniform(words[lane] ?? 0);
    }
  }
  return out;
}

/** Standard Gumbel from a uniform, in float64. */
export function gumbel(u: number): number {
  return -Math.log(-Math.log(u));
}

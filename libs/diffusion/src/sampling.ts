/**
 * The token-sampling rule that the `denoise` and `sample_head` graphs embed (docs/model-interface.md §3), written out
 * in float32 arithmetic. The engine uses the graphs; this definition is what the tests hold them to.
 */

const f = Math.fround;

export interface Sample {
  /** index into the vocabulary slice */
  index: number;
  /** softmax(z) at the sampled index: the confidence used by remasking (temperature-free) */
  prob: number;
}

/** z = Σ_g w_g · logits_g over one position's slice (float32, branches in order). */
export function combineGuidance(branchLogits: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const first = branchLogits[0];
  if (!first) throw new Error('no branch logits');
  const z = new Float32Array(first.length);
  branchLogits.forEach((logits, g) => {
    const w = f(weights[g] ?? 0);
    for (let j = 0; j < z.length; j++) z[j] = f(z[j]! + f(w * logits[j]!));
  });
  return z;
}

/**
 * Draw from softmax(z/τ) by inverse CDF with one uniform (argmax, first on ties, at τ = 0). The guided logits are
 * float32; the CDF and the confidence are computed in float64 and the confidence rounded to float32, so that the
 * graphs and this definition agree whatever order a kernel sums in.
 */
export function sampleFromLogits(z: Float32Array, temperature: number, u: number): Sample {
  let max = -Infinity;
  let argmax = 0;
  for (let j = 0; j < z.length; j++) {
    if (z[j]! > max) {
      max = z[j]!;
      argmax = j;
    }
  }
  let index = argmax;
  if (temperature > 0) {
    const tau = f(temperature);
    let total = 0;
    const cumulative = new Float64Array(z.length);
    for (let j = 0; j < z.length; j++) cumulative[j] = total += Math.exp(f(z[j]! - max) / tau);
    const threshold = f(u) * total;
    let count = 0;
    for (let j = 0; j < z.length; j++) if (cumulative[j]! < threshold) count++;
    index = Math.min(count, z.length - 1);
  }
  let sum = 0;
  for (let j = 0; j < z.length; j++) sum += Math.exp(f(z[j]! - max));
  return { index, prob: f(Math.exp(f(z[index]! - max)) / sum) };
}

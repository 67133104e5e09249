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

/** Draw from softmax(z/τ) by inverse CDF with one uniform (argmax, first on ties, at τ = 0). */
export function sampleFromLogits(z: Float32Array, temperature: number, u: number): Sample {
  let max = -Infinity;
  let argmax = 0;
  for (let j = 0; j < z.length; j++) {
    if (z[j]! > max) {
      max = z[j]!;
      argmax = j;
    }
  }
  let sum = 0;
  for (let j = 0; j < z.length; j++) sum = f(sum + f(Math.exp(f(z[j]! - max))));
  let index = argmax;
  if (temperature > 0) {
    const tau = f(temperature);
    let total = 0;
    const cumulative = new Float32Array(z.length);
    for (let j = 0; j < z.length; j++) {
      total = f(total + f(Math.exp(f(f(z[j]! - max) / tau))));
      cumulative[j] = total;
    }
    const threshold = f(f(u) * total);
    let count = 0;
    for (let j = 0; j < z.length; j++) if (cumulative[j]! < threshold) count++;
    index = Math.min(count, z.length - 1);
  }
  return { index, prob: f(f(Math.exp(f(z[index]! - max))) / sum) };
}

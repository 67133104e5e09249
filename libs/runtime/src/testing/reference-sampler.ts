/**
 * An independent reference sampler for the parity tests, written straight from the spec (§2.1–2.3, §2.6, §3):
 * one sequence at a time, one model forward per branch reading the vocabulary slice's logits at every position, and
 * for ML-Cache a plain K/V + logit cache per branch. It shares no code with libs/diffusion and uses no sampling rule embedded in a graph:
 * its random numbers come from its own Philox (BigInt arithmetic), its schedule, guidance, sampling and remasking are
 * its own. Rows are padded to the model's length bucket, as any call to the model is.
 */
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import * as ort from 'onnxruntime-node';
import { kvNames } from '../onnx-model';

const MASK32 = 0xffffffffn;

function philoxBlock(counter: bigint[], key: bigint[]): bigint[] {
  let [c0, c1, c2, c3] = counter as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key as [bigint, bigint];
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32n) ^ c3 ^ k1) & MASK32, p0 & MASK32];
    k0 = (k0 + 0x9e3779b9n) & MASK32;
    k1 = (k1 + 0xbb67ae85n) & MASK32;
  }
  return [c0, c1, c2, c3];
}

/** u(seed, step, stream, index) per docs/model-interface.md §6. */
export function referenceUniform(seed: number, step: number, stream: number, index: number): number {
  const s = BigInt(seed);
  const word = philoxBlock([BigInt(index >> 2), BigInt(step), BigInt(stream), 0n], [s & MASK32, s >> 32n])[index & 3]!;
  return (Number(word >> 9n) + 0.5) / 2 ** 23;
}

const f = Math.fround;

export interface RefCache {
  cacheRatio: number;
  warmupRatio: number;
  refreshInterval: number;
}

export interface RefRun {
  /** each branch's full row: prefix ++ region ++ suffix */
  branches: { prefix: number[]; suffix: number[] }[];
  region: number[];
  /** indices into region that may be written */
  targets: number[];
  weights: number[];
  steps: number;
  temperature: number;
  seed: number;
  cache: RefCache | null;
  sampler: 'maskgit' | { blockLength: number };
  vocab: [number, number];
}

interface BranchState {
  slice: Float32Array[]; // per position, slice logits
  kv: Record<string, ort.Tensor> | null; // the cache as the partial graph takes it: past_key_0, past_value_0, …
  rowMax: number[];
}

export class ReferenceSampler {
  /** forwards run, for the tests' bookkeeping */
  forwards = 0;

  private constructor(
    private readonly m: ModelManifest,
    private readonly denoiseGraph: ort.InferenceSession,
    private readonly partialGraph: ort.InferenceSession,
  ) {}

  static async open(dir: string, m: ModelManifest): Promise<ReferenceSampler> {
    const open = (file: string) => ort.InferenceSession.create(join(dir, file));
    return new ReferenceSampler(m, await open(m.graphs.denoise), await open(m.graphs.denoise_partial));
  }

  private padded(len: number): number {
    return Math.ceil(len / this.m.lengthBucket) * this.m.lengthBucket;
  }

  private rowTensors(row: number[]) {
    const L = this.padded(row.length);
    const ids = new BigInt64Array(L);
    const pos = new BigInt64Array(L);
    const att = new BigInt64Array(L);
    row.forEach((t, i) => {
      ids[i] = BigInt(t);
      pos[i] = BigInt(i);
      att[i] = 1n;
    });
    return {
      L,
      input_ids: new ort.Tensor('int64', ids, [1, L]),
      position_ids: new ort.Tensor('int64', pos, [1, L]),
      attention_mask: new ort.Tensor('int64', att, [1, L]),
    };
  }

  /**
   * Full forward of one row: slice logits at every real position, and K/V when caching. The logits are the network's
   * own outputs at those positions (`denoise`'s per-branch `target_logits`, with every position as a target), so the
   * reference and the engine read bit-identical logits; the conformance test holds them to `forward_logits`. Nothing of
   * the graph's sampling rule is used.
   */
  private async full(row: number[], vocab: [number, number], withKv: boolean): Promise<BranchState> {
    this.forwards++;
    const t = this.rowTensors(row);
    const n = row.length;
    const out = await this.denoiseGraph.run(
      {
        input_ids: t.input_ids,
        position_ids: t.position_ids,
        attention_mask: t.attention_mask,
        target_positions: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
          [1, n],
        ),
        guidance_weights: new ort.Tensor('float32', Float32Array.of(1), [1, 1]),
        vocab_range: new ort.Tensor('int64', BigInt64Array.from(vocab.map(BigInt)), [2]),
        temperature: new ort.Tensor('float32', Float32Array.of(0), [1]),
        uniforms: new ort.Tensor('float32', new Float32Array(n).fill(0.5), [1, n]),
      },
      withKv ? ['target_logits', ...kvNames('present', this.m.architecture.nLayers)] : ['target_logits'],
    );
    const K = vocab[1] - vocab[0];
    const logits = out['target_logits']!.data as Float32Array;
    const slice = row.map((_, i) => logits.slice(i * K, (i + 1) * K));
    const kv = withKv ? this.asPast(out) : null;
    return { slice, kv, rowMax: slice.map((s) => s.reduce((a, b) => Math.max(a, b), -Infinity)) };
  }

  /** A full step's present_* outputs, as the partial step's past_* inputs (copies: partial steps update them). */
  private asPast(out: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
    const past = kvNames('past', this.m.architecture.nLayers);
    return Object.fromEntries(
      kvNames('present', this.m.architecture.nLayers).map((name, j) => {
        const t = out[name] as ort.Tensor;
        return [past[j]!, new ort.Tensor('float32', Float32Array.from(t.data as Float32Array), t.dims)];
      }),
    );
  }

  /** Recomputes positions `sel` of a row against its cache (spec §3), updating the cache in place. */
  private async partial(row: number[], state: BranchState, sel: number[], vocab: [number, number]): Promise<void> {
    const { nLayers, nHeads, dModel } = this.m.architecture;
    const hd = dModel / nHeads;
    const t = this.rowTensors(row);
    const S = sel.length;
    const out = await this.partialGraph.run({
      input_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(sel, (i) => BigInt(row[i]!)),
        [1, S],
      ),
      query_index: new ort.Tensor('int64', BigInt64Array.from(sel, BigInt), [1, S]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(sel, BigInt), [1, S]),
      attention_mask: t.attention_mask,
      vocab_range: new ort.Tensor('int64', BigInt64Array.from(vocab.map(BigInt)), [2]),
      ...state.kv!,
    });
    const K = vocab[1] - vocab[0];
    const logits = out['logits']!.data as Float32Array;
    const newKv = out['new_kv']!.data as Float32Array; // [nLayers, 2, 1, nHeads, S, headDim]
    const rowMax = out['row_max']!.data as Float32Array;
    const planes = kvNames('past', this.m.architecture.nLayers).map((name) => state.kv![name]!.data as Float32Array); // [1, nHeads, L, headDim]
    sel.forEach((i, s) => {
      state.slice[i] = logits.slice(s * K, (s + 1) * K);
      state.rowMax[i] = rowMax[s]!;
      for (let p = 0; p < nLayers * 2; p++) {
        for (let h = 0; h < nHeads; h++) {
          const src = ((p * nHeads + h) * S + s) * hd;
          planes[p]!.set(newKv.subarray(src, src + hd), (h * t.L + i) * hd);
        }
      }
    });
  }

  async run(job: RefRun): Promise<number[]> {
    const x = [...job.region];
    const mask = this.m.tokens.mask;
    const rowOf = (g: number) => [...job.branches[g]!.prefix, ...x, ...job.branches[g]!.suffix];
    const states: BranchState[] = [];
    const T = job.steps;
    const N0 = job.targets.filter((c) => x[c] === mask).length;
    let quotas: number[] = [];
    for (let s = 0; s < T; s++) {
      const masked = job.targets.map((c, n) => [c, n] as const).filter(([c]) => x[c] === mask);
      if (masked.length === 0) break;

      // model: every branch's slice logits at every position (full step, or cached partial step)
      const warm = job.cache ? Math.floor(T * job.cache.warmupRatio) : 0;
      const isFull = !job.cache || s <= warm || (s - warm) % job.cache.refreshInterval === 0 || states.length === 0;
      for (let g = 0; g < job.branches.length; g++) {
        const row = rowOf(g);
        if (isFull) states[g] = await this.full(row, job.vocab, job.cache !== null);
        else {
          const st = states[g]!;
          const sorted = [...st.rowMax].sort((a, b) => a - b);
          const q = (1 - job.cache!.cacheRatio) * (sorted.length - 1);
          const theta = sorted[Math.floor(q)]! + (sorted[Math.min(Math.floor(q) + 1, sorted.length - 1)]! - sorted[Math.floor(q)]!) * (q - Math.floor(q));
          await this.partial(
            row,
            st,
            st.rowMax.flatMap((v, i) => (v <= theta ? [i] : [])),
            job.vocab,
          );
        }
      }

      // guided logits, sampled token and its confidence at each masked target
      const drawn = masked.map(([c, n]) => {
        const z = new Float32Array(job.vocab[1] - job.vocab[0]);
        job.branches.forEach((b, g) => {
          const l = states[g]!.slice[b.prefix.length + c]!;
          for (let j = 0; j < z.length; j++) z[j] = f(z[j]! + f(f(job.weights[g]!) * l[j]!));
        });
        // guided logits in float32; CDF and confidence in float64 (docs/model-interface.md §3)
        const m = Math.max(...z);
        const gap = Array.from(z, (v) => f(v - m));
        let k = z.indexOf(m);
        if (job.temperature > 0) {
          const cdf: number[] = [];
          let acc = 0;
          for (const g of gap) cdf.push((acc += Math.exp(g / f(job.temperature))));
          const target = f(referenceUniform(job.seed, s, 0, n)) * acc;
          k = Math.min(cdf.filter((cv) => cv < target).length, z.length - 1);
        }
        const denom = gap.reduce((a, g) => a + Math.exp(g), 0);
        return { c, n, token: job.vocab[0] + k, p: f(Math.exp(gap[k]!) / denom) };
      });

      if (job.sampler === 'maskgit') {
        // commit everything, then re-mask the keep_n lowest log p + τ·Gumbel (strict <)
        for (const d of drawn) x[d.c] = d.token;
        const keep = s === T - 1 ? 0 : Math.max(1, Math.floor(f(N0 * f(Math.cos(f(f(Math.PI / 2) * f((s + 1) / T)))))));
        const score = drawn.map((d) => Math.log(Math.max(d.p, 1e-20)) + job.temperature * -Math.log(-Math.log(referenceUniform(job.seed, s, 1, d.n))));
        const cut = [...score].sort((a, b) => a - b)[Math.min(keep, drawn.length - 1)]!;
        drawn.forEach((d, i) => {
          if (score[i]! < cut) x[d.c] = mask;
        });
      } else {
        // LLaDA: block by block, commit the quota most confident masked targets of the current block
        const bl = job.sampler.blockLength;
        const spb = T / (job.targets.length / bl);
        const block = Math.floor(s / spb);
        const inBlock = drawn.filter((d) => d.n >= block * bl && d.n < (block + 1) * bl);
        if (s % spb === 0) quotas = Array.from({ length: spb }, (_, i) => Math.floor(inBlock.length / spb) + (i < inBlock.length % spb ? 1 : 0));
        const chosen = [...inBlock].sort((a, b) => b.p - a.p || a.n - b.n).slice(0, quotas[s % spb]);
        for (const d of chosen) x[d.c] = d.token;
      }
    }
    return x;
  }
}

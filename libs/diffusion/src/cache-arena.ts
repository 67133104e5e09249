/**
 * ML-Cache state of one batch (spec §3, docs/model-interface.md §5): for every row (sequence × guidance branch) the
 * K (after RoPE) and V of every layer, the slice logits at the targets, and the last max-logit of every position — laid out
 * exactly as the graphs take and return them (per layer and kind [R, nHeads, L, headDim], [R, N, K], [R, L]). A full
 * step's outputs become the arena without a copy; partial steps read the planes in place and scatter their fresh rows
 * into them; rows are gathered into a new arena only when the batch's membership changes.
 */
import type { KvPlanes, ModelShape } from './model';

export class CacheArena {
  constructor(
    readonly shape: ModelShape,
    /** sequence ids, in row order (row = index · branches + branch) */
    readonly members: readonly string[],
    readonly branches: number,
    readonly length: number,
    readonly targets: number,
    readonly vocabSize: number,
    readonly kv: KvPlanes,
    readonly logits: Float32Array,
    readonly rowMax: Float32Array,
  ) {
    const R = members.length * branches;
    const plane = R * length * shape.dModel;
    if (kv.length !== 2 * shape.nLayers || kv.some((p) => p.length !== plane) || logits.length !== R * targets * vocabSize || rowMax.length !== R * length) {
      throw new Error('cache arena buffers do not match their shape');
    }
  }

  get rows(): number {
    return this.members.length * this.branches;
  }

  get bytes(): number {
    return (this.kv.length * this.kv[0]!.length + this.logits.length + this.rowMax.length) * 4;
  }

  /** A new arena holding the given rows (each: source arena and its sequence index there), in order. */
  static gather(ids: string[], sources: { arena: CacheArena; index: number }[]): CacheArena {
    const a0 = sources[0]!.arena;
    const G = a0.branches;
    const L = a0.length;
    const NK = a0.targets * a0.vocabSize;
    const R = ids.length * G;
    const rowPlane = L * a0.shape.dModel; // one row of one plane: [nHeads, L, headDim], contiguous
    const planes = a0.kv.map(() => new Float32Array(R * rowPlane));
    const logits = new Float32Array(R * NK);
    const rowMax = new Float32Array(R * L);
    sources.forEach(({ arena, index }, b) => {
      for (let g = 0; g < G; g++) {
        const from = index * G + g;
        const to = b * G + g;
        planes.forEach((p, j) => p.set(arena.kv[j]!.subarray(from * rowPlane, (from + 1) * rowPlane), to * rowPlane));
        logits.set(arena.logits.subarray(from * NK, (from + 1) * NK), to * NK);
        rowMax.set(arena.rowMax.subarray(from * L, (from + 1) * L), to * L);
      }
    });
    return new CacheArena(a0.shape, ids, G, L, a0.targets, a0.vocabSize, planes, logits, rowMax);
  }

  /**
   * Writes a partial step's results for row `r`: for each recomputed position `positions[s]`, its fresh K/V (newKv
   * [nLayers, 2, R, nHeads, S, headDim], entry `s`), its max-logit, and for targets (`targetOf[pos]` ≥ 0) its slice logits.
   */
  scatterRow(
    r: number,
    positions: readonly number[],
    targetOf: Int32Array,
    newKv: Float32Array,
    queries: number,
    logits: Float32Array,
    rowMax: Float32Array,
  ): void {
    const { nHeads, dModel } = this.shape;
    const hd = dModel / nHeads;
    const R = this.rows;
    const L = this.length;
    // plain loops, no view objects or closures: this runs for every recomputed position of every layer and head
    for (let p = 0; p < this.kv.length; p++) {
      const plane = this.kv[p]!;
      for (let h = 0; h < nHeads; h++) {
        const src = ((p * R + r) * nHeads + h) * queries * hd;
        const dst = (r * nHeads + h) * L * hd;
        for (let s = 0; s < positions.length; s++) {
          const from = src + s * hd;
          const to = dst + positions[s]! * hd;
          for (let e = 0; e < hd; e++) plane[to + e] = newKv[from + e]!;
        }
      }
    }
    const K = this.vocabSize;
    positions.forEach((pos, s) => {
      this.rowMax[r * L + pos] = rowMax[r * queries + s]!;
      const n = targetOf[pos]!;
      if (n >= 0) this.logits.set(logits.subarray((r * queries + s) * K, (r * queries + s + 1) * K), (r * this.targets + n) * K);
    });
  }
}

/**
 * ML-Cache state of one batch (spec §3, docs/model-interface.md §5): for every row (sequence × guidance branch) the
 * K (after RoPE) and V of every layer, the slice logits at the targets, and the last max-logit of every position — laid out
 * exactly as the graphs take and return them ([nLayers, 2, R, L, dModel], [R, N, K], [R, L]). A full step's outputs
 * become the arena without a copy; partial steps scatter their fresh rows into it; rows are gathered into a new arena
 * only when the batch's membership changes.
 */
import type { ModelShape } from './model';

export class CacheArena {
  constructor(
    readonly shape: ModelShape,
    /** sequence ids, in row order (row = index · branches + branch) */
    readonly members: readonly string[],
    readonly branches: number,
    readonly length: number,
    readonly targets: number,
    readonly vocabSize: number,
    readonly kv: Float32Array,
    readonly logits: Float32Array,
    readonly rowMax: Float32Array,
  ) {
    const R = members.length * branches;
    const expect = shape.nLayers * 2 * R * length * shape.dModel;
    if (kv.length !== expect || logits.length !== R * targets * vocabSize || rowMax.length !== R * length) {
      throw new Error('cache arena buffers do not match their shape');
    }
  }

  get rows(): number {
    return this.members.length * this.branches;
  }

  get bytes(): number {
    return (this.kv.length + this.logits.length + this.rowMax.length) * 4;
  }

  /** A new arena holding the given rows (each: source arena and its sequence index there), in order. */
  static gather(ids: string[], sources: { arena: CacheArena; index: number }[]): CacheArena {
    const a0 = sources[0]!.arena;
    const { nLayers, dModel } = a0.shape;
    const G = a0.branches;
    const L = a0.length;
    const NK = a0.targets * a0.vocabSize;
    const R = ids.length * G;
    const kv = new Float32Array(nLayers * 2 * R * L * dModel);
    const logits = new Float32Array(R * NK);
    const rowMax = new Float32Array(R * L);
    const plane = L * dModel;
    sources.forEach(({ arena, index }, b) => {
      for (let g = 0; g < G; g++) {
        const from = index * G + g;
        const to = b * G + g;
        for (let p = 0; p < nLayers * 2; p++) {
          kv.set(arena.kv.subarray((p * arena.rows + from) * plane, (p * arena.rows + from + 1) * plane), (p * R + to) * plane);
        }
        logits.set(arena.logits.subarray(from * NK, (from + 1) * NK), to * NK);
        rowMax.set(arena.rowMax.subarray(from * L, (from + 1) * L), to * L);
      }
    });
    return new CacheArena(a0.shape, ids, G, L, a0.targets, a0.vocabSize, kv, logits, rowMax);
  }

  /** Writes a partial step's fresh K/V row, max-logit and (for targets) slice logits for position `pos` of row `r`. */
  scatter(r: number, pos: number, target: number | undefined, newKv: Float32Array, queries: number, s: number, logits: Float32Array, rowMax: number): void {
    const { nLayers, dModel } = this.shape;
    const R = this.rows;
    for (let p = 0; p < nLayers * 2; p++) {
      const src = ((p * R + r) * queries + s) * dModel;
      this.kv.set(newKv.subarray(src, src + dModel), ((p * R + r) * this.length + pos) * dModel);
    }
    this.rowMax[r * this.length + pos] = rowMax;
    if (target !== undefined) {
      const K = this.vocabSize;
      this.logits.set(logits.subarray((r * queries + s) * K, (r * queries + s + 1) * K), (r * this.targets + target) * K);
    }
  }
}

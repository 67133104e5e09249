/**
 * The CPU path's ML-Cache state of a group of rows (spec §3, docs/model-interface.md §5), behind the engine's opaque
 * `CacheHandle`: for every row (sequence × guidance branch) the K (after RoPE) and V of every layer, the slice logits at
 * the targets, and the last max-logit of every position — laid out exactly as the graphs take and return them (per
 * layer and kind [R, nHeads, L, headDim], [R, N, K], [R, L]). A full step's outputs become the cache without a copy;
 * partial steps read the planes in place and scatter their fresh rows into them; rows are gathered into a new cache
 * only when the engine's group changes.
 */
import type { CacheHandle } from '@dimoo/diffusion';

export interface KvShape {
  nLayers: number;
  nHeads: number;
  dModel: number;
}

/** Per row of a cache: position → target index (−1 elsewhere); fixed for a row, so each is built once, on first use. */
export class TargetMaps {
  private readonly maps: (Int32Array | undefined)[] = [];

  constructor(
    /** [R, N] each row's target positions */
    private readonly targetPositions: Int32Array,
    private readonly targets: number,
    private readonly length: number,
  ) {}

  of(r: number): Int32Array {
    let map = this.maps[r];
    if (!map) {
      map = new Int32Array(this.length).fill(-1);
      for (let n = 0; n < this.targets; n++) map[this.targetPositions[r * this.targets + n]!] = n;
      this.maps[r] = map;
    }
    return map;
  }
}

/**
 * Whether a cache's parts have the sizes its shape implies (host and device caches alike): 2·nLayers K/V planes of
 * [R, nHeads, L, headDim] elements, target logits [R, N, K], and the host's row max [R, L] and target positions [R, N].
 */
export function cacheSizesMatch(
  shape: KvShape,
  dims: { rows: number; length: number; targets: number; vocabSize: number },
  planeSizes: readonly number[],
  logitsSize: number,
  rowMax: Float32Array,
  targetPositions: Int32Array,
): boolean {
  const { rows: R, length: L, targets: N, vocabSize: K } = dims;
  return (
    planeSizes.length === 2 * shape.nLayers &&
    planeSizes.every((n) => n === R * L * shape.dModel) &&
    logitsSize === R * N * K &&
    rowMax.length === R * L &&
    targetPositions.length === R * N
  );
}

export class HostKvCache implements CacheHandle {
  private readonly targetMaps: TargetMaps;

  constructor(
    readonly shape: KvShape,
    readonly sequences: number,
    readonly branches: number,
    readonly length: number,
    readonly targets: number,
    readonly vocabSize: number,
    /** key 0, value 0, key 1, …: each [R, nHeads, L, headDim] */
    readonly kv: Float32Array[],
    readonly logits: Float32Array,
    readonly rowMax: Float32Array,
    /** [R, N] each row's target positions */
    readonly targetPositions: Int32Array,
  ) {
    const sizes = kv.map((p) => p.length);
    if (!cacheSizesMatch(shape, { rows: this.rows, length, targets, vocabSize }, sizes, logits.length, rowMax, targetPositions)) {
      throw new Error('cache buffers do not match their shape');
    }
    this.targetMaps = new TargetMaps(targetPositions, targets, length);
  }

  get rows(): number {
    return this.sequences * this.branches;
  }

  get bytes(): number {
    return (this.kv.length * this.kv[0]!.length + this.logits.length + this.rowMax.length) * 4;
  }

  /** A new cache holding the given sequences' rows (each: source cache and its sequence index there), in order. */
  static gather(parts: readonly { cache: HostKvCache; sequence: number }[]): HostKvCache {
    const a0 = parts[0]!.cache;
    const G = a0.branches;
    const L = a0.length;
    const N = a0.targets;
    const NK = N * a0.vocabSize;
    const R = parts.length * G;
    const rowPlane = L * a0.shape.dModel; // one row of one plane: [nHeads, L, headDim], contiguous
    const planes = a0.kv.map(() => new Float32Array(R * rowPlane));
    const logits = new Float32Array(R * NK);
    const rowMax = new Float32Array(R * L);
    const targetPositions = new Int32Array(R * N);
    parts.forEach(({ cache, sequence }, b) => {
      for (let g = 0; g < G; g++) {
        const from = sequence * G + g;
        const to = b * G + g;
        planes.forEach((p, j) => p.set(cache.kv[j]!.subarray(from * rowPlane, (from + 1) * rowPlane), to * rowPlane));
        logits.set(cache.logits.subarray(from * NK, (from + 1) * NK), to * NK);
        rowMax.set(cache.rowMax.subarray(from * L, (from + 1) * L), to * L);
        targetPositions.set(cache.targetPositions.subarray(from * N, (from + 1) * N), to * N);
      }
    });
    return new HostKvCache(a0.shape, parts.length, G, L, N, a0.vocabSize, planes, logits, rowMax, targetPositions);
  }

  /**
   * Writes a partial step's results: for each row's recomputed positions (`queryIndex`, its first `queryCounts[r]`
   * entries), their fresh K/V (newKv [nLayers, 2, R, nHeads, S, headDim]), max-logit, and for targets their slice logits.
   */
  scatter(queryIndex: Int32Array, queryCounts: Int32Array, queries: number, newKv: Float32Array, logits: Float32Array, rowMax: Float32Array): void {
    for (let r = 0; r < this.rows; r++) this.scatterRow(r, queryIndex.subarray(r * queries, r * queries + queryCounts[r]!), newKv, queries, logits, rowMax);
  }

  private scatterRow(r: number, positions: Int32Array, newKv: Float32Array, queries: number, logits: Float32Array, rowMax: Float32Array): void {
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
    const targetOf = this.targetMaps.of(r);
    positions.forEach((pos, s) => {
      this.rowMax[r * L + pos] = rowMax[r * queries + s]!;
      const n = targetOf[pos]!;
      if (n >= 0) this.logits.set(logits.subarray((r * queries + s) * K, (r * queries + s + 1) * K), (r * this.targets + n) * K);
    });
  }
}

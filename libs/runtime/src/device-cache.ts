/**
 * The ML-Cache state of a group of rows kept on the accelerator (WebGPU), behind the engine's opaque `CacheHandle`:
 * per layer the K (after RoPE) and V planes [R, nHeads, L, headDim] and the target logits [R, N, K] are onnxruntime
 * tensors in device buffers ('gpu-buffer'); only each position's max logit (`rowMax` [R, L], the cache policy's input)
 * and the target positions live on the host. A full step's device outputs become the cache; a partial step
 * (`denoise_resident`) reads it in place and returns the updated planes, which replace these; the engine's regrouping
 * runs `cache_gather` / `cache_concat` on the device (docs/model-interface.md §4.7).
 *
 * One cache per call group (a batch arena), not per sequence: a group's partial step takes one [R, …] tensor per
 * plane, so per-sequence buffers would be concatenated on the device before every step and split after it (a copy of
 * the whole K/V per step); the group's arena is copied only when the group's membership changes.
 *
 * Device buffers are not garbage collected in time (a finalizer runs when V8 gets to it; the memory is the GPU's), so
 * every tensor is counted in a `DeviceLedger` and disposed explicitly: when a partial step replaces it, and when the
 * engine releases a cache no sequence holds any more (`DenoiseModel.releaseCache`).
 */
import type { CacheHandle } from '@dimoo/diffusion';
import type * as ort from 'onnxruntime-node';
import type { KvShape } from './host-cache';
import { cacheSizesMatch, TargetMaps } from './host-cache';

/** Bytes a tensor's elements take (the graphs' float32 and float16 planes). */
export function elementBytes(t: ort.Tensor): number {
  return t.size * (t.type === 'float16' ? 2 : t.type === 'float64' || t.type === 'int64' ? 8 : 4);
}

/** The device tensors a model holds: each one counted in when a run returns it and out when it is disposed. */
export class DeviceLedger {
  private readonly live = new Set<ort.Tensor>();
  private held = 0;

  /** device tensors held now */
  get tensors(): number {
    return this.live.size;
  }

  /** device bytes held now */
  get bytes(): number {
    return this.held;
  }

  hold(tensors: readonly ort.Tensor[]): void {
    for (const t of tensors) {
      if (t.location !== 'gpu-buffer') throw new Error(`expected a device tensor, got one in ${t.location} memory`);
      if (this.live.has(t)) continue;
      this.live.add(t);
      this.held += elementBytes(t);
    }
  }

  free(tensors: readonly ort.Tensor[]): void {
    for (const t of tensors) {
      if (!this.live.delete(t)) continue;
      this.held -= elementBytes(t);
      t.dispose();
    }
  }

  /** Disposes everything still held (the model is being released). */
  freeAll(): void {
    this.free([...this.live]);
  }
}

export interface DeviceState {
  /** key 0, value 0, key 1, …: each [R, nHeads, L, headDim] */
  kv: ort.Tensor[];
  /** [R, N, K] */
  logits: ort.Tensor;
}

export class DeviceKvCache implements CacheHandle {
  private state: DeviceState | null;
  private readonly targetMaps: TargetMaps;

  constructor(
    readonly shape: KvShape,
    readonly sequences: number,
    readonly branches: number,
    readonly length: number,
    readonly targets: number,
    readonly vocabSize: number,
    state: DeviceState,
    readonly rowMax: Float32Array,
    /** [R, N] each row's target positions */
    readonly targetPositions: Int32Array,
    private readonly ledger: DeviceLedger,
  ) {
    const sizes = state.kv.map((p) => p.size);
    if (!cacheSizesMatch(shape, { rows: this.rows, length, targets, vocabSize }, sizes, state.logits.size, rowMax, targetPositions)) {
      ledger.free([...state.kv, state.logits]);
      throw new Error('cache tensors do not match their shape');
    }
    ledger.hold([...state.kv, state.logits]);
    this.state = state;
    this.targetMaps = new TargetMaps(targetPositions, targets, length);
  }

  get rows(): number {
    return this.sequences * this.branches;
  }

  /** the device state; a released cache has none */
  get device(): DeviceState {
    if (!this.state) throw new Error('ML-Cache state used after its release');
    return this.state;
  }

  get released(): boolean {
    return this.state === null;
  }

  /** device bytes (K/V planes, target logits) and the host's row max */
  get bytes(): number {
    if (!this.state) return 0;
    return this.state.kv.reduce((n, t) => n + elementBytes(t), elementBytes(this.state.logits)) + this.rowMax.byteLength;
  }

  /** A partial step's updated planes take the place of these, which are disposed. */
  replace(next: DeviceState): void {
    const old = this.device;
    this.ledger.hold([...next.kv, next.logits]);
    this.state = next;
    this.ledger.free([...old.kv, old.logits]);
  }

  release(): void {
    if (!this.state) return;
    this.ledger.free([...this.state.kv, this.state.logits]);
    this.state = null;
  }

  /**
   * A partial step's `target_source` [R, N]: for each row's target, the flat index r·S + s of the query that recomputes
   * it (its first `queryCounts[r]` entries; the padding repeats them), −1 where none does.
   */
  targetSource(queryIndex: Int32Array, queryCounts: Int32Array, queries: number): Int32Array {
    const N = this.targets;
    const source = new Int32Array(this.rows * N).fill(-1);
    for (let r = 0; r < this.rows; r++) {
      const targetOf = this.targetMaps.of(r);
      for (let s = 0; s < queryCounts[r]!; s++) {
        const n = targetOf[queryIndex[r * queries + s]!]!;
        if (n >= 0) source[r * N + n] = r * queries + s;
      }
    }
    return source;
  }

  /** Writes a partial step's max logits [R, S] at the recomputed positions of the host's `rowMax`. */
  scatterRowMax(queryIndex: Int32Array, queryCounts: Int32Array, queries: number, rowMax: Float32Array): void {
    const L = this.length;
    for (let r = 0; r < this.rows; r++) {
      for (let s = 0; s < queryCounts[r]!; s++) this.rowMax[r * L + queryIndex[r * queries + s]!] = rowMax[r * queries + s]!;
    }
  }
}

/**
 * The host half of a regrouping: the new group's row max and target positions, and the rows to take from the
 * concatenation of the distinct source caches (in their order of first appearance) — what `cache_gather` reads.
 */
export function gatherPlan(parts: readonly { cache: DeviceKvCache; sequence: number }[]): {
  sources: DeviceKvCache[];
  rows: Int32Array;
  rowMax: Float32Array;
  targetPositions: Int32Array;
} {
  const a0 = parts[0]!.cache;
  const G = a0.branches;
  const L = a0.length;
  const N = a0.targets;
  const sources: DeviceKvCache[] = [];
  const offsets = new Map<DeviceKvCache, number>();
  let total = 0;
  for (const { cache } of parts) {
    if (cache.branches !== G || cache.length !== L || cache.targets !== N || cache.vocabSize !== a0.vocabSize) {
      throw new Error('caches of one group differ in shape');
    }
    if (!offsets.has(cache)) {
      offsets.set(cache, total);
      sources.push(cache);
      total += cache.rows;
    }
  }
  const R = parts.length * G;
  const rows = new Int32Array(R);
  const rowMax = new Float32Array(R * L);
  const targetPositions = new Int32Array(R * N);
  parts.forEach(({ cache, sequence }, b) => {
    for (let g = 0; g < G; g++) {
      const from = sequence * G + g;
      const to = b * G + g;
      rows[to] = offsets.get(cache)! + from;
      rowMax.set(cache.rowMax.subarray(from * L, (from + 1) * L), to * L);
      targetPositions.set(cache.targetPositions.subarray(from * N, (from + 1) * N), to * N);
    }
  });
  return { sources, rows, rowMax, targetPositions };
}

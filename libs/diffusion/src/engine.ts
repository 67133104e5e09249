/**
 * Batched stepping: every active sequence advances one step per `step()`, with one model call per group of compatible
 * sequences (same branch count, vocabulary slice, padded length, target count and cache phase). Guidance branches are
 * folded into the rows (row = sequence·G + branch). Sequences may join or leave between any two steps.
 *
 * ML-Cache state (per branch row: pre-RoPE K/V, the target logits, the last max-logit per position) lives here on the
 * host, which is where the CPU provider computes anyway (docs/model-interface.md §4.2, §5).
 */
import { selectRecompute } from './cache-policy';
import type { DenoiseModel, FullStepOutput, SampleOutput } from './model';
import type { Sequence } from './sequence';

export interface EngineOptions {
  /** rows of a call are padded to a multiple of this (the manifest's lengthBucket) */
  lengthBucket: number;
  /** most rows (sequences × branches) in one model call */
  maxRows: number;
}

interface BranchCache {
  kv: Float32Array;
  logits: Float32Array;
  rowMax: Float32Array;
}

interface Member {
  seq: Sequence;
  length: number;
  cache: BranchCache[] | null;
}

export interface CallRecord {
  kind: 'full' | 'partial' | 'sample';
  sequences: number;
  rows: number;
  length: number;
  /** positions run through the transformer (rows × real length for full steps, the selected subsets for partial) */
  positions: number;
  ms: number;
}

export interface StepReport {
  calls: CallRecord[];
  finished: Sequence[];
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

export class DiffusionEngine {
  private readonly members = new Map<string, Member>();
  /** every model call since construction (tests and benchmarks read it) */
  readonly calls: CallRecord[] = [];

  constructor(
    private readonly model: DenoiseModel,
    private readonly options: EngineOptions,
  ) {}

  get size(): number {
    return this.members.size;
  }

  add(seq: Sequence): void {
    if (this.members.has(seq.id)) throw new Error(`sequence ${seq.id} is already running`);
    const longest = Math.max(...seq.spec.branches.map((_, g) => seq.rowLength(g)));
    this.members.set(seq.id, { seq, length: roundUp(longest, this.options.lengthBucket), cache: null });
  }

  /** Leaves at once (cancel); its cache is dropped. */
  remove(id: string): boolean {
    return this.members.delete(id);
  }

  /** Runs the given sequences to completion together. */
  async run(seqs: Sequence[]): Promise<void> {
    for (const s of seqs) this.add(s);
    while (this.members.size > 0) await this.step();
  }

  /** Advances every active sequence by one step; finished ones leave. */
  async step(): Promise<StepReport> {
    const calls: CallRecord[] = [];
    for (const group of this.groups()) {
      const full = group[0]!.seq.fullStep || !group[0]!.cache;
      const results = full ? await this.runFull(group, calls) : await this.runPartial(group, calls);
      group.forEach((m, b) => {
        const n = m.seq.targets;
        m.seq.commit(results.sampleIndex.subarray(b * n, (b + 1) * n), results.sampleProb.subarray(b * n, (b + 1) * n));
      });
    }
    const finished: Sequence[] = [];
    for (const [id, m] of this.members) {
      if (m.seq.done) {
        this.members.delete(id);
        finished.push(m.seq);
      }
    }
    this.calls.push(...calls);
    return { calls, finished };
  }

  private groups(): Member[][] {
    const byKey = new Map<string, Member[]>();
    for (const m of this.members.values()) {
      if (m.seq.done) continue;
      const s = m.seq;
      const phase = s.fullStep || !m.cache ? 'full' : 'partial';
      const key = `${phase}|${s.branches}|${s.spec.vocab.join('-')}|${m.length}|${s.targets}|${s.params.cache ? 'c' : ''}`;
      const list = byKey.get(key) ?? [];
      list.push(m);
      byKey.set(key, list);
    }
    const out: Member[][] = [];
    for (const list of byKey.values()) {
      const per = Math.max(1, Math.floor(this.options.maxRows / list[0]!.seq.branches));
      for (let i = 0; i < list.length; i += per) out.push(list.slice(i, i + per));
    }
    return out;
  }

  private async runFull(group: Member[], calls: CallRecord[]): Promise<SampleOutput> {
    const first = group[0]!;
    const G = first.seq.branches;
    const N = first.seq.targets;
    const L = first.length;
    const B = group.length;
    const R = B * G;
    const withCache = first.seq.params.cache !== null;
    const inputIds = new Int32Array(R * L);
    const positionIds = new Int32Array(R * L);
    const attentionMask = new Int32Array(R * L);
    const targetPositions = new Int32Array(R * N);
    const guidanceWeights = new Float32Array(B * G);
    const temperature = new Float32Array(B);
    const uniforms = new Float32Array(B * N);
    let positions = 0;
    group.forEach((m, b) => {
      temperature[b] = m.seq.params.temperature;
      uniforms.set(m.seq.tokenUniforms(), b * N);
      for (let g = 0; g < G; g++) {
        const r = b * G + g;
        const len = m.seq.rowLength(g);
        positions += len;
        m.seq.writeRow(g, inputIds.subarray(r * L, r * L + len));
        for (let i = 0; i < len; i++) {
          positionIds[r * L + i] = i;
          attentionMask[r * L + i] = 1;
        }
        for (let n = 0; n < N; n++) targetPositions[r * N + n] = m.seq.targetPosition(g, n);
        guidanceWeights[b * G + g] = m.seq.weights[g]!;
      }
    });
    const t0 = performance.now();
    const out = await this.model.fullStep({
      rows: R,
      length: L,
      inputIds,
      positionIds,
      attentionMask,
      sequences: B,
      branches: G,
      targets: N,
      targetPositions,
      guidanceWeights,
      vocab: first.seq.spec.vocab,
      temperature,
      uniforms,
      withCache,
    });
    calls.push({ kind: 'full', sequences: B, rows: R, length: L, positions, ms: performance.now() - t0 });
    if (withCache) this.storeCache(group, out);
    return out;
  }

  /** Splits a full step's K/V, target logits and max-logits into each row's cache. */
  private storeCache(group: Member[], out: FullStepOutput): void {
    const { nLayers, dModel } = this.model.shape;
    const first = group[0]!;
    const G = first.seq.branches;
    const L = first.length;
    const N = first.seq.targets;
    const K = first.seq.spec.vocab[1] - first.seq.spec.vocab[0];
    const R = group.length * G;
    const kv = out.presentKv;
    const logits = out.targetLogits;
    if (!kv || !logits) throw new Error('model returned no cache state for a cached full step');
    const plane = L * dModel;
    group.forEach((m, b) => {
      m.cache = Array.from({ length: G }, (_, g) => {
        const r = b * G + g;
        const rowKv = new Float32Array(nLayers * 2 * plane);
        for (let p = 0; p < nLayers * 2; p++) rowKv.set(kv.subarray((p * R + r) * plane, (p * R + r + 1) * plane), p * plane);
        return {
          kv: rowKv,
          logits: logits.slice(r * N * K, (r + 1) * N * K),
          rowMax: out.rowMax.slice(r * L, (r + 1) * L),
        };
      });
    });
  }

  private async runPartial(group: Member[], calls: CallRecord[]): Promise<SampleOutput> {
    const { nLayers, dModel } = this.model.shape;
    const first = group[0]!;
    const G = first.seq.branches;
    const N = first.seq.targets;
    const L = first.length;
    const B = group.length;
    const R = B * G;
    const vocab = first.seq.spec.vocab;
    const K = vocab[1] - vocab[0];
    const cacheRatio = first.seq.params.cache!.cacheRatio;

    // Rows, and the subset each row recomputes (selected from its max-logits after the previous step).
    const rowIds: Int32Array[] = [];
    const selections: number[][] = [];
    for (const m of group) {
      for (let g = 0; g < G; g++) {
        const ids = new Int32Array(m.seq.rowLength(g));
        m.seq.writeRow(g, ids);
        rowIds.push(ids);
        selections.push(selectRecompute(m.cache![g]!.rowMax, ids.length, cacheRatio));
      }
    }
    const S = Math.max(...selections.map((s) => s.length));
    const inputIds = new Int32Array(R * S);
    const queryIndex = new Int32Array(R * S);
    const keyPositionIds = new Int32Array(R * L);
    const attentionMask = new Int32Array(R * L);
    const pastKv = new Float32Array(nLayers * 2 * R * L * dModel);
    const plane = L * dModel;
    let positions = 0;
    group.forEach((m, b) => {
      for (let g = 0; g < G; g++) {
        const r = b * G + g;
        const ids = rowIds[r]!;
        const sel = selections[r]!;
        positions += sel.length;
        for (let s = 0; s < S; s++) {
          // padding entries repeat the row's first selected position: same value scattered twice, outputs unread
          const i = sel[s] ?? sel[0]!;
          queryIndex[r * S + s] = i;
          inputIds[r * S + s] = ids[i]!;
        }
        for (let i = 0; i < ids.length; i++) {
          keyPositionIds[r * L + i] = i;
          attentionMask[r * L + i] = 1;
        }
        const kv = m.cache![g]!.kv;
        for (let p = 0; p < nLayers * 2; p++) pastKv.set(kv.subarray(p * plane, (p + 1) * plane), (p * R + r) * plane);
      }
    });
    const t0 = performance.now();
    const out = await this.model.partialStep({
      rows: R,
      length: L,
      queries: S,
      inputIds,
      queryIndex,
      positionIds: queryIndex,
      pastKv,
      keyPositionIds,
      attentionMask,
      vocab,
    });
    calls.push({ kind: 'partial', sequences: B, rows: R, length: L, positions, ms: performance.now() - t0 });

    // Scatter the fresh rows into each branch's cache, then sample every target from the merged logits.
    const logits = new Float32Array(R * N * K);
    group.forEach((m, b) => {
      for (let g = 0; g < G; g++) {
        const r = b * G + g;
        const cache = m.cache![g]!;
        const sel = selections[r]!;
        const targetOf = new Map<number, number>();
        for (let n = 0; n < N; n++) targetOf.set(m.seq.targetPosition(g, n), n);
        sel.forEach((i, s) => {
          for (let p = 0; p < nLayers * 2; p++) {
            const src = ((p * R + r) * S + s) * dModel;
            cache.kv.set(out.newKv.subarray(src, src + dModel), p * plane + i * dModel);
          }
          cache.rowMax[i] = out.rowMax[r * S + s]!;
          const n = targetOf.get(i);
          if (n !== undefined) cache.logits.set(out.logits.subarray((r * S + s) * K, (r * S + s + 1) * K), n * K);
        });
        logits.set(cache.logits, r * N * K);
      }
    });
    const guidanceWeights = new Float32Array(B * G);
    const temperature = new Float32Array(B);
    const uniforms = new Float32Array(B * N);
    group.forEach((m, b) => {
      temperature[b] = m.seq.params.temperature;
      uniforms.set(m.seq.tokenUniforms(), b * N);
      for (let g = 0; g < G; g++) guidanceWeights[b * G + g] = m.seq.weights[g]!;
    });
    const t1 = performance.now();
    const sampled = await this.model.sampleHead({ sequences: B, branches: G, targets: N, vocabSize: K, logits, guidanceWeights, temperature, uniforms });
    calls.push({ kind: 'sample', sequences: B, rows: R, length: N, positions: 0, ms: performance.now() - t1 });
    return sampled;
  }
}

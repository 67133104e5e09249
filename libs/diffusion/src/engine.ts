/**
 * Batched stepping: every active sequence advances one step per `step()`, with one model call per group of compatible
 * sequences (same branch count, vocabulary slice, padded length, target count and cache phase). Guidance branches are
 * folded into the rows (row = sequence·G + branch). Sequences may join or leave between any two steps.
 *
 * With ML-Cache, the state belongs to the batch (cache-arena.ts), in host memory — where the CPU provider computes
 * anyway (docs/model-interface.md §4.2, §5). Sequences in a full step and sequences in a partial step are different
 * groups, so each runs its own call that step.
 */
import { callGroups, paddedLength, sequenceCost } from './batch-plan';
import { CacheArena } from './cache-arena';
import { selectRecompute } from './cache-policy';
import type { DenoiseModel, SampleOutput } from './model';
import type { Sequence } from './sequence';

export interface EngineOptions {
  /** rows of a call are padded to a multiple of this (the manifest's lengthBucket) */
  lengthBucket: number;
  /** most rows (sequences × branches) in one model call */
  maxRows: number;
}

interface Member {
  seq: Sequence;
  /** padded row length */
  length: number;
  /** where this sequence's cache rows live, once it has run a cached full step */
  slot: { arena: CacheArena; index: number } | null;
  /** per branch: row position → target index (partial steps' scatter) */
  targetOf?: Int32Array[];
}

export interface CallRecord {
  kind: 'full' | 'partial' | 'sample';
  sequences: number;
  rows: number;
  length: number;
  /** positions run through the transformer (rows × real length for full steps, the selected subsets for partial) */
  positions: number;
  /** positions a full step of the same rows would run: 1 − positions / fullPositions is the ML-Cache saving */
  fullPositions: number;
  ms: number;
}

export interface StepReport {
  calls: CallRecord[];
  finished: Sequence[];
  /** bytes of ML-Cache state held after the step */
  cacheBytes: number;
}

export class DiffusionEngine {
  private readonly members = new Map<string, Member>();
  /** every model call since construction (tests and benchmarks read it) */
  readonly calls: CallRecord[] = [];
  /** the sample head's input logits, reused across steps (a fresh buffer per step is garbage-collection pressure) */
  private sampleScratch = new Float32Array(0);

  constructor(
    private readonly model: DenoiseModel,
    private readonly options: EngineOptions,
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** Positions one full step computes for `seq` (padded length × branches): its share of a batch's budget. */
  costOf(seq: Sequence): number {
    return sequenceCost(this.paddedLength(seq), seq.branches);
  }

  add(seq: Sequence): void {
    if (this.members.has(seq.id)) throw new Error(`sequence ${seq.id} is already running`);
    this.members.set(seq.id, { seq, length: this.paddedLength(seq), slot: null });
  }

  private paddedLength(seq: Sequence): number {
    return paddedLength(seq, this.options.lengthBucket);
  }

  /** Leaves at once (cancel); its cache rows are dropped with the next regrouping. */
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
      const results = this.isPartial(group[0]!) ? await this.runPartial(group, calls) : await this.runFull(group, calls);
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
    const arenas = new Set([...this.members.values()].flatMap((m) => (m.slot ? [m.slot.arena] : [])));
    return { calls, finished, cacheBytes: [...arenas].reduce((n, a) => n + a.bytes, 0) };
  }

  private isPartial(m: Member): boolean {
    return m.slot !== null && !m.seq.fullStep;
  }

  private groups(): Member[][] {
    const key = (m: Member) => {
      const s = m.seq;
      // a full step that leaves a cache fetches more outputs: it runs apart from those that do not
      const kind = this.isPartial(m) ? 'partial' : s.leavesCache ? 'full+cache' : 'full';
      return [kind, s.branches, s.spec.vocab.join('-'), m.length, s.targets].join('|');
    };
    return callGroups(this.members.values(), key, this.options.maxRows);
  }

  private async runFull(group: Member[], calls: CallRecord[]): Promise<SampleOutput> {
    const first = group[0]!;
    const G = first.seq.branches;
    const N = first.seq.targets;
    const L = first.length;
    const B = group.length;
    const R = B * G;
    // only a full step right before a partial step fetches the cache (the K/V cross the runtime boundary)
    const withCache = group.some((m) => m.seq.leavesCache);
    const inputIds = new Int32Array(R * L);
    const positionIds = new Int32Array(R * L);
    const attentionMask = new Int32Array(R * L);
    const targetPositions = new Int32Array(R * N);
    let positions = 0;
    group.forEach((m, b) => {
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
      vocab: first.seq.spec.vocab,
      withCache,
      ...this.samplingInputs(group),
    });
    calls.push({ kind: 'full', sequences: B, rows: R, length: L, positions, fullPositions: positions, ms: performance.now() - t0 });
    if (withCache) {
      if (!out.presentKv || !out.targetLogits) throw new Error('model returned no cache state for a cached full step');
      const [lo, hi] = first.seq.spec.vocab;
      const ids = group.map((m) => m.seq.id);
      const arena = new CacheArena(this.model.shape, ids, G, L, N, hi - lo, out.presentKv, out.targetLogits, out.rowMax);
      group.forEach((m, index) => (m.slot = { arena, index }));
    } else {
      for (const m of group) m.slot = null; // nothing reads an older cache again: let it go
    }
    return out;
  }

  /** Branch `g`'s row position → target index (−1 elsewhere); fixed for a sequence, so built once. */
  private targetsOf(m: Member, g: number): Int32Array {
    m.targetOf ??= [];
    let map = m.targetOf[g];
    if (!map) {
      map = new Int32Array(m.length).fill(-1);
      for (let n = 0; n < m.seq.targets; n++) map[m.seq.targetPosition(g, n)] = n;
      m.targetOf[g] = map;
    }
    return map;
  }

  /** Per-sequence guidance weights, temperatures and this step's token uniforms. */
  private samplingInputs(group: Member[]): { guidanceWeights: Float32Array; temperature: Float32Array; uniforms: Float32Array } {
    const G = group[0]!.seq.branches;
    const N = group[0]!.seq.targets;
    const guidanceWeights = new Float32Array(group.length * G);
    const temperature = new Float32Array(group.length);
    const uniforms = new Float32Array(group.length * N);
    group.forEach((m, b) => {
      guidanceWeights.set(m.seq.weights, b * G);
      temperature[b] = m.seq.params.temperature;
      uniforms.set(m.seq.tokenUniforms(), b * N);
    });
    return { guidanceWeights, temperature, uniforms };
  }

  /** The group's arena: reused while its membership is unchanged, else gathered from the members' rows. */
  private arenaFor(group: Member[]): CacheArena {
    const current = group[0]!.slot!.arena;
    const same = current.members.length === group.length && group.every((m, i) => m.slot!.arena === current && m.slot!.index === i);
    if (same) return current;
    const arena = CacheArena.gather(
      group.map((m) => m.seq.id),
      group.map((m) => m.slot!),
    );
    group.forEach((m, index) => (m.slot = { arena, index }));
    return arena;
  }

  private async runPartial(group: Member[], calls: CallRecord[]): Promise<SampleOutput> {
    const arena = this.arenaFor(group);
    const first = group[0]!;
    const G = first.seq.branches;
    const L = first.length;
    const B = group.length;
    const R = B * G;
    const vocab = first.seq.spec.vocab;
    const cacheRatio = first.seq.params.cache!.cacheRatio;

    // Each row recomputes the positions its max-logits after the previous step select (spec §3).
    const rows: Int32Array[] = [];
    const selections: number[][] = [];
    for (const m of group) {
      for (let g = 0; g < G; g++) {
        const ids = new Int32Array(m.seq.rowLength(g));
        m.seq.writeRow(g, ids);
        rows.push(ids);
        selections.push(selectRecompute(arena.rowMax.subarray(rows.length * L - L), ids.length, cacheRatio));
      }
    }
    const S = Math.max(...selections.map((s) => s.length));
    const inputIds = new Int32Array(R * S);
    const queryIndex = new Int32Array(R * S);
    const attentionMask = new Int32Array(R * L);
    let positions = 0;
    rows.forEach((ids, r) => {
      const sel = selections[r]!;
      positions += sel.length;
      for (let s = 0; s < S; s++) {
        // padding entries repeat the row's first selected position: the same value is scattered twice, outputs unread
        const i = sel[s] ?? sel[0]!;
        queryIndex[r * S + s] = i;
        inputIds[r * S + s] = ids[i]!;
      }
      attentionMask.fill(1, r * L, r * L + ids.length);
    });
    const t0 = performance.now();
    const out = await this.model.partialStep({
      rows: R,
      length: L,
      queries: S,
      inputIds,
      queryIndex,
      positionIds: queryIndex,
      pastKv: arena.kv,
      attentionMask,
      vocab,
    });
    calls.push({
      kind: 'partial',
      sequences: B,
      rows: R,
      length: L,
      positions,
      fullPositions: rows.reduce((n, ids) => n + ids.length, 0),
      ms: performance.now() - t0,
    });

    group.forEach((m, b) => {
      for (let g = 0; g < G; g++) arena.scatterRow(b * G + g, selections[b * G + g]!, this.targetsOf(m, g), out.newKv, S, out.logits, out.rowMax);
    });
    // the masked targets are sampled from the merged (fresh or cached) per-branch logits
    const t1 = performance.now();
    const sampled = await this.sampleMasked(group, arena);
    calls.push({ kind: 'sample', sequences: B, rows: R, length: sampled.targets, positions: 0, fullPositions: 0, ms: performance.now() - t1 });
    return sampled;
  }

  /**
   * Runs the sample head on the masked targets only: `Sequence.commit` reads no other sample, and late in a schedule
   * most targets are committed. A target's sample depends only on its own logits and uniform (§3), so it is the same
   * token as sampling every target. Returns [B, N] arrays (entries of committed targets unread) and the M sampled per sequence.
   */
  private async sampleMasked(group: Member[], arena: CacheArena): Promise<SampleOutput & { targets: number }> {
    const B = group.length;
    const G = arena.branches;
    const N = arena.targets;
    const K = arena.vocabSize;
    const masked = group.map((m) => m.seq.maskedTargets());
    const M = Math.max(1, ...masked.map((ns) => ns.length));
    const inputs = this.samplingInputs(group);
    if (this.sampleScratch.length < B * G * M * K) this.sampleScratch = new Float32Array(B * G * N * K);
    const logits = this.sampleScratch.subarray(0, B * G * M * K);
    const uniforms = new Float32Array(B * M);
    masked.forEach((ns, b) => {
      for (let m = 0; m < M; m++) {
        const n = ns[m] ?? ns[0] ?? 0; // padding repeats an entry; its sample is not read
        uniforms[b * M + m] = inputs.uniforms[b * N + n]!;
        for (let r = b * G; r < (b + 1) * G; r++) logits.set(arena.logits.subarray((r * N + n) * K, (r * N + n + 1) * K), (r * M + m) * K);
      }
    });
    const out = await this.model.sampleHead({
      sequences: B,
      branches: G,
      targets: M,
      vocabSize: K,
      logits,
      guidanceWeights: inputs.guidanceWeights,
      temperature: inputs.temperature,
      uniforms,
    });
    const sampleIndex = new Int32Array(B * N);
    const sampleProb = new Float32Array(B * N);
    masked.forEach((ns, b) =>
      ns.forEach((n, m) => {
        sampleIndex[b * N + n] = out.sampleIndex[b * M + m]!;
        sampleProb[b * N + n] = out.sampleProb[b * M + m]!;
      }),
    );
    return { sampleIndex, sampleProb, targets: M };
  }
}

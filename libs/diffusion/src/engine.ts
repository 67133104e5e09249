/**
 * Batched stepping (the host path): every active sequence advances one step per `step()`, with one model call per
 * group of compatible sequences (same branch count, vocabulary slice, padded length, target count and cache phase).
 * Guidance branches are folded into the rows (row = sequence·G + branch). Sequences may join or leave between any two
 * steps.
 *
 * With ML-Cache, the state belongs to the batch: the model's cache handle of a group's rows (model.ts), regathered only
 * when the group's membership changes. Which positions a partial step recomputes is the cache policy's
 * (cache-policy.ts), read from the handle's row max. Sequences in a full step and sequences in a partial step are
 * different groups, so each runs its own call that step.
 */
import { callGroups } from './batch-plan';
import { selectRecompute } from './cache-policy';
import type { CacheHandle, DenoiseModel, SampleOutput } from './model';
import type { CallRecord, RunnerOptions, Running, StepReport } from './runner';
import { SequenceRunner } from './runner';
import type { Sequence } from './sequence';

export type EngineOptions = RunnerOptions;

interface Member extends Running {
  /** where this sequence's cache rows live, once it has run a cached full step: a handle and its index there */
  slot: { cache: CacheHandle; index: number } | null;
}

export class DiffusionEngine extends SequenceRunner<Member> {
  /** every cache handle the model gave and the engine has not released: one no member holds any more is released */
  private held = new Set<CacheHandle>();

  constructor(
    private readonly model: DenoiseModel,
    options: EngineOptions,
  ) {
    super(options);
  }

  protected member(seq: Sequence, length: number): Member {
    return { seq, length, slot: null };
  }

  /** Every member advances one step: one model call per group of compatible sequences. */
  protected async advance(calls: CallRecord[]): Promise<void> {
    for (const group of this.groups()) {
      const results = this.isPartial(group[0]!) ? await this.runPartial(group, calls) : await this.runFull(group, calls);
      group.forEach((m, b) => {
        const n = m.seq.targets;
        m.seq.commit(results.sampleIndex.subarray(b * n, (b + 1) * n), results.sampleProb.subarray(b * n, (b + 1) * n));
      });
    }
  }

  override remove(id: string): boolean {
    const removed = super.remove(id);
    this.releaseUnheld();
    return removed;
  }

  override async step(): Promise<StepReport> {
    try {
      return await super.step();
    } finally {
      this.releaseUnheld();
    }
  }

  /**
   * Hands back to the model every cache handle no member holds any more (its sequences finished, left, or took a
   * newer handle — also one made and left within the same step): a device-resident cache frees its memory at once.
   * Rows regathered into another handle are copies there.
   */
  private releaseUnheld(): void {
    const now = new Set([...this.members.values()].flatMap((m) => (m.slot ? [m.slot.cache] : [])));
    for (const cache of this.held) {
      if (now.has(cache)) continue;
      this.held.delete(cache);
      this.model.releaseCache?.(cache);
    }
  }

  /** A member that leaves drops its cache rows with the next regrouping. */
  protected cacheBytes(): number {
    const caches = new Set([...this.members.values()].flatMap((m) => (m.slot ? [m.slot.cache] : [])));
    return [...caches].reduce((n, c) => n + c.bytes, 0);
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
    calls.push({ kind: 'full', sequences: B, rows: R, length: L, positions, fullPositions: positions, steps: 1, ms: performance.now() - t0 });
    if (withCache) {
      const cache = out.cache;
      if (!cache) throw new Error('model returned no cache state for a cached full step');
      this.held.add(cache);
      group.forEach((m, index) => (m.slot = { cache, index }));
    } else {
      for (const m of group) m.slot = null; // nothing reads an older cache again: let it go
    }
    return out;
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

  /** The group's cache: reused while its membership is unchanged, else gathered from the members' rows. */
  private async cacheFor(group: Member[]): Promise<CacheHandle> {
    const current = group[0]!.slot!.cache;
    const same = current.sequences === group.length && group.every((m, i) => m.slot!.cache === current && m.slot!.index === i);
    if (same) return current;
    const cache = await this.model.gatherCache(group.map((m) => ({ cache: m.slot!.cache, sequence: m.slot!.index })));
    this.held.add(cache);
    group.forEach((m, index) => (m.slot = { cache, index }));
    return cache;
  }

  private async runPartial(group: Member[], calls: CallRecord[]): Promise<SampleOutput> {
    const cache = await this.cacheFor(group);
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
        selections.push(selectRecompute(cache.rowMax.subarray(rows.length * L - L), ids.length, cacheRatio));
      }
    }
    const S = Math.max(...selections.map((s) => s.length));
    const inputIds = new Int32Array(R * S);
    const queryIndex = new Int32Array(R * S);
    const queryCounts = new Int32Array(R);
    const attentionMask = new Int32Array(R * L);
    let positions = 0;
    rows.forEach((ids, r) => {
      const sel = selections[r]!;
      positions += sel.length;
      queryCounts[r] = sel.length;
      for (let s = 0; s < S; s++) {
        // padding entries repeat the row's first selected position: the same value is written twice, outputs unread
        const i = sel[s] ?? sel[0]!;
        queryIndex[r * S + s] = i;
        inputIds[r * S + s] = ids[i]!;
      }
      attentionMask.fill(1, r * L, r * L + ids.length);
    });
    const t0 = performance.now();
    await this.model.partialStep({ cache, rows: R, length: L, queries: S, inputIds, queryIndex, queryCounts, positionIds: queryIndex, attentionMask, vocab });
    calls.push({
      kind: 'partial',
      sequences: B,
      rows: R,
      length: L,
      positions,
      fullPositions: rows.reduce((n, ids) => n + ids.length, 0),
      steps: 1,
      ms: performance.now() - t0,
    });

    // the masked targets are sampled from the merged (fresh or cached) per-branch logits; `commit` reads no other
    const t1 = performance.now();
    const sampled = await this.model.sampleCached({
      cache,
      sequences: B,
      branches: G,
      targets: first.seq.targets,
      masked: group.map((m) => m.seq.maskedTargets()),
      ...this.samplingInputs(group),
    });
    calls.push({ kind: 'sample', sequences: B, rows: R, length: sampled.fed, positions: 0, fullPositions: 0, steps: 1, ms: performance.now() - t1 });
    return sampled;
  }
}

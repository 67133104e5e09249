/**
 * One job's sampling state and the per-step rule that turns model samples into committed tokens.
 * - `maskgit` (image tasks, spec §2.2): commit every masked target, then re-mask the keep_n least confident.
 * - `llada` (understanding, spec §2.6): blocks left to right; commit the quota most confident masked targets of the block.
 */
import type { CacheSettings } from './cache-policy';
import { isFullStep } from './cache-policy';
import { InvalidSamplingRequest } from './errors';
import type { Guidance } from './guidance';
import { guidanceWeights } from './guidance';
import type { SequenceSpec, TokenLayout } from './layout';
import { remaskLowest, remaskScores, topConfidence } from './remask';
import { gumbel, RngStream, uniforms } from './rng';
import { keepCount, transferCounts } from './schedule';

export type SamplerKind = { kind: 'maskgit' } | { kind: 'llada'; blockLength: number; remasking: 'low_confidence' | 'random' };

export interface SamplingParams {
  steps: number;
  temperature: number;
  seed: number;
  guidance: Guidance;
  cache: CacheSettings | null;
  sampler: SamplerKind;
}

export class Sequence {
  readonly region: Int32Array;
  readonly weights: number[];
  step = 0;
  private readonly initialMasked: number;
  private blockQuota: number[] = [];

  constructor(
    readonly id: string,
    readonly layout: TokenLayout,
    readonly spec: SequenceSpec,
    readonly params: SamplingParams,
  ) {
    this.region = Int32Array.from(spec.region);
    this.weights = guidanceWeights(params.guidance);
    if (this.weights.length !== spec.branches.length) {
      throw new InvalidSamplingRequest('guidance', `${this.weights.length} weights for ${spec.branches.length} branches`);
    }
    if (!Number.isInteger(params.steps) || params.steps < 1) throw new InvalidSamplingRequest('steps', 'must be a positive integer');
    if (!(params.temperature >= 0)) throw new InvalidSamplingRequest('temperature', 'must be ≥ 0');
    this.initialMasked = this.maskedTargets().length;
    if (params.sampler.kind === 'llada') {
      const blocks = spec.targets.length / params.sampler.blockLength;
      if (!Number.isInteger(blocks) || blocks < 1) throw new InvalidSamplingRequest('blockLength', 'must divide genLength');
      if (params.steps % blocks !== 0) throw new InvalidSamplingRequest('steps', 'must be a multiple of genLength / blockLength');
    }
  }

  get branches(): number {
    return this.spec.branches.length;
  }

  get targets(): number {
    return this.spec.targets.length;
  }

  get done(): boolean {
    return this.step >= this.params.steps || this.maskedTargets().length === 0;
  }

  /**
   * The step after the one about to run is an ML-Cache partial step, so this (full) step must leave the cache behind.
   * Warmup steps are followed by another full step: a cache they built would be overwritten unread.
   */
  get leavesCache(): boolean {
    const next = this.step + 1;
    return this.params.cache !== null && next < this.params.steps && !isFullStep(next, this.params.steps, this.params.cache);
  }

  /** The step about to run recomputes every position (always, without ML-Cache). */
  get fullStep(): boolean {
    return isFullStep(this.step, this.params.steps, this.params.cache);
  }

  rowLength(branch: number): number {
    const b = this.spec.branches[branch]!;
    return b.prefix.length + this.region.length + b.suffix.length;
  }

  /** Writes branch `branch`'s current row into `out` (length ≥ rowLength). */
  writeRow(branch: number, out: Int32Array): void {
    const b = this.spec.branches[branch]!;
    out.set(b.prefix, 0);
    out.set(this.region, b.prefix.length);
    out.set(b.suffix, b.prefix.length + this.region.length);
  }

  /** Position of target `n` in branch `branch`'s row. */
  targetPosition(branch: number, n: number): number {
    return this.spec.branches[branch]!.prefix.length + this.spec.targets[n]!;
  }

  maskedTargets(): number[] {
    const out: number[] = [];
    this.spec.targets.forEach((cell, n) => {
      if (this.region[cell] === this.layout.mask) out.push(n);
    });
    return out;
  }

  /** This step's token-sampling uniforms, one per target. */
  tokenUniforms(): Float64Array {
    return uniforms(this.params.seed, this.step, RngStream.TokenUniform, this.targets);
  }

  /** Applies one step's samples (indices into the vocabulary slice, and their confidences). */
  commit(sampleIndex: ArrayLike<number>, sampleProb: ArrayLike<number>): void {
    const masked = this.maskedTargets();
    if (masked.length > 0) {
      if (this.params.sampler.kind === 'maskgit') this.commitMaskGit(masked, sampleIndex, sampleProb);
      else this.commitLlada(masked, sampleIndex, sampleProb, this.params.sampler);
    }
    this.step++;
  }

  private write(n: number, index: number): void {
    this.region[this.spec.targets[n]!] = this.spec.vocab[0] + index;
  }

  private commitMaskGit(masked: number[], sampleIndex: ArrayLike<number>, sampleProb: ArrayLike<number>): void {
    const { steps, temperature, seed } = this.params;
    for (const n of masked) this.write(n, sampleIndex[n]!);
    const noise = uniforms(seed, this.step, RngStream.RemaskGumbel, this.targets);
    const scores = remaskScores(
      masked.map((n) => sampleProb[n]!),
      temperature,
      masked.map((n) => gumbel(noise[n]!)),
    );
    remaskLowest(scores, keepCount(this.initialMasked, this.step, steps)).forEach((back, i) => {
      if (back) this.region[this.spec.targets[masked[i]!]!] = this.layout.mask;
    });
  }

  private commitLlada(masked: number[], sampleIndex: ArrayLike<number>, sampleProb: ArrayLike<number>, sampler: Extract<SamplerKind, { kind: 'llada' }>): void {
    const blocks = this.targets / sampler.blockLength;
    const stepsPerBlock = this.params.steps / blocks;
    const block = Math.floor(this.step / stepsPerBlock);
    const inBlock = (n: number) => n >= block * sampler.blockLength && n < (block + 1) * sampler.blockLength;
    if (this.step % stepsPerBlock === 0) {
      this.blockQuota = transferCounts(masked.filter(inBlock).length, stepsPerBlock);
    }
    const random = sampler.remasking === 'random' ? uniforms(this.params.seed, this.step, RngStream.RandomRemask, this.targets) : null;
    const confidence = new Float64Array(this.targets).fill(-Infinity);
    for (const n of masked) if (inBlock(n)) confidence[n] = random ? random[n]! : sampleProb[n]!;
    for (const n of topConfidence(confidence, this.blockQuota[this.step % stepsPerBlock] ?? 0)) this.write(n, sampleIndex[n]!);
  }
}

/**
 * One job's sampling state: its rows (the shared region between each guidance branch's prefix and suffix), its step,
 * and the commit of each step's draws by the job's rule (sampler.ts: `maskgit` for image tasks, `llada` for
 * understanding).
 */
import type { CacheSettings } from './cache-policy';
import { isFullStep } from './cache-policy';
import { InvalidSamplingRequest } from './errors';
import type { SequenceSpec, TokenLayout } from './layout';
import { RngStream, uniforms } from './rng';
import type { Guidance, StepPosition } from './sampler';
import { guidanceWeights, lladaBlock, lladaTransfer, maskgitRemask, transferCounts } from './sampler';

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

  private get position(): StepPosition {
    const { seed, steps, temperature } = this.params;
    return { seed, step: this.step, steps, temperature, targets: this.targets };
  }

  private commitMaskGit(masked: number[], sampleIndex: ArrayLike<number>, sampleProb: ArrayLike<number>): void {
    for (const n of masked) this.write(n, sampleIndex[n]!);
    maskgitRemask(this.position, masked, sampleProb, this.initialMasked).forEach((back, i) => {
      if (back) this.region[this.spec.targets[masked[i]!]!] = this.layout.mask;
    });
  }

  private commitLlada(masked: number[], sampleIndex: ArrayLike<number>, sampleProb: ArrayLike<number>, sampler: Extract<SamplerKind, { kind: 'llada' }>): void {
    const at = this.position;
    const { block, stepsPerBlock, first } = lladaBlock(at, sampler.blockLength);
    if (first) this.blockQuota = transferCounts(masked.filter((n) => Math.floor(n / sampler.blockLength) === block).length, stepsPerBlock);
    for (const n of lladaTransfer(at, sampler, masked, sampleProb, this.blockQuota[this.step % stepsPerBlock] ?? 0)) this.write(n, sampleIndex[n]!);
  }
}

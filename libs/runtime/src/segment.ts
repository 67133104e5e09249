/**
 * The GPU ML-Cache path's graph, `denoise_segment` (docs/model-interface.md §4.6), over onnxruntime-node: one run per
 * refresh segment, so the K/V cache stays inside the run; per run only the rows, the per-step keep counts and random
 * numbers go in and the target tokens, their confidences and the row max come back. The planning and the batch loop
 * are libs/diffusion's (segment.ts: SegmentRunner); this is the `SegmentModel` it drives.
 */
import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import type { SegmentInput, SegmentModel, SegmentOutput, SegmentRunnerOptions } from '@dimoo/diffusion';
import { SegmentRunner } from '@dimoo/diffusion';
import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '@dimoo/model';
import { rowFeeds } from './onnx-model';
import type { ExecutionProvider, SessionOptions } from './session';
import { f32, i64, openSession, toFloat32, toInt32 } from './session';

const f64 = (data: Float64Array, dims: number[]) => new ort.Tensor('float64', data, dims);

export class OnnxSegmentModel implements SegmentModel {
  /** runs since construction (tests count them) */
  runs = 0;

  private constructor(
    readonly segmentSteps: number,
    readonly provider: ExecutionProvider,
    private readonly session: ort.InferenceSession,
  ) {}

  /** Whether the model directory ships the GPU path. */
  static available(manifest: ModelManifest): boolean {
    return manifest.graphs.denoise_segment !== undefined && manifest.segmentSteps !== undefined;
  }

  static async open(dir: string, manifest: ModelManifest, options: SessionOptions): Promise<OnnxSegmentModel> {
    const file = manifest.graphs.denoise_segment;
    const steps = manifest.segmentSteps;
    if (file === undefined || steps === undefined) throw new ModelLoadError(`${dir} has no denoise_segment graph (the GPU ML-Cache path)`);
    const { session, provider } = await openSession(join(dir, file), options);
    const keep = session.inputMetadata.find((m) => m.name === 'keep_counts');
    const unroll = keep?.isTensor ? keep.shape[1] : undefined;
    if (unroll !== steps) throw new ModelLoadError(`${file} is unrolled to ${String(unroll)} steps, the manifest says segmentSteps ${steps}`);
    return new OnnxSegmentModel(steps, provider, session);
  }

  release(): Promise<void> {
    return this.session.release();
  }

  async segment(x: SegmentInput): Promise<SegmentOutput> {
    const { sequences: B, targets: N, segmentSteps: T } = x;
    if (T !== this.segmentSteps) throw new Error(`a plan for ${T} steps given to a graph of ${this.segmentSteps}`);
    this.runs++;
    const out = await this.session.run({
      ...rowFeeds(x),
      cache_ratio: f64(x.cacheRatio, [B]),
      keep_counts: i64(x.keepCounts, [B, T]),
      step_active: i64(x.stepActive, [B, T]),
      uniforms: f32(x.uniforms, [B, T, N]),
      remask_noise: f64(x.remaskNoise, [B, T, N]),
    });
    return {
      tokens: toInt32(out['tokens'], 'tokens'),
      sampleProb: toFloat32(out['sample_prob'], 'sample_prob'),
      rowMax: toFloat32(out['row_max'], 'row_max'),
    };
  }
}

/** A runner over the segment graph with the manifest's batching (lengthBucket; maxBatchRows unless given). */
export function newSegmentRunner(model: OnnxSegmentModel, manifest: ModelManifest, options: Partial<SegmentRunnerOptions> = {}): SegmentRunner {
  return new SegmentRunner(model, { lengthBucket: manifest.lengthBucket, maxRows: manifest.limits.maxBatchRows, ...options });
}

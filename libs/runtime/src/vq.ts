import { join } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import type { RgbImage } from '@dimoo/model';
import type { CodeGrid } from '@dimoo/diffusion';
import type * as ort from 'onnxruntime-node';
import type { SessionOptions } from './session';
import { f32, i64, openSession, toFloat32, toInt32 } from './session';

/** Planar float pixels [3, H, W] in [0, 1] (the VQ graphs' layout). */
export interface PlanarImage {
  height: number;
  width: number;
  data: Float32Array;
}

/** The image tokenizer: `vq_encode` / `vq_decode` (docs/model-interface.md §4.5), run in fp32. */
export class VqCodec {
  private constructor(
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    readonly gridFactor: number,
  ) {}

  static async open(dir: string, manifest: ModelManifest, options: SessionOptions): Promise<VqCodec> {
    const enc = await openSession(join(dir, manifest.graphs.vq_encode), options);
    const dec = await openSession(join(dir, manifest.graphs.vq_decode), options);
    return new VqCodec(enc.session, dec.session, manifest.image.gridFactor);
  }

  /** Frees both sessions (see `releaseModel`). */
  async release(): Promise<void> {
    await Promise.all([this.encoder.release(), this.decoder.release()]);
  }

  async encode(image: PlanarImage): Promise<CodeGrid> {
    const out = await this.encoder.run({ pixels: f32(image.data, [1, 3, image.height, image.width]) });
    return { rows: image.height / this.gridFactor, cols: image.width / this.gridFactor, codes: toInt32(out['codes'], 'codes') };
  }

  async decode(grid: CodeGrid): Promise<PlanarImage> {
    const out = await this.decoder.run({ codes: i64(grid.codes, [1, grid.rows, grid.cols]) });
    return { height: grid.rows * this.gridFactor, width: grid.cols * this.gridFactor, data: toFloat32(out['pixels'], 'pixels') };
  }
}

export function toPlanar(image: RgbImage): PlanarImage {
  const { width: W, height: H } = image;
  const data = new Float32Array(3 * H * W);
  for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) data[c * H * W + i] = image.data[i * 3 + c]! / 255;
  return { width: W, height: H, data };
}

export function fromPlanar(image: PlanarImage): RgbImage {
  const { width: W, height: H } = image;
  const data = new Uint8Array(3 * H * W);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = Math.round(Math.min(1, Math.max(0, image.data[c * H * W + i]!)) * 255);
  }
  return { width: W, height: H, data };
}

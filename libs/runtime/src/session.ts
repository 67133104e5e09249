import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '@dimoo/model';

export type ExecutionProvider = 'cpu' | 'cuda' | 'tensorrt';

/** What onnxruntime is asked for: TensorRT hands the nodes it cannot build to CUDA. */
const PROVIDERS: Record<ExecutionProvider, string[]> = { cpu: ['cpu'], cuda: ['cuda'], tensorrt: ['tensorrt', 'cuda'] };

export const isGpu = (p: ExecutionProvider) => p !== 'cpu';

export interface SessionOptions {
  provider: ExecutionProvider;
  /** on a missing GPU provider (CUDA, TensorRT): fall back to CPU (logged) instead of refusing */
  allowCpuFallback: boolean;
  intraOpThreads?: number;
  log?: (message: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
}

/**
 * onnxruntime-node has no automatic provider fallback (['cuda', 'cpu'] also rejects when CUDA is absent), so a missing
 * CUDA provider either refuses with a clear error or falls back to CPU explicitly, and says so.
 */
export async function openSession(path: string, options: SessionOptions): Promise<OpenedSession> {
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
  };
  try {
    const session = await ort.InferenceSession.create(path, { ...base, executionProviders: PROVIDERS[options.provider] });
    return { session, provider: options.provider };
  } catch (cause) {
    if (isGpu(options.provider) && options.allowCpuFallback) {
      options.log?.(`${options.provider} execution provider unavailable for ${path} (${String(cause)}); falling back to CPU`);
      return { session: await ort.InferenceSession.create(path, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
    }
    throw new ModelLoadError(`cannot open ${path} with the ${options.provider} execution provider: ${String(cause)}`, { cause });
  }
}

/**
 * An int64 tensor from 32-bit integers, written through an Int32Array view of the buffer (low word, then the sign
 * word: little-endian, as every platform onnxruntime-node ships for). Going through BigInt allocates a heap object
 * per element, and at a few thousand ids per step that garbage was most of the engine's host time.
 */
export function i64(data: ArrayLike<number>, dims: number[]): ort.Tensor {
  const out = new BigInt64Array(data.length);
  const words = new Int32Array(out.buffer);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== (v | 0)) throw new RangeError(`int64 input ${v} is not a 32-bit integer`);
    words[2 * i] = v;
    words[2 * i + 1] = v < 0 ? -1 : 0;
  }
  return new ort.Tensor('int64', out, dims);
}
export const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

export function toInt32(t: ort.Tensor | undefined, name: string): Int32Array {
  if (!t) throw new Error(`graph returned no ${name}`);
  const d = t.data;
  if (d instanceof BigInt64Array) {
    // the low words, read through an Int32Array view (no BigInt per element); the values are vocabulary indices
    const words = new Int32Array(d.buffer, d.byteOffset, 2 * d.length);
    const out = new Int32Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = words[2 * i]!;
    return out;
  }
  if (d instanceof Int32Array) return d;
  throw new Error(`${name}: unexpected ${t.type}`);
}

export function toFloat32(t: ort.Tensor | undefined, name: string): Float32Array {
  if (!t) throw new Error(`graph returned no ${name}`);
  if (!(t.data instanceof Float32Array)) throw new Error(`${name}: unexpected ${t.type}`);
  return t.data;
}

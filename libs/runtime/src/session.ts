import * as ort from 'onnxruntime-node';
import { ModelLoadError } from './errors';

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

export const i64 = (data: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(Array.from(data, BigInt)), dims);
export const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

export function toInt32(t: ort.Tensor | undefined, name: string): Int32Array {
  if (!t) throw new Error(`graph returned no ${name}`);
  const d = t.data;
  if (d instanceof BigInt64Array) return Int32Array.from(d, Number);
  if (d instanceof Int32Array) return d;
  throw new Error(`${name}: unexpected ${t.type}`);
}

export function toFloat32(t: ort.Tensor | undefined, name: string): Float32Array {
  if (!t) throw new Error(`graph returned no ${name}`);
  if (!(t.data instanceof Float32Array)) throw new Error(`${name}: unexpected ${t.type}`);
  return t.data;
}

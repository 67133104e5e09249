import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '@dimoo/model';

/**
 * The execution providers a worker may ask for (the worker's EXECUTION_PROVIDER). `webgpu` is the GPU provider that
 * ships inside the onnxruntime-node package (Dawn over Vulkan on Linux), the one whose tensors can stay on the device
 * between runs; `cuda` and `tensorrt` need the CUDA build of the package (docs/models.md).
 */
export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** What onnxruntime is asked for: TensorRT hands the nodes it cannot build to CUDA. */
const PROVIDERS: Record<ExecutionProvider, string[]> = { cpu: ['cpu'], cuda: ['cuda'], tensorrt: ['tensorrt', 'cuda'], webgpu: ['webgpu'] };

export const isGpu = (p: ExecutionProvider) => p !== 'cpu';

/** Where a run leaves an output: host memory, or (WebGPU) a buffer on the device that later runs take as input. */
export type OutputLocation = 'cpu' | 'gpu-buffer';

export interface SessionOptions {
  provider: ExecutionProvider;
  /** on a GPU provider that cannot open (CUDA or TensorRT missing from this build, no WebGPU adapter): fall back to CPU (logged) instead of refusing */
  allowCpuFallback: boolean;
  intraOpThreads?: number;
  /** onnxruntime's session log level (0 verbose … 4 fatal): at 0 it logs each node's provider and every copy it inserts */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** onnxruntime's profiler on (tests, benchmarks): each session writes `<dir>/<graph file>_<time>.json` when released */
  profileDir?: string;
  log?: (message: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
}

/**
 * onnxruntime-node has no automatic provider fallback (['cuda', 'cpu'] also rejects when CUDA is absent), so a missing
 * CUDA provider either refuses with a clear error or falls back to CPU explicitly, and says so. WebGPU alike: without
 * an adapter (no Vulkan driver Dawn accepts) the session is refused or falls back. `outputs` places named outputs on
 * the device (WebGPU only); the rest come back in host memory.
 */
export async function openSession(path: string, options: SessionOptions, outputs?: Record<string, OutputLocation>): Promise<OpenedSession> {
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.logSeverityLevel === undefined ? {} : { logSeverityLevel: options.logSeverityLevel, logVerbosityLevel: 0 }),
    ...(options.profileDir ? { enableProfiling: true, profileFilePrefix: join(options.profileDir, basename(path)) } : {}),
  };
  // device-side outputs exist only on WebGPU (a CPU fallback returns everything in host memory)
  const placed = options.provider === 'webgpu' && outputs ? { preferredOutputLocation: outputs } : {};
  try {
    const session = await ort.InferenceSession.create(path, { ...base, ...placed, executionProviders: PROVIDERS[options.provider] });
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

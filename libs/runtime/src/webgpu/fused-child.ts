/**
 * The transformer graphs exported with attention as `com.microsoft` MultiHeadAttention (tools/model/export.py
 * --fused-attention), run on fixed inputs: shared by fused-attention.spec.ts (the CPU provider, in process) and, as a
 * child process, by its WebGPU case (an onnxruntime abort fails one test, not the runner). Usage:
 *
 *   node -r tsx/cjs libs/runtime/src/webgpu/fused-child.ts '{"dir": "<model dir>", "provider": "webgpu"}'
 *
 * It prints `RESULT <json>` (every graph's outputs, float32 as base64) as its last stdout line; with logSeverityLevel 0
 * onnxruntime logs each session's node placements to stderr.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { kvNames } from '../onnx-model';
import type { ExecutionProvider } from '../session';
import { f32, i64, openSession } from '../session';

/** The graphs whose attention the fused export rewrites (the segment graph too, but it is not run here). */
export const FUSED_GRAPHS = ['denoise', 'denoise_device', 'denoise_partial', 'denoise_resident', 'forward_logits'] as const;
export type FusedGraph = (typeof FUSED_GRAPHS)[number];

export interface FusedCase {
  dir: string;
  provider: ExecutionProvider;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

/** An output as it crosses the process boundary: its type, dims and data (float32 and int64 as base64 bytes). */
export interface Wire {
  type: string;
  dims: number[];
  data: string;
}
export type GraphOutputs = Record<string, Record<string, Wire>>;

interface Dims {
  nLayers: number;
  nHeads: number;
  headDim: number;
  codeOffset: number;
  vocabSize: number;
}

function dimsOf(dir: string): Dims {
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    architecture: { nLayers: number; nHeads: number; dModel: number; vocabSize: number };
    tokens: { codeOffset: number };
  };
  const a = m.architecture;
  return { nLayers: a.nLayers, nHeads: a.nHeads, headDim: a.dModel / a.nHeads, codeOffset: m.tokens.codeOffset, vocabSize: a.vocabSize };
}

/** A small seeded generator (mulberry32): the same feeds in every process. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fixed feeds for every graph: R = 6 rows (B = 3 sequences × G = 2 branches), L = 29 positions with row 1 padded at
 * the end (the key-padding bias matters), N = 9 targets, S = 6 recomputed positions, τ = 0 (tokens must be identical),
 * and a random cache for the partial steps. The sizes differ from the exporter's example inputs (R 4, L 23, N 7, S 5),
 * so a size frozen into a graph at export would show.
 */
export function fusedFeeds(dir: string): Record<FusedGraph, Record<string, ort.Tensor>> {
  const d = dimsOf(dir);
  const [R, B, G, L, N, S, pad] = [6, 3, 2, 29, 9, 6, 4];
  const K = d.vocabSize - d.codeOffset;
  const rand = rng(7);
  const int = (n: number) => Math.floor(rand() * n);
  const real = (r: number) => (r === 1 ? L - pad : L);
  const ids: number[] = [];
  const pos: number[] = [];
  const att: number[] = [];
  for (let r = 0; r < R; r++) {
    for (let l = 0; l < L; l++) {
      const on = l < real(r);
      ids.push(on ? int(d.vocabSize) : 0);
      pos.push(on ? l : 0);
      att.push(on ? 1 : 0);
    }
  }
  // distinct positions among a row's real ones
  const pick = (r: number, n: number) => {
    const all = Array.from({ length: real(r) }, (_, i) => i);
    for (let i = all.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  };
  const targets = Array.from({ length: R }, (_, r) => pick(r, N)).flat();
  const query = Array.from({ length: R }, (_, r) => pick(r, S));
  const qi = query.flat();
  const at = (x: number[], r: number, l: number) => x[r * L + l]!;
  const full = {
    input_ids: i64(ids, [R, L]),
    position_ids: i64(pos, [R, L]),
    attention_mask: i64(att, [R, L]),
    target_positions: i64(targets, [R, N]),
    guidance_weights: f32(new Float32Array([1.5, -0.5, 1, 0, 2, -1]), [B, G]),
    vocab_range: i64([d.codeOffset, d.vocabSize], [2]),
    temperature: f32(new Float32Array(B), [B]),
    uniforms: f32(
      Float32Array.from({ length: B * N }, () => 0.001 + 0.998 * rand()),
      [B, N],
    ),
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const past = Object.fromEntries(
    kvNames('past', d.nLayers).map((name) => [name, f32(Float32Array.from({ length: R * d.nHeads * L * d.headDim }, normal), [R, d.nHeads, L, d.headDim])]),
  );
  const partial = {
    input_ids: i64(
      query.flatMap((q, r) => q.map((l) => at(ids, r, l))),
      [R, S],
    ),
    query_index: i64(qi, [R, S]),
    position_ids: i64(
      query.flatMap((q, r) => q.map((l) => at(pos, r, l))),
      [R, S],
    ),
    attention_mask: full.attention_mask,
    vocab_range: full.vocab_range,
  };
  // target n of row r recomputed by query s: its flat index r·S + s, else −1
  const source = Array.from({ length: R * N }, (_, i) => {
    const r = Math.floor(i / N);
    const s = query[r]!.indexOf(targets[i]!);
    return s < 0 ? -1 : r * S + s;
  });
  return {
    denoise: full,
    denoise_device: full,
    forward_logits: { input_ids: full.input_ids, position_ids: full.position_ids, attention_mask: full.attention_mask },
    denoise_partial: { ...partial, ...past },
    denoise_resident: {
      ...partial,
      target_source: i64(source, [R, N]),
      past_target_logits: f32(Float32Array.from({ length: R * N * K }, normal), [R, N, K]),
      ...past,
    },
  };
}

const toWire = (t: ort.Tensor): Wire => {
  const v = t.data as ArrayBufferView;
  return { type: t.type, dims: [...t.dims], data: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
};

/** Float32 values of a wired output (int64 outputs as numbers). */
export function values(w: Wire): Float32Array | number[] {
  const b = Buffer.from(w.data, 'base64');
  const bytes = new Uint8Array(b).buffer;
  if (w.type === 'float32') return new Float32Array(bytes);
  if (w.type === 'int64') return Array.from(new BigInt64Array(bytes), Number);
  throw new Error(`unexpected output type ${w.type}`);
}

/** Runs every fused-attention graph of `dir` on the case's provider, each in its own session. */
export async function runFused(c: FusedCase): Promise<GraphOutputs> {
  const feeds = fusedFeeds(c.dir);
  const out: GraphOutputs = {};
  for (const graph of FUSED_GRAPHS) {
    const { session } = await openSession(join(c.dir, `${graph}.onnx`), {
      provider: c.provider,
      allowCpuFallback: false,
      ...(c.logSeverityLevel === undefined ? {} : { logSeverityLevel: c.logSeverityLevel }),
    });
    try {
      const result = await session.run(feeds[graph]);
      out[graph] = Object.fromEntries(Object.entries(result).map(([k, t]) => [k, toWire(t)]));
    } finally {
      await session.release();
    }
  }
  return out;
}

if (require.main === module) {
  // exit once the (megabytes of) result are flushed: stdout to a pipe is asynchronous
  const say = (result: unknown, code: number) => process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(code));
  runFused(JSON.parse(process.argv[2] ?? '{}') as FusedCase).then(
    (outputs) => say({ outputs }, 0),
    (err: unknown) => say({ error: { name: (err as Error).name, message: String(err), stack: (err as Error).stack } }, 1),
  );
}

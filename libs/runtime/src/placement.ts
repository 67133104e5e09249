/**
 * What the provider itself moves between host and device, read from onnxruntime's own records (counting bytes in
 * JavaScript cannot see copies the provider inserts): the verbose session log names every copy node the session
 * inserted ("Add MemcpyToHost before <tensor>"), and the profiler records every copy node's run with its shape and
 * bytes. Used by webgpu.spec.ts and the transfer benchmark (tools/bench).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SessionPlacement {
  /** the graph file, from the session's profile prefix (`SessionOptions.profileDir`) */
  graph: string;
  /** tensors the session copies to the host: "Add MemcpyToHost before <tensor>" */
  toHost: string[];
  /** tensors it copies to the device */
  fromHost: string[];
}

/**
 * The verbose log (logSeverityLevel 0) cut into sessions: each starts at its "Session Options {" line, which names
 * its profile prefix, so sessions opened with `profileDir` are known by graph file.
 */
export function placementLog(log: string): SessionPlacement[] {
  const sessions: SessionPlacement[] = [];
  for (const line of log.split('\n')) {
    const opened = /Session Options \{.*profile_file_prefix:(\S+)/.exec(line);
    if (opened) {
      sessions.push({ graph: opened[1]!.split('/').pop()!, toHost: [], fromHost: [] });
      continue;
    }
    const copy = /Add (MemcpyToHost|MemcpyFromHost) (?:before|after) (\S+) for WebGpuExecutionProvider/.exec(line);
    if (copy && sessions.length > 0) sessions[sessions.length - 1]![copy[1] === 'MemcpyToHost' ? 'toHost' : 'fromHost'].push(copy[2]!);
  }
  return sessions;
}

export interface CopyRun {
  /** MemcpyToHost or MemcpyFromHost */
  op: string;
  /** the copied tensor's dims */
  shape: number[];
  bytes: number;
}

/** Every copy node run in one session's profile (`<graph>_<time>.json`), with its shape and bytes. */
export function profiledCopies(file: string): CopyRun[] {
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; args?: Record<string, unknown> }[];
  return events.flatMap((e) => {
    const op = e.args?.['op_name'];
    if (e.cat !== 'Node' || (op !== 'MemcpyToHost' && op !== 'MemcpyFromHost')) return [];
    const shapes = (e.args?.['output_type_shape'] ?? []) as Record<string, number[]>[];
    return [{ op, shape: Object.values(shapes[0] ?? {})[0] ?? [], bytes: Number(e.args?.['output_size'] ?? 0) }];
  });
}

/** The profiles in a directory, by graph file (each session wrote one when it was released). */
export function profiles(dir: string): Map<string, CopyRun[]> {
  const out = new Map<string, CopyRun[]>();
  for (const f of readdirSync(dir)) {
    const m = /^(.+\.onnx)_.*\.json$/.exec(f);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), ...profiledCopies(join(dir, f))]);
  }
  return out;
}

/** Whether a copied tensor has a K/V plane's layout [rows, nHeads, length, headDim]. */
export const kvShaped = (shape: number[], nHeads: number, headDim: number) => shape.length === 4 && shape[1] === nHeads && shape[3] === headDim;

/** Whether a copied tensor carries a vocabulary axis: target logits [rows or sequences, targets, K] (K > 1). */
export const logitsShaped = (shape: number[]) => shape.length === 3 && shape[2]! > 1;

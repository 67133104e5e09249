/**
 * The engine's own thread: onnxruntime-node runs a session synchronously on the calling thread, so sampling lives
 * here, never on the event loop that holds queue locks. Jobs submitted at any time join the running batch at the next
 * step (step-level batching); finished, failed and canceled jobs leave after their last step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sequence } from '@dimoo/diffusion';
import { InvalidSamplingRequest } from '@dimoo/diffusion';
import type { EngineError, EngineThreadOptions, FromThread, ToThread } from './engine-protocol';
import { ModelLoadError } from './errors';
import { encodePng } from './image';
import type { LoadedModel, TaskRequest } from './pipeline';
import { finish, loadModel, newEngine, prepare } from './pipeline';

if (!parentPort) throw new Error('engine-thread must run as a worker thread');
const port = parentPort;
const post = (m: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

export function describeError(err: unknown): EngineError {
  if (err instanceof InvalidSamplingRequest) return { name: err.name, message: err.message, field: err.field, retryable: false };
  if (err instanceof ModelLoadError) return { name: err.name, message: err.message, retryable: false };
  if (err instanceof Error) return { name: err.name, message: err.message, retryable: true };
  return { name: 'Error', message: String(err), retryable: true };
}

interface Active {
  seq: Sequence;
  startedAt: number;
  prepareMs: number;
}

async function main(options: EngineThreadOptions): Promise<void> {
  let model: LoadedModel;
  try {
    model = await loadModel(options.modelDir, { ...options.session, log: (message) => post({ type: 'log', message }) });
  } catch (err) {
    post({ type: 'failed-start', error: describeError(err) });
    return;
  }
  post({ type: 'ready', model: { name: model.manifest.name, version: model.manifest.version, checksum: model.checksum }, provider: model.model.provider });

  const engine = newEngine(model, options.maxRows);
  const active = new Map<string, Active>();
  const inbox: ToThread[] = [];
  let wake: (() => void) | null = null;
  port.on('message', (m: ToThread) => {
    inbox.push(m);
    wake?.();
  });

  const admit = async (id: string, request: TaskRequest) => {
    const t0 = performance.now();
    try {
      const seq = await prepare(model, id, request);
      active.set(id, { seq, startedAt: performance.now(), prepareMs: performance.now() - t0 });
      engine.add(seq);
    } catch (err) {
      post({ type: 'error', id, error: describeError(err) });
    }
  };

  for (;;) {
    // take every message that arrived; wait for one only when there is nothing to run
    if (inbox.length === 0 && engine.size === 0) await new Promise<void>((r) => (wake = r));
    wake = null;
    for (const m of inbox.splice(0)) {
      switch (m.type) {
        case 'submit':
          await admit(m.id, m.request);
          break;
        case 'cancel':
          if (engine.remove(m.id)) {
            active.delete(m.id);
            post({ type: 'canceled', id: m.id });
          }
          break;
        case 'shutdown':
          return;
      }
    }
    if (engine.size === 0) continue;

    const t0 = performance.now();
    const jobs = [...active.keys()];
    let report;
    try {
      report = await engine.step();
    } catch (err) {
      // a failed model call fails every job of the step; they are retried by the queue
      for (const id of jobs) {
        engine.remove(id);
        active.delete(id);
        post({ type: 'error', id, error: describeError(err) });
      }
      continue;
    }
    post({ type: 'step', stats: { jobs, calls: report.calls, stepMs: performance.now() - t0, cacheBytes: report.cacheBytes } });
    for (const [id, a] of active) post({ type: 'progress', id, step: a.seq.step, steps: a.seq.params.steps });
    for (const seq of report.finished) {
      const a = active.get(seq.id)!;
      active.delete(seq.id);
      const t1 = performance.now();
      try {
        const result = await finish(model, seq);
        if (result.kind === 'image') {
          const png = new Uint8Array(await encodePng(result.rgb));
          const timings = { prepareMs: a.prepareMs, samplingMs: t1 - a.startedAt, decodeMs: performance.now() - t1, steps: seq.step };
          post({ type: 'done', id: seq.id, output: { kind: 'image', png, width: result.width, height: result.height }, timings }, [png.buffer]);
        } else {
          const timings = { prepareMs: a.prepareMs, samplingMs: t1 - a.startedAt, decodeMs: performance.now() - t1, steps: seq.step };
          post({ type: 'done', id: seq.id, output: { kind: 'text', text: result.text }, timings });
        }
      } catch (err) {
        post({ type: 'error', id: seq.id, error: describeError(err) });
      }
    }
    // let messages in between steps
    await new Promise((r) => setImmediate(r));
  }
}

main(workerData as EngineThreadOptions).then(
  () => process.exit(0),
  (err: unknown) => {
    post({ type: 'failed-start', error: describeError(err) });
    process.exit(1);
  },
);

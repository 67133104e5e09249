/**
 * The engine's own thread: onnxruntime-node runs a session synchronously on the calling thread, so sampling lives
 * here, never on the event loop that holds queue locks. Submitted jobs are prepared, then admitted by the batch policy
 * (libs/diffusion batch-plan.ts: cost budget, wait window, continuous or static); in continuous mode they join the
 * running batch at the next step. Finished, failed and canceled jobs leave after their last step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sequence } from '@dimoo/diffusion';
import { InvalidSamplingRequest, planAdmission } from '@dimoo/diffusion';
import type { EngineError, EngineThreadOptions, FromThread, ToThread } from './engine-protocol';
import { DEFAULT_BATCH_POLICY } from './engine-protocol';
import { ModelLoadError } from './errors';
import { encodePng } from './image';
import type { LoadedModel, TaskRequest } from './pipeline';
import { finish, loadModel, newEngine, prepare, previewPng } from './pipeline';

if (!parentPort) throw new Error('engine-thread must run as a worker thread');
const port = parentPort;
const post = (m: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

export function describeError(err: unknown): EngineError {
  if (err instanceof InvalidSamplingRequest) return { name: err.name, message: err.message, field: err.field, retryable: false };
  if (err instanceof ModelLoadError) return { name: err.name, message: err.message, retryable: false };
  if (err instanceof Error) return { name: err.name, message: err.message, retryable: true };
  return { name: 'Error', message: String(err), retryable: true };
}

interface Prepared {
  id: string;
  seq: Sequence;
  /** ms timestamp: prepared and waiting for admission */
  arrivedAt: number;
  cost: number;
  prepareMs: number;
  previewEvery: number;
}

interface Active extends Prepared {
  startedAt: number;
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

  const policy = options.batch ?? DEFAULT_BATCH_POLICY;
  const engine = newEngine(model, options.maxRows);
  const waiting: Prepared[] = [];
  const active = new Map<string, Active>();
  const inbox: ToThread[] = [];
  let wake: (() => void) | null = null;
  port.on('message', (m: ToThread) => {
    inbox.push(m);
    wake?.();
  });
  const nextMessage = (timeoutMs: number | null) =>
    new Promise<void>((r) => {
      wake = r;
      if (timeoutMs !== null) setTimeout(r, Math.max(0, timeoutMs));
    });

  const prepareJob = async (id: string, request: TaskRequest) => {
    const t0 = performance.now();
    try {
      const seq = await prepare(model, id, request);
      waiting.push({ id, seq, arrivedAt: performance.now(), cost: engine.costOf(seq), prepareMs: performance.now() - t0, previewEvery: request.previewEvery ?? options.previewEvery ?? 0 });
    } catch (err) {
      post({ type: 'error', id, error: describeError(err) });
    }
  };

  const cancel = (id: string) => {
    const w = waiting.findIndex((p) => p.id === id);
    if (w >= 0) waiting.splice(w, 1);
    else if (engine.remove(id)) active.delete(id);
    else return;
    post({ type: 'canceled', id });
  };

  const sendPreview = async (a: Active) => {
    try {
      const png = await previewPng(model, a.seq);
      if (png) post({ type: 'preview', id: a.seq.id, step: a.seq.step, steps: a.seq.params.steps, png: new Uint8Array(png) });
    } catch (err) {
      post({ type: 'log', message: `preview of ${a.seq.id}: ${String(err)}` });
    }
  };

  for (;;) {
    for (const m of inbox.splice(0)) {
      switch (m.type) {
        case 'submit':
          await prepareJob(m.id, m.request);
          break;
        case 'cancel':
          cancel(m.id);
          break;
        case 'shutdown':
          return;
      }
    }

    const now = performance.now();
    const plan = planAdmission(policy, waiting, { count: engine.size, cost: engine.cost }, now);
    for (const id of plan.admit) {
      const p = waiting.splice(waiting.findIndex((w) => w.id === id), 1)[0]!;
      engine.add(p.seq);
      active.set(id, { ...p, startedAt: now });
    }
    if (engine.size === 0) {
      // idle: sleep until a message arrives or the wait window closes
      if (inbox.length === 0) await nextMessage(plan.retryInMs);
      wake = null;
      continue;
    }

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
    post({ type: 'step', stats: { jobs, calls: report.calls, stepMs: performance.now() - t0, cacheBytes: report.cacheBytes, batchCost: engine.cost, waiting: waiting.length, running: engine.size } });
    const finished = new Set(report.finished.map((s) => s.id));
    for (const [id, a] of active) {
      post({ type: 'progress', id, step: a.seq.step, steps: a.seq.params.steps });
      if (!finished.has(id) && a.previewEvery > 0 && a.seq.step % a.previewEvery === 0) await sendPreview(a);
    }
    for (const seq of report.finished) {
      const a = active.get(seq.id)!;
      active.delete(seq.id);
      const t1 = performance.now();
      const timings = () => ({ admitWaitMs: a.startedAt - a.arrivedAt, prepareMs: a.prepareMs, samplingMs: t1 - a.startedAt, decodeMs: performance.now() - t1, steps: seq.step });
      try {
        const result = await finish(model, seq);
        if (result.kind === 'image') {
          const png = new Uint8Array(await encodePng(result.rgb));
          post({ type: 'done', id: seq.id, output: { kind: 'image', png, width: result.width, height: result.height }, timings: timings() }, [png.buffer]);
        } else {
          post({ type: 'done', id: seq.id, output: { kind: 'text', text: result.text }, timings: timings() });
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

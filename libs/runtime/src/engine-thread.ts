/**
 * The engine's own thread: onnxruntime-node runs a session synchronously on the calling thread, so sampling lives
 * here, never on the event loop that holds queue locks. Submitted jobs are prepared, then admitted by the batch policy
 * (libs/diffusion batch-plan.ts: cost budget, wait window, continuous or static); in continuous mode they join the
 * running batch at the next step. Finished, failed and canceled jobs leave after their last step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SegmentRunner, Sequence } from '@dimoo/diffusion';
import { checkSegmentable, InvalidSamplingRequest, planAdmission } from '@dimoo/diffusion';
import type { EngineError, EngineThreadOptions, FromThread, ToThread } from './engine-protocol';
import { DEFAULT_BATCH_POLICY } from './engine-protocol';
import { ModelLoadError } from './errors';
import { encodePng } from './image';
import type { LoadedModel, TaskRequest } from './pipeline';
import { finish, loadModel, newEngine, prepare, previewPng } from './pipeline';
import { newSegmentRunner, OnnxSegmentModel } from './segment';
import { isGpu } from './session';

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
  /** the step of the last preview sent */
  lastPreview: number;
  /** an ML-Cache job served by the segment runner (GPU path), except for its lone full steps */
  segmentPath: boolean;
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
  const path = options.mlCachePath ?? 'auto';
  let segments: SegmentRunner | null = null;
  if (path === 'segment' || (path === 'auto' && isGpu(model.model.provider) && OnnxSegmentModel.available(model.manifest))) {
    try {
      const graph = await OnnxSegmentModel.open(options.modelDir, model.manifest, options.session);
      segments = newSegmentRunner(graph, model.manifest, options.maxRows ? { maxRows: options.maxRows } : {});
      post({ type: 'log', message: `ML-Cache jobs run on the segment path (${model.manifest.graphs.denoise_segment}, ${graph.segmentSteps} steps per run)` });
    } catch (err) {
      post({ type: 'failed-start', error: describeError(err) });
      return;
    }
  }
  const onSegmentPath = (seq: Sequence) => {
    if (!segments || seq.params.cache === null) return false;
    try {
      checkSegmentable(seq, model.manifest.segmentSteps ?? 0);
      return true;
    } catch {
      return false; // understanding, or a refresh interval longer than the graph: the host path serves it
    }
  };
  // A segment-path job's warmup steps are lone full steps (another full step follows each): the host path runs them
  // with `denoise` and fetches no cache (Sequence.leavesCache). Through `denoise_segment` a lone full step also pays for
  // the graph's unrolled, inactive partial steps: 1.3–5.5× a plain full step on an H200 (docs/performance.md, "On a
  // GPU"). The job moves to the segment runner at the full step that starts its first segment.
  const placeOnSegmentPath = (seq: Sequence) => (seq.leavesCache ? segments!.add(seq) : engine.add(seq));
  const running = () => engine.size + (segments?.size ?? 0);
  const runningCost = () => {
    let n = 0;
    for (const a of active.values()) n += a.cost;
    return n;
  };
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
      waiting.push({
        id,
        seq,
        arrivedAt: performance.now(),
        cost: engine.costOf(seq),
        prepareMs: performance.now() - t0,
        previewEvery: request.previewEvery ?? options.previewEvery ?? 0,
      });
    } catch (err) {
      post({ type: 'error', id, error: describeError(err) });
    }
  };

  const cancel = (id: string) => {
    const w = waiting.findIndex((p) => p.id === id);
    if (w >= 0) waiting.splice(w, 1);
    else if (engine.remove(id) || segments?.remove(id)) active.delete(id);
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
    const plan = planAdmission(policy, waiting, { count: running(), cost: runningCost() }, now);
    for (const id of plan.admit) {
      const p = waiting.splice(
        waiting.findIndex((w) => w.id === id),
        1,
      )[0]!;
      const segmentPath = onSegmentPath(p.seq);
      if (segmentPath) placeOnSegmentPath(p.seq);
      else engine.add(p.seq);
      active.set(id, { ...p, startedAt: now, lastPreview: 0, segmentPath });
    }
    if (running() === 0) {
      // idle: sleep until a message arrives or the wait window closes
      if (inbox.length === 0) await nextMessage(plan.retryInMs);
      wake = null;
      continue;
    }

    const t0 = performance.now();
    const jobs = [...active.keys()];
    let report;
    try {
      const host = engine.size > 0 ? await engine.step() : { calls: [], finished: [], cacheBytes: 0 };
      const before = segments?.calls.length ?? 0;
      const finishedOnGpuPath = segments && segments.size > 0 ? await segments.step() : [];
      const segmentCalls = (segments?.calls.slice(before) ?? []).map((c) => ({
        kind: 'segment' as const,
        sequences: c.sequences,
        rows: c.rows,
        length: c.length,
        positions: c.rows * c.length * c.steps,
        fullPositions: c.rows * c.length * c.steps,
        ms: c.ms,
      }));
      report = { calls: [...host.calls, ...segmentCalls], finished: [...host.finished, ...finishedOnGpuPath], cacheBytes: host.cacheBytes };
    } catch (err) {
      // a failed model call fails every job of the step; they are retried by the queue
      for (const id of jobs) {
        engine.remove(id);
        segments?.remove(id);
        active.delete(id);
        post({ type: 'error', id, error: describeError(err) });
      }
      continue;
    }
    const finished = new Set(report.finished.map((s) => s.id));
    for (const a of active.values()) {
      if (a.segmentPath && !finished.has(a.id) && a.seq.leavesCache && engine.remove(a.id)) segments!.add(a.seq);
    }
    const batchCost = [...active.values()].reduce((n, a) => n + (finished.has(a.id) ? 0 : a.cost), 0);
    post({
      type: 'step',
      stats: {
        jobs,
        calls: report.calls,
        stepMs: performance.now() - t0,
        cacheBytes: report.cacheBytes,
        batchCost,
        waiting: waiting.length,
        running: running(),
      },
    });
    for (const [id, a] of active) {
      post({ type: 'progress', id, step: a.seq.step, steps: a.seq.params.steps });
      // a segment advances several steps at once: preview when a multiple of previewEvery was passed
      if (!finished.has(id) && a.previewEvery > 0 && Math.floor(a.seq.step / a.previewEvery) > Math.floor(a.lastPreview / a.previewEvery)) {
        a.lastPreview = a.seq.step;
        await sendPreview(a);
      }
    }
    for (const seq of report.finished) {
      const a = active.get(seq.id)!;
      active.delete(seq.id);
      const t1 = performance.now();
      const timings = () => ({
        admitWaitMs: a.startedAt - a.arrivedAt,
        prepareMs: a.prepareMs,
        samplingMs: t1 - a.startedAt,
        decodeMs: performance.now() - t1,
        steps: seq.step,
      });
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

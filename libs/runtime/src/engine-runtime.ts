/**
 * The engine as a service of the engine thread: the loaded model, the runners (the host engine, and on a GPU the
 * segment path) under the batch scheduler (libs/diffusion scheduler.ts), and the ONNX-side work around each step —
 * preparing a submitted job's sequence (VQ encode), preview images, decoding and encoding results. It turns the host's
 * messages into scheduler calls and the scheduler's steps into messages (engine-protocol.ts).
 */
import type { FinishedJob, SegmentRunner } from '@dimoo/diffusion';
import { BatchScheduler, DEFAULT_BATCH_POLICY, DEFAULT_PRIORITY, InvalidSamplingRequest, StepFailed } from '@dimoo/diffusion';
import { ModelLoadError } from '@dimoo/model';
import type { EngineError, EngineSubmission, EngineThreadOptions, FromThread, ToThread } from './engine-protocol';
import type { EngineJob, LoadedModel } from './pipeline';
import { encodeResult, finish, loadModel, newEngine, prepare, previewPng, releaseModel } from './pipeline';
import { newSegmentRunner, OnnxSegmentModel } from './segment';
import type { ExecutionProvider } from './session';

/** `auto` runs `denoise_segment` on the CUDA providers; on WebGPU the resident cache is the default until a GPU measurement says otherwise (docs/performance.md). */
const segmentByDefault = (p: ExecutionProvider) => p === 'cuda' || p === 'tensorrt';

export type Post = (m: FromThread, transfer?: ArrayBuffer[]) => void;

export function describeError(err: unknown): EngineError {
  if (err instanceof InvalidSamplingRequest) return { name: err.name, message: err.message, field: err.field, retryable: false };
  if (err instanceof ModelLoadError) return { name: err.name, message: err.message, retryable: false };
  if (err instanceof Error) return { name: err.name, message: err.message, retryable: true };
  return { name: 'Error', message: String(err), retryable: true };
}

/** What a scheduled job needs again when it finishes (the scheduler hands it back). */
interface JobMeta {
  job: EngineJob['job'];
  prepareMs: number;
}

export class EngineRuntime {
  private constructor(
    private readonly model: LoadedModel,
    private readonly scheduler: BatchScheduler<JobMeta>,
    private readonly options: EngineThreadOptions,
    private readonly post: Post,
    private readonly segmentGraph: OnnxSegmentModel | null = null,
  ) {}

  /** Frees the sessions before the thread ends (see `releaseModel`). */
  async release(): Promise<void> {
    await Promise.all([releaseModel(this.model), this.segmentGraph?.release()]);
  }

  /** Loads the model and its runners; throws (ModelLoadError) when the model or its provider cannot serve. */
  static async open(options: EngineThreadOptions, post: Post): Promise<EngineRuntime> {
    const path = options.mlCachePath ?? 'auto';
    const model = await loadModel(options.modelDir, {
      ...options.session,
      ...(options.verify === undefined ? {} : { verify: options.verify }),
      // the device-resident cache unless the host path is asked for (it applies on WebGPU only)
      deviceCache: path === 'resident' || path === 'auto',
      log: (message) => post({ type: 'log', message }),
    });
    const provider = model.model.provider;
    if (path === 'resident' && !model.model.residentCache) {
      const why =
        provider !== 'webgpu' ? `the ${provider} provider keeps no tensors on the device` : 'the model ships no denoise_resident, cache_gather, cache_concat';
      // a provider that fell back to CPU (allowed, and logged) serves the host path; anything else is a deployment error
      if (options.session.provider === 'webgpu' && provider === 'cpu') {
        post({ type: 'log', message: `ML_CACHE_PATH=resident: ${why}; ML-Cache jobs run on the host path` });
      } else {
        await releaseModel(model);
        throw new ModelLoadError(`ML_CACHE_PATH=resident: ${why}`);
      }
    }
    let segments: SegmentRunner | null = null;
    let graph: OnnxSegmentModel | null = null;
    if (path === 'segment' || (path === 'auto' && segmentByDefault(provider) && OnnxSegmentModel.available(model.manifest))) {
      graph = await OnnxSegmentModel.open(options.modelDir, model.manifest, options.session);
      segments = newSegmentRunner(graph, model.manifest, { keepCalls: false, ...(options.maxRows ? { maxRows: options.maxRows } : {}) });
      post({ type: 'log', message: `ML-Cache jobs run on the segment path (${model.manifest.graphs.denoise_segment}, ${graph.segmentSteps} steps per run)` });
    } else if (model.model.residentCache) {
      post({ type: 'log', message: 'ML-Cache jobs keep their K/V on the device (denoise_resident)' });
    }
    // a long-running engine keeps no call history: every step's calls go out with its stats
    const host = newEngine(model, options.maxRows, { keepCalls: false });
    const scheduler = new BatchScheduler<JobMeta>(host, segments, { policy: options.batch ?? DEFAULT_BATCH_POLICY, lengthBucket: model.manifest.lengthBucket });
    post({ type: 'ready', model: { name: model.manifest.name, version: model.manifest.version, checksum: model.checksum }, provider });
    return new EngineRuntime(model, scheduler, options, post, graph);
  }

  async handle(m: Exclude<ToThread, { type: 'shutdown' }>): Promise<void> {
    switch (m.type) {
      case 'submit':
        return this.submit(m.id, m.job);
      case 'cancel':
        if (this.scheduler.cancel(m.id)) this.post({ type: 'canceled', id: m.id });
        return;
    }
  }

  /** One scheduler step and its messages; when idle, how long the caller may sleep (null: until the next message). */
  async step(): Promise<{ idle: boolean; retryInMs: number | null }> {
    let r;
    try {
      r = await this.scheduler.step();
    } catch (err) {
      if (!(err instanceof StepFailed)) throw err;
      // a failed model call fails every job of the step; they are retried by the queue
      for (const id of err.ids) this.post({ type: 'error', id, error: describeError(err.cause) });
      return { idle: false, retryInMs: null };
    }
    if (r.idle) return r;
    const { progress, previews, finished, ...stats } = r.step;
    this.post({ type: 'step', stats });
    for (const p of progress) this.post({ type: 'progress', ...p });
    for (const seq of previews) {
      try {
        const png = await previewPng(this.model, seq);
        if (png) this.post({ type: 'preview', id: seq.id, step: seq.step, steps: seq.params.steps, png: new Uint8Array(png) });
      } catch (err) {
        this.post({ type: 'log', message: `preview of ${seq.id}: ${String(err)}` });
      }
    }
    for (const f of finished) await this.finishJob(f);
    return { idle: false, retryInMs: null };
  }

  private async submit(id: string, submission: EngineSubmission): Promise<void> {
    const t0 = performance.now();
    try {
      const seq = await prepare(this.model, id, submission);
      const { job } = submission;
      // a job without its own preview cadence takes the worker's (PREVIEW_EVERY_STEPS)
      const previewEvery = job.previewEvery ?? this.options.previewEvery ?? 0;
      const meta = { job, prepareMs: performance.now() - t0 };
      this.scheduler.submit({ seq, team: submission.team ?? '', priority: submission.priority ?? DEFAULT_PRIORITY, previewEvery, meta });
    } catch (err) {
      this.post({ type: 'error', id, error: describeError(err) });
    }
  }

  private async finishJob({ seq, meta: { job, prepareMs }, admitWaitMs, samplingMs }: FinishedJob<JobMeta>): Promise<void> {
    const t1 = performance.now();
    const timings = () => ({ admitWaitMs, prepareMs, samplingMs, decodeMs: performance.now() - t1, steps: seq.step });
    try {
      const result = await finish(this.model, seq);
      if (result.kind === 'image') {
        const { bytes, contentType, extension } = await encodeResult(job, result.rgb);
        const out = new Uint8Array(bytes);
        this.post(
          {
            type: 'done',
            id: seq.id,
            output: { kind: 'image', bytes: out, contentType, extension, width: result.width, height: result.height },
            timings: timings(),
          },
          [out.buffer],
        );
      } else {
        this.post({ type: 'done', id: seq.id, output: { kind: 'text', text: result.text }, timings: timings() });
      }
    } catch (err) {
      this.post({ type: 'error', id: seq.id, error: describeError(err) });
    }
  }
}

/**
 * Runs the engine on its own thread (engine-thread.ts) and gives the caller one promise per job. Everything the
 * engine does — VQ, sampling, PNG encoding — happens off the caller's event loop.
 */
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ModelLoadError } from '@dimoo/model';
import type { EngineError, EngineOutput, EngineSubmission, EngineThreadOptions, FromThread, JobTimings, StepStats, ToThread } from './engine-protocol';

/** A job the engine could not run. `retryable` is false for bad input: retrying cannot help. */
export class EngineJobError extends Error {
  readonly field: string | undefined;
  readonly retryable: boolean;

  constructor(e: EngineError) {
    super(e.message);
    this.name = e.name;
    this.field = e.field;
    this.retryable = e.retryable;
  }
}

export class JobCanceledError extends Error {
  constructor(id: string) {
    super(`job ${id} was canceled`);
    this.name = 'JobCanceledError';
  }
}

interface Pending {
  resolve: (r: { output: EngineOutput; timings: JobTimings }) => void;
  reject: (e: Error) => void;
  onProgress?: (step: number, steps: number) => void;
  onPreview?: (step: number, steps: number, png: Uint8Array) => void;
}

export interface RunHandlers {
  onProgress?: (step: number, steps: number) => void;
  /** a preview PNG of the job mid-sampling (masked cells grey), every `previewEvery` steps */
  onPreview?: (step: number, steps: number, png: Uint8Array) => void;
}

export interface EngineHostHooks {
  onStep?: (stats: StepStats) => void;
  onLog?: (message: string) => void;
  /**
   * The engine thread died after it was ready (a crash, not `close()`): every running job has been rejected with
   * EngineDied. The process should end and let its jobs run elsewhere.
   */
  onDeath?: (err: EngineDied) => void;
}

/** The engine thread is gone: nothing this host runs will finish. */
export class EngineDied extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EngineDied';
  }
}

export class EngineHost {
  private readonly pending = new Map<string, Pending>();
  private readonly stepListeners: ((stats: StepStats) => void)[] = [];
  private closed = false;
  private dead = false;

  private constructor(
    private readonly worker: Worker,
    readonly model: { name: string; version: string; checksum: string },
    readonly provider: string,
  ) {}

  static start(options: EngineThreadOptions, hooks: EngineHostHooks = {}): Promise<EngineHost> {
    // a compiled build ships engine-thread.js next to this file; from sources the thread registers tsx's require hook
    const file = join(__dirname, `engine-thread${extname(__filename)}`);
    const worker = file.endsWith('.ts')
      ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData: options })
      : new Worker(file, { workerData: options });
    return new Promise((resolve, reject) => {
      let host: EngineHost | null = null;
      worker.on('message', (m: FromThread) => {
        switch (m.type) {
          case 'ready':
            host = new EngineHost(worker, m.model, m.provider);
            resolve(host);
            return;
          case 'failed-start':
            reject(new ModelLoadError(m.error.message));
            return;
          case 'log':
            hooks.onLog?.(m.message);
            return;
          case 'step':
            hooks.onStep?.(m.stats);
            for (const l of host?.stepListeners ?? []) l(m.stats);
            return;
          case 'progress':
          case 'preview':
          case 'done':
          case 'error':
          case 'canceled':
            host?.settle(m);
            return;
        }
      });
      const die = (err: EngineDied) => {
        if (!host || host.dead) return;
        host.dead = true;
        host.failAll(err);
        if (!host.closed) hooks.onDeath?.(err);
      };
      worker.on('error', (err) => {
        if (!host) reject(err);
        else die(new EngineDied(`engine thread failed: ${err.message}`, { cause: err }));
      });
      worker.on('exit', (code) => {
        if (!host) reject(new ModelLoadError(`engine thread exited with code ${code} before it was ready`));
        else die(new EngineDied(`engine thread exited with code ${code}`));
      });
    });
  }

  /** Runs one job; resolves with its output, rejects with EngineJobError or JobCanceledError. */
  run(id: string, job: EngineSubmission, handlers: RunHandlers | RunHandlers['onProgress'] = {}): Promise<{ output: EngineOutput; timings: JobTimings }> {
    if (this.closed) return Promise.reject(new Error('engine host is closed'));
    if (this.dead) return Promise.reject(new EngineDied('the engine thread is gone'));
    if (this.pending.has(id)) return Promise.reject(new Error(`job ${id} is already running`));
    const h = typeof handlers === 'function' ? { onProgress: handlers } : handlers;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...h });
      this.send({ type: 'submit', id, job });
    });
  }

  /** Calls `listener` after every engine step (batch records, metrics). */
  addStepListener(listener: (stats: StepStats) => void): void {
    this.stepListeners.push(listener);
  }

  /** Asks the engine to drop a job at its next step; its run() rejects with JobCanceledError. */
  cancel(id: string): void {
    if (this.pending.has(id)) this.send({ type: 'cancel', id });
  }

  get running(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.dead) return;
    this.send({ type: 'shutdown' });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5000);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private send(m: ToThread): void {
    this.worker.postMessage(m);
  }

  private settle(m: Extract<FromThread, { id: string }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress':
        p.onProgress?.(m.step, m.steps);
        return;
      case 'preview':
        p.onPreview?.(m.step, m.steps, m.png);
        return;
      case 'done':
        this.pending.delete(m.id);
        p.resolve({ output: m.output, timings: m.timings });
        return;
      case 'error':
        this.pending.delete(m.id);
        p.reject(new EngineJobError(m.error));
        return;
      case 'canceled':
        this.pending.delete(m.id);
        p.reject(new JobCanceledError(m.id));
        return;
    }
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(err);
    }
  }
}

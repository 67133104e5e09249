/**
 * The WebGPU side of webgpu.spec.ts, run in a child process: onnxruntime-node aborts the whole process on some WebGPU
 * misuses (reading a device tensor's data), so an abort fails one test, not the test runner. Usage:
 *
 *   node -r tsx/cjs libs/runtime/src/webgpu/child.ts '<case as JSON>'
 *
 * It prints `RESULT <json>` as its last stdout line; onnxruntime's own log goes to stderr.
 */
import { join } from 'node:path';
import { loadManifest } from '@dimoo/model';
import { EngineHost } from '../engine-host';
import { loadModel, releaseModel } from '../pipeline';
import type { LoadedModel } from '../pipeline';
import { newEngine, prepare } from '../pipeline';
import { openSession } from '../session';
import type { SessionOptions } from '../session';
import { TEST_MODEL_DIR } from '../testing/model-dir';
import { inlineJob } from '../testing/requests';
import { caption, loadWorld } from '../testing/toy-world';
import type { Scenario } from './scenarios';
import { mixedBatch, runBatch } from './scenarios';

export type ChildCase =
  /** can a WebGPU session open here? */
  | { kind: 'probe' }
  /**
   * the scenario's mixed batch on WebGPU: tokens, calls, device ledger; with `trace` (a directory) every session logs
   * at verbose level (stderr) and writes its profile there
   */
  | { kind: 'batch'; scenario: Scenario; trace?: string }
  /** jobs joining and leaving a running engine one after another: the device ledger after every step */
  | { kind: 'memory'; jobs: number; slots: number }
  /** opening with the webgpu provider: refused, or (fallback) on CPU */
  | { kind: 'open'; allowCpuFallback: boolean }
  /** the worker's engine thread (EngineHost) on EXECUTION_PROVIDER=webgpu, ML_CACHE_PATH=auto: one cached job */
  | { kind: 'host' };

const manifestOf = () => loadManifest(TEST_MODEL_DIR, { verify: false });
const say = (result: unknown) => process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);

async function webgpuModel(trace?: string): Promise<LoadedModel> {
  const options: SessionOptions = { provider: 'webgpu', allowCpuFallback: false, ...(trace ? { logSeverityLevel: 0 as const, profileDir: trace } : {}) };
  const m = await loadModel(TEST_MODEL_DIR, { ...options, verify: false });
  if (m.model.provider !== 'webgpu' || !m.model.residentCache) throw new Error(`not on the resident WebGPU path: ${m.model.provider}`);
  return m;
}

async function main(c: ChildCase): Promise<unknown> {
  switch (c.kind) {
    case 'probe': {
      const { session } = await openSession(join(TEST_MODEL_DIR, 'vq_decode.onnx'), { provider: 'webgpu', allowCpuFallback: false });
      await session.release();
      return { ok: true };
    }
    case 'open': {
      const logs: string[] = [];
      try {
        const { session, provider } = await openSession(join(TEST_MODEL_DIR, 'vq_decode.onnx'), {
          provider: 'webgpu',
          allowCpuFallback: c.allowCpuFallback,
          log: (m) => logs.push(m),
        });
        await session.release();
        return { provider, logs };
      } catch (err) {
        return { error: { name: (err as Error).name, message: String(err) }, logs };
      }
    }
    case 'host': {
      const world = await loadWorld(TEST_MODEL_DIR);
      const logs: string[] = [];
      const host = await EngineHost.start(
        { modelDir: TEST_MODEL_DIR, verify: false, session: { provider: 'webgpu', allowCpuFallback: false }, mlCachePath: 'auto' },
        { onLog: (m) => logs.push(m) },
      );
      try {
        const [request] = mixedBatch(world, { temperature: 1, cache: true });
        const { output } = await host.run('h0', inlineJob(await manifestOf(), request!));
        return {
          provider: host.provider,
          logs,
          output: { kind: output.kind, ...(output.kind === 'image' ? { width: output.width, height: output.height } : {}) },
        };
      } finally {
        await host.close();
      }
    }
    case 'batch': {
      const world = await loadWorld(TEST_MODEL_DIR);
      const m = await webgpuModel(c.trace);
      const t0 = performance.now();
      const r = await runBatch(m, world, c.scenario);
      const ms = performance.now() - t0;
      const device = { tensors: m.model.device.tensors, bytes: m.model.device.bytes };
      const result = { tokens: r.tokens, calls: r.calls, deviceCalls: m.model.deviceCalls, device, traffic: m.model.traffic, ms };
      await releaseModel(m);
      return result;
    }
    case 'memory': {
      const world = await loadWorld(TEST_MODEL_DIR);
      const m = await webgpuModel();
      const base = mixedBatch(world, { temperature: 1, cache: true });
      const request = (i: number) => {
        const r = base[i % base.length]!;
        // a different prompt or question and seed per job; the task mix of the scenario
        return r.task === 't2i'
          ? {
              ...r,
              prompt: caption(world, { colour: world.colourOrder[i % 6]!, shape: world.shapes[i % 3]!, position: world.positionOrder[i % 9]! }),
              seed: 1000 + i,
            }
          : { ...r, seed: 1000 + i };
      };
      const engine = newEngine(m, undefined, { keepCalls: false });
      const perStep: { tensors: number; bytes: number; running: number }[] = [];
      const afterJob: number[] = [];
      let next = 0;
      let partial = 0;
      while (next < c.jobs || engine.size > 0) {
        // keep `slots` jobs running: one joins as soon as one leaves (continuous batching, mixed phases)
        while (engine.size < c.slots && next < c.jobs) {
          engine.add(await prepare(m, `m${next}`, inlineJob(m.manifest, request(next))));
          next++;
        }
        const report = await engine.step();
        partial += report.calls.filter((k) => k.kind === 'partial').length;
        perStep.push({ tensors: m.model.device.tensors, bytes: m.model.device.bytes, running: engine.size });
        for (let i = 0; i < report.finished.length; i++) afterJob.push(m.model.device.tensors);
      }
      const result = { perStep, afterJob, partial, deviceCalls: m.model.deviceCalls, rss: process.memoryUsage().rss };
      await releaseModel(m);
      return result;
    }
  }
}

main(JSON.parse(process.argv[2] ?? '{}') as ChildCase).then(
  (result) => {
    say(result);
    process.exit(0);
  },
  (err: unknown) => {
    say({ error: { name: (err as Error).name, message: String(err), stack: (err as Error).stack } });
    process.exit(1);
  },
);

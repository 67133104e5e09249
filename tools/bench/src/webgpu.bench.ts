/**
 * npm run bench:webgpu — bytes between host and device per engine step on onnxruntime-node's WebGPU provider, with
 * the ML-Cache kept on the device (`resident`: denoise_device, sample_head_device, denoise_resident, cache_gather,
 * cache_concat) against the K/V kept in host memory (`host`: the CPU path's HostKvCache on the same provider, its K/V
 * read back after each cached full step and fed again to every partial step). Both runs: the same t2i batch (guidance
 * on, τ = 1, the manifest's cache settings), on the tiny model. Two counts each:
 *  - what the runtime feeds and fetches (its `traffic`: host tensors; device tensors fed or kept count nothing);
 *  - what the provider copies by itself (its profile's MemcpyToHost / MemcpyFromHost nodes): on the host path the
 *    exact draw's float64 part runs on the CPU (WebGPU has no f64), so its [B, N, K] inputs cross; the resident path
 *    draws with the float32 device rule (§3.1).
 * A correctness device (lavapipe) gives the bytes, not the speed; the times printed are lavapipe's.
 *
 *   XDG_RUNTIME_DIR=<a writable dir> npm run bench:webgpu            (BENCH_BATCH=4, BENCH_STEPS=16)
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LocalRequest } from '@dimoo/contracts';
import { DiffusionEngine } from '@dimoo/diffusion';
import { loadModel, prepare, profiles, releaseModel, resolveLocal } from '@dimoo/runtime';

const MODEL_DIR = process.env['DIMOO_MODEL_DIR'] ?? resolve(__dirname, '../../../models/tiny');
const PROMPTS = ['a red circle at the top left', 'a blue square at the center', 'a green triangle at the bottom right', 'a yellow circle at the right'];

interface Figures {
  mode: string;
  steps: number;
  calls: Record<string, number>;
  /** per engine step: bytes the runtime fed (host → device) and fetched (device → host) */
  fed: number;
  fetched: number;
  /** per engine step: bytes the provider copied by itself */
  providerToHost: number;
  providerFromHost: number;
  /** the K/V planes of one cached group (what the host path moves) */
  kvBytes: number;
  ms: number;
}

async function measure(mode: 'resident' | 'host', batch: number, steps: number): Promise<Figures> {
  const trace = mkdtempSync(join(tmpdir(), `dimoo-bench-${mode}-`));
  const m = await loadModel(MODEL_DIR, { provider: 'webgpu', allowCpuFallback: false, deviceCache: mode === 'resident', profileDir: trace, verify: false });
  if (m.model.provider !== 'webgpu' || m.model.residentCache !== (mode === 'resident')) throw new Error(`not on the ${mode} path`);
  const reqs: LocalRequest[] = Array.from({ length: batch }, (_, i) => ({
    task: 't2i',
    prompt: PROMPTS[i % PROMPTS.length]!,
    seed: 1 + i,
    steps,
    cfg: 1,
    temperature: 1,
    cache: true,
  }));
  const seqs = await Promise.all(reqs.map((r, i) => prepare(m, `b${i}`, resolveLocal(m.manifest, r))));
  const engine = new DiffusionEngine(m.model, { lengthBucket: m.manifest.lengthBucket, maxRows: m.manifest.limits.maxBatchRows });
  for (const s of seqs) engine.add(s);
  const before = { ...m.model.traffic };
  let n = 0;
  let kvBytes = 0;
  const t0 = performance.now();
  while (engine.size > 0) {
    const report = await engine.step();
    kvBytes = Math.max(kvBytes, report.cacheBytes);
    n++;
  }
  const ms = performance.now() - t0;
  const calls: Record<string, number> = {};
  for (const c of engine.calls) calls[c.kind] = (calls[c.kind] ?? 0) + 1;
  const traffic = { fed: m.model.traffic.bytesIn - before.bytesIn, fetched: m.model.traffic.bytesOut - before.bytesOut };
  await releaseModel(m); // each session writes its profile now
  // the provider's copies of the denoising graphs (the VQ's prepare-time copies are not steps)
  const copies = [...profiles(trace)].filter(([g]) => !g.startsWith('vq_')).flatMap(([, c]) => c);
  const sum = (op: string) => copies.filter((c) => c.op === op).reduce((s, c) => s + c.bytes, 0);
  return {
    mode,
    steps: n,
    calls,
    fed: traffic.fed / n,
    fetched: traffic.fetched / n,
    providerToHost: sum('MemcpyToHost') / n,
    providerFromHost: sum('MemcpyFromHost') / n,
    kvBytes,
    ms,
  };
}

const kb = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

async function main(): Promise<void> {
  if (!process.env['XDG_RUNTIME_DIR']) {
    // Dawn wants a runtime directory; set before the first WebGPU session (this is the main thread: the real environment)
    const dir = join(tmpdir(), `dimoo-xdg-${process.pid}`);
    mkdirSync(dir, { mode: 0o700, recursive: true });
    process.env['XDG_RUNTIME_DIR'] = dir;
  }
  const batch = Number(process.env['BENCH_BATCH'] ?? 4);
  const steps = Number(process.env['BENCH_STEPS'] ?? 16);
  const results = [await measure('host', batch, steps), await measure('resident', batch, steps)];
  const out = [
    `WebGPU host↔device bytes per engine step — tiny model, t2i batch ${batch} (cfg 1: ${2 * batch} rows), ${steps} steps, τ = 1, ${new Date().toISOString()}`,
  ];
  out.push('mode      calls                          runtime fed  runtime fetched  provider →host  provider ←host  total/step   lavapipe');
  for (const r of results) {
    const total = r.fed + r.fetched + r.providerToHost + r.providerFromHost;
    out.push(
      `${r.mode.padEnd(9)} ${JSON.stringify(r.calls).padEnd(30)} ${kb(r.fed).padStart(11)}  ${kb(r.fetched).padStart(15)}  ${kb(r.providerToHost).padStart(14)}  ${kb(r.providerFromHost).padStart(14)}  ${kb(total).padStart(10)}  ${(r.ms / 1000).toFixed(1)} s`,
    );
  }
  const [host, resident] = results as [Figures, Figures];
  out.push(
    `K/V + target logits of the batch's cache: ${kb(resident.kvBytes)}; runtime bytes per step: host path ${kb(host.fed + host.fetched)}, resident ${kb(resident.fed + resident.fetched)} (${((host.fed + host.fetched) / (resident.fed + resident.fetched)).toFixed(1)}× less)`,
  );
  console.log(out.join('\n'));
  console.log(JSON.stringify({ batch, steps, results }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

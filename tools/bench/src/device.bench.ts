/**
 * The GPU kit's measurement entry (bundled into one .cjs by tools/bench/gpu-kit/pack.sh; run there by device.sh with
 * the kit's own node and onnxruntime-node). Drives the runtime (`OnnxDenoiseModel`) directly with synthetic ids:
 *
 *   node device-bench.cjs parity [--model models/tiny] [--out parity.json]
 *     the tiny model's mixed batch (every task, guidance) on the CPU provider and on WebGPU with the resident cache:
 *     uncached at τ = 0 and cached at τ = 1, tokens compared (agreement per job and overall)
 *   node device-bench.cjs steps --model DIR [--provider webgpu|cpu] [--sizes 256,512,1024] [--batches 1,4,16]
 *                         [--repeats 3] [--case-budget-s 60] [--budget-s 240] [--out steps.json] [--prompt 100] [--no-full 1]
 *     per size and batch: ms per full step (denoise_device, cache kept on the device), per partial step
 *     (denoise_resident at cache ratio 0.9) and per draw (sample_head_device); the ML-Cache speed-up per image of a
 *     64-step job under libs/diffusion's cache schedule. The JSON is rewritten after every case. Where a full step fails
 *     (or with --no-full 1) the partial step and the draw run on a cache seeded from host zeros.
 *   node device-bench.cjs graphs --model DIR [--provider cpu] [--length 24] [--out graphs.json]
 *     the raw resident graphs (denoise_device, then denoise_resident fed its cache) at a tiny sequence: proves that
 *     a weightless export, once filled, opens and runs (on the CPU provider here, where the resident path is not used)
 *
 * Sequences are laid out as tools/bench/gpu_engine.py does (two rows per sequence: conditional prompt P, unconditional
 * P·2/3; prompt + [boa, boi] + grid × (grid masks + row end) + [eoi, eoa]; padded to a multiple of 16; N = grid² targets)
 * so the PyTorch figures of the same run compare.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ModelManifest } from '@dimoo/contracts';
import type { CacheHandle, FullStepInput, PartialStepInput } from '@dimoo/diffusion';
import { isFullStep } from '@dimoo/diffusion';
import * as ort from 'onnxruntime-node';
import type { ExecutionProvider } from '@dimoo/runtime';
import { DeviceKvCache, f32, i64, kvNames, loadModel, OnnxDenoiseModel, releaseModel } from '@dimoo/runtime';
import { loadWorld, runBatch } from '@dimoo/runtime/testing';

type Args = Record<string, string>;

function parseArgs(argv: string[]): { mode: string; args: Args } {
  const [mode = 'steps', ...rest] = argv;
  const args: Args = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    args[a.slice(2)] = rest[i + 1] ?? '';
    i++;
  }
  return { mode, args };
}

const list = (s: string) => s.split(',').filter(Boolean).map(Number);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const write = (path: string | undefined, data: unknown) => path && writeFileSync(path, `${JSON.stringify(data, null, 1)}\n`);
const log = (m: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`);
/** onnxruntime's log level (DIMOO_ORT_LOG, default 3: errors; 2 adds the node-placement warnings, 0 every placement and copy) */
const ORT_LOG = Number(process.env['DIMOO_ORT_LOG'] ?? 3) as 0 | 1 | 2 | 3 | 4;
const errText = (e: unknown) => String(e instanceof Error ? e.message : e).slice(0, 600);

// ----------------------------------------------------------------------------------------------------------- parity

async function parity(args: Args): Promise<void> {
  const dir = resolve(args['model'] ?? 'models/tiny');
  const world = await loadWorld(dir);
  const report: Record<string, unknown> = { mode: 'parity', model: dir, started: new Date().toISOString(), scenarios: [] };
  for (const scenario of [
    { temperature: 0, cache: false },
    { temperature: 1, cache: true },
  ]) {
    const side = async (provider: ExecutionProvider) => {
      const m = await loadModel(dir, { provider, allowCpuFallback: false, verify: false, logSeverityLevel: ORT_LOG });
      try {
        if (provider === 'webgpu' && (m.model.provider !== 'webgpu' || !m.model.residentCache)) {
          throw new Error(`not on the resident WebGPU path (${m.model.provider})`);
        }
        const t0 = performance.now();
        const r = await runBatch(m, world, scenario);
        return {
          tokens: r.tokens,
          calls: r.calls,
          deviceCalls: { ...m.model.deviceCalls },
          device: { tensors: m.model.device.tensors, bytes: m.model.device.bytes },
          ms: performance.now() - t0,
        };
      } finally {
        await releaseModel(m);
      }
    };
    const cpu = await side('cpu');
    const gpu = await side('webgpu');
    const jobs = cpu.tokens.map((t, j) => {
      const g = gpu.tokens[j]!;
      const same = t.reduce((n, v, i) => n + (v === g[i] ? 1 : 0), 0);
      return { tokens: t.length, same, identical: same === t.length && t.length === g.length };
    });
    const total = jobs.reduce((n, j) => n + j.tokens, 0);
    const same = jobs.reduce((n, j) => n + j.same, 0);
    const s = {
      scenario,
      agreement: same / total,
      identical: jobs.every((j) => j.identical),
      jobs,
      cpu: { calls: cpu.calls, ms: cpu.ms },
      webgpu: { calls: gpu.calls, deviceCalls: gpu.deviceCalls, deviceAfter: gpu.device, ms: gpu.ms },
    };
    (report['scenarios'] as unknown[]).push(s);
    log(
      `parity τ=${scenario.temperature} cache=${scenario.cache}: agreement ${(100 * s.agreement).toFixed(2)}% (${same}/${total}), identical ${s.identical}, partial steps ${gpu.calls['partial'] ?? 0}, cpu ${cpu.ms.toFixed(0)} ms, webgpu ${gpu.ms.toFixed(0)} ms`,
    );
    write(args['out'], report);
  }
}

// ------------------------------------------------------------------------------------------------------------ steps

const GUIDANCE = 4;
const IDS = { mask: 126336, newline: 126084, boi: 126349, eoi: 126350, boa: 126354, eoa: 126355, uncond: 126351 };

/** A seeded generator (xorshift32): the same ids on every run and provider. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

interface Shape {
  B: number;
  R: number;
  L: number;
  N: number;
  S: number;
  grid: number;
}

/** gpu_engine.py's t2i rows: [R, L] ids/positions/mask, [R, N] targets; S = the partial step's queries at ratio 0.9. */
function t2iBatch(manifest: ModelManifest, B: number, grid: number, prompt: number, cacheRatio: number, seed = 1) {
  const rand = rng(seed + B);
  const rows: number[][] = [];
  const targets: number[][] = [];
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < 2; g++) {
      const P = g === 0 ? prompt : Math.round((prompt * 2) / 3);
      const row = Array.from({ length: P }, () => 1000 + Math.floor(rand() * 125000));
      if (g === 1) row[P - 1] = IDS.uncond;
      row.push(IDS.boa, IDS.boi);
      const t: number[] = [];
      for (let y = 0; y < grid; y++) {
        for (let x = 0; x < grid; x++) {
          t.push(row.length);
          row.push(IDS.mask);
        }
        row.push(IDS.newline);
      }
      row.push(IDS.eoi, IDS.eoa);
      rows.push(row);
      targets.push(t);
    }
  }
  const R = 2 * B;
  const L = Math.ceil(Math.max(...rows.map((r) => r.length)) / 16) * 16;
  const N = grid * grid;
  const inputIds = new Int32Array(R * L);
  const positionIds = new Int32Array(R * L);
  const attentionMask = new Int32Array(R * L);
  rows.forEach((r, i) =>
    r.forEach((v, j) => {
      inputIds[i * L + j] = v;
      positionIds[i * L + j] = j;
      attentionMask[i * L + j] = 1;
    }),
  );
  const { codeOffset, codebookSize } = manifest.tokens;
  const vocab = [codeOffset, codeOffset + codebookSize] as const;
  const full: FullStepInput = {
    rows: R,
    length: L,
    inputIds,
    positionIds,
    attentionMask,
    sequences: B,
    branches: 2,
    targets: N,
    targetPositions: Int32Array.from(targets.flat()),
    guidanceWeights: Float32Array.from({ length: 2 * B }, (_, i) => (i % 2 ? -GUIDANCE : 1 + GUIDANCE)),
    vocab,
    temperature: new Float32Array(B).fill(1),
    uniforms: Float32Array.from({ length: B * N }, () => 0.001 + 0.998 * rand()),
    withCache: true,
  };
  // the partial step: each row recomputes ~10% of its real positions (cache ratio 0.9), some of them targets
  const S = Math.max(1, Math.ceil((1 - cacheRatio) * Math.max(...rows.map((r) => r.length))));
  const queryIndex = new Int32Array(R * S);
  const queryCounts = new Int32Array(R);
  rows.forEach((r, i) => {
    const n = Math.max(1, Math.ceil((1 - cacheRatio) * r.length));
    queryCounts[i] = n;
    const stride = r.length / n;
    for (let s = 0; s < S; s++) queryIndex[i * S + s] = Math.min(r.length - 1, Math.floor((s % n) * stride + stride / 2));
  });
  const partial = (cache: CacheHandle): PartialStepInput => ({
    cache,
    rows: R,
    length: L,
    queries: S,
    inputIds: Int32Array.from(queryIndex, (q, k) => inputIds[Math.floor(k / S) * L + q]!),
    queryIndex,
    queryCounts,
    positionIds: queryIndex,
    attentionMask,
    vocab,
  });
  const shape: Shape = { B, R, L, N, S, grid };
  return { full, partial, shape, vocab };
}

/** The 64-step job under the manifest's cache settings: full and partial step counts (libs/diffusion/src/cache-policy.ts). */
function schedule(manifest: ModelManifest, steps = 64) {
  const cache = manifest.defaults.cache;
  let full = 0;
  for (let s = 0; s < steps; s++) if (isFullStep(s, steps, cache)) full++;
  return { steps, full, partial: steps - full, cache };
}

interface Timing {
  ms: number;
  all: number[];
}

/** warmup + repeats of fn, median; stops repeating once the case's deadline is near. */
async function timed(fn: () => Promise<void>, repeats: number, deadline: number): Promise<Timing> {
  const all: number[] = [];
  let t = performance.now();
  await fn(); // warmup (shader compilation, buffer pools)
  const first = performance.now() - t;
  for (let i = 0; i < repeats; i++) {
    if (i > 0 && performance.now() + median(all.length ? all : [first]) > deadline) break;
    t = performance.now();
    await fn();
    all.push(performance.now() - t);
  }
  return { ms: Math.round(median(all) * 1000) / 1000, all: all.map((x) => Math.round(x * 100) / 100) };
}

/**
 * A device cache made from host zeros by a separate `denoise_resident` session (its cache outputs on the device), for
 * when the full step itself does not fit: the partial step and the draw are still measured.
 */
function openSeeder(dir: string, manifest: ModelManifest): Promise<ort.InferenceSession> {
  const present = kvNames('present', manifest.architecture.nLayers);
  return ort.InferenceSession.create(join(dir, manifest.graphs.denoise_resident!), {
    executionProviders: ['webgpu'],
    logSeverityLevel: ORT_LOG,
    preferredOutputLocation: Object.fromEntries(['present_target_logits', ...present].map((n) => [n, 'gpu-buffer' as const])),
  });
}

async function seededCache(session: ort.InferenceSession, manifest: ModelManifest, model: OnnxDenoiseModel, x: ReturnType<typeof t2iBatch>) {
  const { nLayers, nHeads, dModel } = manifest.architecture;
  const { R, L, N, S } = x.shape;
  const K = x.vocab[1] - x.vocab[0];
  const present = kvNames('present', nLayers);
  const p = x.partial(null as unknown as CacheHandle);
  const plane = new Float32Array(R * L * dModel);
  const out = await session.run({
    input_ids: i64(p.inputIds, [R, S]),
    query_index: i64(p.queryIndex, [R, S]),
    position_ids: i64(p.positionIds, [R, S]),
    attention_mask: i64(x.full.attentionMask, [R, L]),
    vocab_range: i64(x.vocab, [2]),
    target_source: i64(new Int32Array(R * N).fill(-1), [R, N]),
    past_target_logits: f32(new Float32Array(R * N * K), [R, N, K]),
    ...Object.fromEntries(kvNames('past', nLayers).map((n) => [n, f32(plane, [R, nHeads, L, dModel / nHeads])])),
  });
  out['row_max']?.dispose();
  const state = { kv: present.map((n) => out[n]!), logits: out['present_target_logits']! };
  return new DeviceKvCache({ nLayers, nHeads, dModel }, x.shape.B, 2, L, N, K, state, new Float32Array(R * L), x.full.targetPositions, model.device);
}

async function steps(args: Args): Promise<void> {
  const dir = resolve(args['model'] ?? 'models/tiny');
  const provider = (args['provider'] ?? 'webgpu') as ExecutionProvider;
  const sizes = list(args['sizes'] ?? '256,512,1024');
  const batches = list(args['batches'] ?? '1,4,16');
  const repeats = Number(args['repeats'] ?? 3);
  const caseBudget = Number(args['case-budget-s'] ?? 60) * 1000;
  const prompt = Number(args['prompt'] ?? 100);
  const start = performance.now();
  const end = start + Number(args['budget-s'] ?? 240) * 1000;
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ModelManifest;
  const job = schedule(manifest);
  const report: Record<string, unknown> = {
    mode: 'steps',
    model: dir,
    provider,
    architecture: manifest.architecture,
    job,
    started: new Date().toISOString(),
    cases: [] as unknown[],
  };
  const cases = report['cases'] as Record<string, unknown>[];
  const t0 = performance.now();
  const model = await OnnxDenoiseModel.open(dir, manifest, { provider, allowCpuFallback: false, deviceCache: true, log, logSeverityLevel: ORT_LOG });
  const openMs = Math.round(performance.now() - t0);
  report['openMs'] = openMs;
  report['resident'] = model.residentCache;
  log(`opened ${dir} on ${model.provider} (resident cache ${model.residentCache}) in ${openMs} ms; job: ${job.full} full + ${job.partial} partial steps`);
  write(args['out'], report);
  // opened on the first full step that does not fit (its own copy of the weights)
  let seeder: Promise<ort.InferenceSession> | undefined;
  try {
    for (const size of sizes) {
      // a batch whose full (or partial) step failed: the larger ones at this size skip that kind of step
      let fullFailedAt = args['no-full'] === '1' ? 0 : Infinity;
      let partialFailedAt = Infinity;
      for (const B of batches) {
        const grid = size / 16;
        const x = t2iBatch(manifest, B, grid, prompt, manifest.defaults.cache.cacheRatio);
        const c: Record<string, unknown> = { size, ...x.shape, status: 'ok' };
        cases.push(c);
        const now = performance.now();
        if (B > fullFailedAt && B > partialFailedAt) {
          Object.assign(c, { status: 'skipped', note: `B=${Math.max(fullFailedAt, partialFailedAt)} failed at this size` });
          continue;
        }
        if (now > end) {
          Object.assign(c, { status: 'skipped', note: 'run budget spent' });
          write(args['out'], report);
          continue;
        }
        const deadline = Math.min(end, now + caseBudget);
        log(`case ${size}² B=${B}: R=${x.shape.R} L=${x.shape.L} N=${x.shape.N} S=${x.shape.S}`);
        let cache: CacheHandle | undefined;
        const errors: string[] = [];
        try {
          if (B > fullFailedAt) throw new Error(`skipped: the full step failed at B=${fullFailedAt}`);
          // full step (denoise_device): the previous step's cache is released, as the engine does
          const full = await timed(
            async () => {
              const out = await model.fullStep(x.full);
              if (cache) model.releaseCache(cache);
              cache = out.cache;
            },
            repeats,
            deadline,
          );
          c['fullMs'] = full.ms;
          c['fullAll'] = full.all;
        } catch (e) {
          errors.push(`full: ${errText(e)}`);
          c['status'] = 'full step failed';
          fullFailedAt = Math.min(fullFailedAt, B);
        }
        try {
          if (B > partialFailedAt) throw new Error(`skipped: the partial step failed at B=${partialFailedAt}`);
          if (!cache && model.residentCache && performance.now() < deadline) {
            seeder ??= openSeeder(dir, manifest);
            cache = await seededCache(await seeder, manifest, model, x);
            c['cacheSeeded'] = 'from host zeros (the full step failed)';
          }
          if (cache) {
            const held = cache;
            const partial = await timed(() => model.partialStep(x.partial(held)), repeats, deadline);
            c['partialMs'] = partial.ms;
            c['partialAll'] = partial.all;
            const masked = Array.from({ length: x.shape.B }, () => Array.from({ length: x.shape.N }, (_, n) => n));
            const draw = await timed(
              async () => {
                await model.sampleCached({
                  cache: held,
                  sequences: x.shape.B,
                  branches: 2,
                  targets: x.shape.N,
                  masked,
                  guidanceWeights: x.full.guidanceWeights,
                  temperature: x.full.temperature,
                  uniforms: x.full.uniforms,
                });
              },
              repeats,
              deadline,
            );
            c['drawMs'] = draw.ms;
            c['drawAll'] = draw.all;
            c['cacheBytes'] = held.bytes;
          }
        } catch (e) {
          errors.push(`partial/draw: ${errText(e)}`);
          c['status'] = c['status'] === 'ok' ? 'partial step failed' : 'failed';
          partialFailedAt = Math.min(partialFailedAt, B);
        } finally {
          if (cache) model.releaseCache(cache);
          c['deviceTensorsAfter'] = model.device.tensors;
        }
        if (errors.length) c['errors'] = errors;
        const fullMs = c['fullMs'] as number | undefined;
        const partialMs = c['partialMs'] as number | undefined;
        const drawMs = c['drawMs'] as number | undefined;
        if (fullMs !== undefined && partialMs !== undefined && drawMs !== undefined) {
          const plain = job.steps * fullMs;
          const cached = job.full * fullMs + job.partial * (partialMs + drawMs);
          Object.assign(c, {
            jobMsNoCache: Math.round(plain),
            jobMsCached: Math.round(cached),
            cacheSpeedup: Math.round((plain / cached) * 1000) / 1000,
            partialOverFull: Math.round(((partialMs + drawMs) / fullMs) * 1000) / 1000,
            imagesPerSecCached: Math.round(((1000 * B) / cached) * 1000) / 1000,
          });
        }
        log(
          `  ${String(c['status'])}: full ${fullMs?.toFixed(1) ?? '-'} ms, partial ${partialMs?.toFixed(1) ?? '-'} ms, draw ${drawMs?.toFixed(1) ?? '-'} ms` +
            (c['cacheSpeedup'] ? `, ML-Cache ×${c['cacheSpeedup'] as number} per image (64 steps)` : '') +
            (errors.length ? `  [${errors.join(' | ')}]` : ''),
        );
        write(args['out'], report);
      }
    }
  } finally {
    report['totalMs'] = Math.round(performance.now() - start);
    write(args['out'], report);
    await model.release();
    await (await seeder?.catch(() => undefined))?.release();
  }
}

// ----------------------------------------------------------------------------------------------------------- graphs

async function graphs(args: Args): Promise<void> {
  const dir = resolve(args['model'] ?? 'models/tiny');
  const provider = args['provider'] ?? 'cpu';
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ModelManifest;
  const { nLayers, nHeads, dModel } = manifest.architecture;
  const x = t2iBatch(manifest, 1, 2, Number(args['length'] ?? 12), 0.9);
  const { R, L, N, S } = x.shape;
  const report: Record<string, unknown> = { mode: 'graphs', model: dir, provider, shape: x.shape, architecture: manifest.architecture };
  const open = async (g: string) => {
    const t0 = performance.now();
    const s = await ort.InferenceSession.create(join(dir, g), { executionProviders: [provider], logSeverityLevel: ORT_LOG });
    report[`${g}OpenMs`] = Math.round(performance.now() - t0);
    return s;
  };
  const dev = await open(manifest.graphs.denoise_device!);
  let t0 = performance.now();
  const full = await dev.run({
    input_ids: i64(x.full.inputIds, [R, L]),
    position_ids: i64(x.full.positionIds, [R, L]),
    attention_mask: i64(x.full.attentionMask, [R, L]),
    target_positions: i64(x.full.targetPositions, [R, N]),
    guidance_weights: f32(x.full.guidanceWeights, [1, 2]),
    vocab_range: i64(x.vocab, [2]),
    temperature: f32(x.full.temperature, [1]),
    uniforms: f32(x.full.uniforms, [1, N]),
  });
  report['denoiseDeviceMs'] = Math.round(performance.now() - t0);
  const tl = full['target_logits']!;
  const idx = Array.from(full['sample_index']!.data as BigInt64Array, Number);
  const finite = (t: ort.Tensor) => (t.data as Float32Array).every(Number.isFinite);
  report['denoiseDevice'] = {
    sampleIndex: idx.slice(0, 8),
    targetLogits: tl.dims,
    kv: full['present_key_0']!.dims,
    finite: finite(tl) && finite(full['row_max']!),
  };
  await dev.release();
  const res = await open(manifest.graphs.denoise_resident!);
  const p = x.partial(null as unknown as CacheHandle);
  t0 = performance.now();
  const out = await res.run({
    input_ids: i64(p.inputIds, [R, S]),
    query_index: i64(p.queryIndex, [R, S]),
    position_ids: i64(p.positionIds, [R, S]),
    attention_mask: i64(x.full.attentionMask, [R, L]),
    vocab_range: i64(x.vocab, [2]),
    target_source: i64(
      Int32Array.from({ length: R * N }, (_, i) => (i % 3 ? -1 : 0)),
      [R, N],
    ),
    past_target_logits: tl,
    ...Object.fromEntries(kvNames('past', nLayers).map((n, j) => [n, full[kvNames('present', nLayers)[j]!]!])),
  });
  report['denoiseResidentMs'] = Math.round(performance.now() - t0);
  const kv0 = out['present_key_0']!;
  report['denoiseResident'] = {
    rowMax: out['row_max']!.dims,
    kv: kv0.dims,
    heads: nHeads,
    headDim: dModel / nHeads,
    finite: finite(out['row_max']!) && finite(out['present_target_logits']!),
  };
  await res.release();
  report['ok'] = (report['denoiseDevice'] as { finite: boolean }).finite && (report['denoiseResident'] as { finite: boolean }).finite;
  log(`graphs on ${provider}: ${JSON.stringify(report)}`);
  write(args['out'], report);
  if (!report['ok']) process.exitCode = 1;
}

async function main(): Promise<void> {
  if (!process.env['XDG_RUNTIME_DIR']) {
    // Dawn wants a runtime directory (set before the first WebGPU session)
    const dir = join(tmpdir(), `dimoo-xdg-${process.pid}`);
    mkdirSync(dir, { mode: 0o700, recursive: true });
    process.env['XDG_RUNTIME_DIR'] = dir;
  }
  const { mode, args } = parseArgs(process.argv.slice(2));
  if (mode === 'parity') await parity(args);
  else if (mode === 'steps') await steps(args);
  else if (mode === 'graphs') await graphs(args);
  else throw new Error(`mode ${mode}: parity, steps or graphs`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

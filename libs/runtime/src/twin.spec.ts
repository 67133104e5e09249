/**
 * The real model's path on its scaled-down twin (tools/model/build_twin.py: the real vocabulary of 134,548, every real
 * special id and the image code offset 126,356, the hf tokenizer with BOS, the 16x VQ with 8192 codes, 2 layers of
 * d = 64 and random weights): PyTorch vs onnxruntime-node parity on the exported graphs (fp32 and fp16, max abs diff
 * reported and bounded), and every task through loadModel / prepare / DiffusionEngine / finish at 64x64 and <= 8 steps,
 * on the CPU ML-Cache path and the segment (GPU ML-Cache) path. Outputs are noise; shapes, ids, offsets and templates
 * are the real ones.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Sequence } from '@dimoo/diffusion';
import * as ort from 'onnxruntime-node';
import type { LoadedModel } from './pipeline';
import type { InlineRequest } from './testing/requests';
import { inlineJob } from './testing/requests';
import { finish, loadModel, newEngine, prepare } from './pipeline';
import { newSegmentRunner, OnnxSegmentModel } from './segment';
import { f32, i64 } from './session';
import { TWIN_DIR, twinAvailable } from './testing/twin-dir';

const run = twinAvailable() ? describe : describe.skip;

interface Fixture {
  inputs: Record<string, { shape: number[]; data: number[] }>;
  torch: {
    sample_index: number[][];
    sample_prob: number[][];
    logit_positions: number[][];
    vq_codes: number[][][];
    floats: Record<string, { offset: number; shape: number[] }>;
  };
}

const IDS = { bos: 126080, system: 126352, user: 126342, endUser: 126343, boi: 126349, eoi: 126350, newline: 126084, boa: 126354, eoa: 126355 };
const CODE_OFFSET = 126356;

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

run('the twin: PyTorch vs onnxruntime-node parity', () => {
  let fx: Fixture;
  let floats: Buffer;
  const report: Record<string, Record<string, number | boolean>> = {};
  const tensor = (name: string) => {
    const f = fx.torch.floats[name]!;
    const n = f.shape.reduce((a, b) => a * b, 1);
    return new Float32Array(floats.buffer.slice(floats.byteOffset + f.offset, floats.byteOffset + f.offset + 4 * n));
  };
  const feed = (names: string[]) =>
    Object.fromEntries(
      names.map((k) => {
        const v = fx.inputs[k]!;
        return [k, ['guidance_weights', 'temperature', 'uniforms'].includes(k) ? f32(Float32Array.from(v.data), v.shape) : i64(v.data, v.shape)];
      }),
    );

  beforeAll(async () => {
    fx = JSON.parse(await readFile(join(TWIN_DIR, 'parity', 'fixture.json'), 'utf8')) as Fixture;
    floats = await readFile(join(TWIN_DIR, 'parity', 'outputs.bin'));
  });
  afterAll(() => console.log(`twin parity (max abs diff, PyTorch fp32 vs onnxruntime-node CPU): ${JSON.stringify(report)}`));

  // fp32 graphs compute PyTorch's float32 function; fp16 graphs round weights and matmul products to float16
  it.each([
    ['fp32', 1e-4],
    ['fp16', 2e-2],
  ])('%s graphs: denoise and forward_logits logits, row max and samples', async (dtype, bound) => {
    const dir = join(TWIN_DIR, dtype);
    const den = await ort.InferenceSession.create(join(dir, 'denoise.onnx'));
    const out = await den.run(
      feed(['input_ids', 'position_ids', 'attention_mask', 'target_positions', 'guidance_weights', 'vocab_range', 'temperature', 'uniforms']),
    );
    const fwd = await ort.InferenceSession.create(join(dir, 'forward_logits.onnx'));
    const logits = (await fwd.run(feed(['input_ids', 'position_ids', 'attention_mask'])))['logits']!;
    const [R, L, V] = logits.dims as [number, number, number];
    expect(V).toBe(134548);
    const at = new Float32Array(R * 3 * V);
    const ld = logits.data as Float32Array;
    fx.torch.logit_positions.forEach((ps, r) => ps.forEach((p, j) => at.set(ld.subarray((r * L + p) * V, (r * L + p + 1) * V), (r * 3 + j) * V)));
    const att = fx.inputs['attention_mask']!.data;
    const rowMax = out['row_max']!.data as Float32Array;
    const torchRowMax = tensor('row_max');
    const valid = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => att[i] === 1);
    const scale = tensor('logits_at').reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const r = {
      logitScale: scale,
      forwardLogits: maxAbsDiff(at, tensor('logits_at')),
      targetLogits: maxAbsDiff(out['target_logits']!.data as Float32Array, tensor('target_logits')),
      rowMax: maxAbsDiff(valid(rowMax), valid(torchRowMax)),
      sampleIndexEqual: Array.from(out['sample_index']!.data as BigInt64Array, Number).every((v, i) => v === fx.torch.sample_index[0]![i]),
    };
    report[dtype] = r;
    expect(r.forwardLogits).toBeLessThanOrEqual(bound);
    expect(r.targetLogits).toBeLessThanOrEqual(bound);
    expect(r.rowMax).toBeLessThanOrEqual(bound);
    if (dtype === 'fp32') expect(r.sampleIndexEqual).toBe(true);
  });

  it('VQ graphs (fp32 in both directories): codes equal, pixels within 1e-4', async () => {
    for (const dtype of ['fp32', 'fp16']) {
      const dir = join(TWIN_DIR, dtype);
      const enc = await ort.InferenceSession.create(join(dir, 'vq_encode.onnx'));
      const dec = await ort.InferenceSession.create(join(dir, 'vq_decode.onnx'));
      const codes = (await enc.run({ pixels: f32(tensor('vq_input'), [1, 3, 64, 64]) }))['codes']!;
      expect(codes.dims).toEqual([1, 4, 4]);
      expect(Array.from(codes.data as BigInt64Array, Number)).toEqual(fx.torch.vq_codes.flat(2));
      const px = (await dec.run({ codes: i64(fx.torch.vq_codes.flat(2), [1, 4, 4]) }))['pixels']!;
      const d = maxAbsDiff(px.data as Float32Array, tensor('vq_pixels'));
      report[`vq-${dtype}`] = { pixels: d };
      expect(d).toBeLessThanOrEqual(1e-4);
    }
  });
});

run('the twin: every task through loadModel / prepare / DiffusionEngine / finish at 64x64', () => {
  let model: LoadedModel;
  const image = { width: 64, height: 64, data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 37) % 256) };
  const mask = Uint8Array.from({ length: 64 * 64 }, (_, i) => (i % 64 >= 16 && i % 64 < 48 && i >= 64 * 16 ? 1 : 0));
  const requests: [string, InlineRequest][] = [
    ['t2i', { task: 't2i', prompt: 'a red circle at the top left', height: 64, width: 64, steps: 8, cfg: 4, temperature: 1, seed: 7 }],
    [
      't2i ML-Cache',
      {
        task: 't2i',
        prompt: 'a blue square',
        height: 64,
        width: 48,
        steps: 8,
        cfg: 4,
        temperature: 1,
        seed: 8,
        cache: { cacheRatio: 0.5, warmupRatio: 0.25, refreshInterval: 2 },
      },
    ],
    ['paint', { task: 'paint', prompt: 'a green triangle', image, mask, steps: 6, cfg: 4, temperature: 1, seed: 9 }],
    ['i2i', { task: 'i2i', prompt: 'make it blue', editType: 'edit', images: [image], steps: 8, cfg: 2.5, cfgImage: 4, temperature: 1, seed: 10 }],
    ['mmu', { task: 'mmu', question: 'what colour is the shape?', image, genLength: 8, blockLength: 8, steps: 8, cfg: 0, temperature: 0, seed: 11 }],
  ];

  beforeAll(async () => {
    model = await loadModel(join(TWIN_DIR, 'fp32'), { provider: 'cpu', allowCpuFallback: false });
  });

  it('loads with the hf tokenizer checked against the manifest, real ids and BOS', () => {
    expect(model.manifest.tokenizer.kind).toBe('hf');
    expect(model.manifest.architecture.vocabSize).toBe(134548);
    expect(model.layout.codeOffset).toBe(CODE_OFFSET);
    expect(model.manifest.tokens.bos).toBe(IDS.bos);
  });

  it('builds the real templates: BOS, <system>, image block before </user>, answer block', async () => {
    const t2i = await prepare(model, 's1', inlineJob(model.manifest, requests[0]![1]));
    const [cond, uncond] = t2i.spec.branches.map((b) => Array.from(b.prefix));
    expect(cond!.slice(0, 2)).toEqual([IDS.bos, IDS.system]);
    expect(cond!.slice(-3)).toEqual([IDS.endUser, IDS.boa, IDS.boi]);
    expect(uncond!.slice(-4)).toEqual([126351, IDS.endUser, IDS.boa, IDS.boi]);
    expect(t2i.region.length).toBe(4 * 5); // 4 rows of 4 cells + newline
    const i2i = await prepare(model, 's2', inlineJob(model.manifest, requests[3]![1]));
    const p = Array.from(i2i.spec.branches[0]!.prefix);
    const boi = p.indexOf(IDS.boi);
    expect(p.slice(boi, boi + 6)).toEqual([IDS.boi, ...p.slice(boi + 1, boi + 5), IDS.newline]);
    expect(p[boi + 4 * 5 + 1]).toBe(IDS.eoi);
    expect(p[boi + 4 * 5 + 2]).toBe(IDS.endUser);
    expect(i2i.spec.branches).toHaveLength(3);
  });

  it('runs t2i, ML-Cache t2i, paint, i2i and mmu in one engine batch to valid outputs', async () => {
    const seqs: Sequence[] = [];
    for (const [id, req] of requests) seqs.push(await prepare(model, id, inlineJob(model.manifest, req)));
    await newEngine(model).run(seqs);
    for (const [i, seq] of seqs.entries()) {
      const r = await finish(model, seq);
      const [name, req] = requests[i]!;
      if (req.task === 'mmu') {
        expect(r.kind).toBe('text');
        if (r.kind !== 'text') continue;
        expect(typeof r.text).toBe('string');
        for (const t of r.tokens) expect(t >= 0 && t < CODE_OFFSET).toBe(true);
        continue;
      }
      expect(r.kind).toBe('image');
      if (r.kind !== 'image') continue;
      expect([name, r.width, r.height]).toEqual([name, req.task === 't2i' ? (req.width ?? 64) : 64, 64]);
      expect(r.rgb.data.length).toBe(r.width * r.height * 3);
      for (const c of r.codes) expect(c >= 0 && c < 8192).toBe(true);
      for (let k = 0; k < seq.region.length; k++) {
        const t = seq.region[k]!;
        expect(t === IDS.newline || (t >= CODE_OFFSET && t < CODE_OFFSET + 8192)).toBe(true);
      }
    }
    // painting keeps the known cells: the input image's codes outside the mask
    const paint = seqs[2]!;
    const known = await model.vq.encode({
      width: 64,
      height: 64,
      data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => image.data[(i % 4096) * 3 + Math.floor(i / 4096)]! / 255),
    });
    const r = await finish(model, paint);
    if (r.kind === 'image') expect(r.codes[0]).toBe(known.codes[0]);
  });

  it('the segment path (denoise_segment, one run per refresh segment) runs ML-Cache t2i on the twin', async () => {
    const segment = await OnnxSegmentModel.open(join(TWIN_DIR, 'fp32'), model.manifest, { provider: 'cpu', allowCpuFallback: false });
    const req: InlineRequest = { task: 't2i', prompt: 'a cat', height: 64, width: 64, steps: 8, cfg: 4, temperature: 0, seed: 3, cache: true };
    const host = await prepare(model, 'h', inlineJob(model.manifest, req));
    await newEngine(model).run([host]);
    const gpu = await prepare(model, 'g', inlineJob(model.manifest, req));
    await newSegmentRunner(segment, model.manifest).run([gpu]);
    expect(gpu.maskedTargets()).toHaveLength(0);
    expect(Array.from(gpu.region)).toEqual(Array.from(host.region));
  });

  it('serves from the fp16 directory too', async () => {
    const m16 = await loadModel(join(TWIN_DIR, 'fp16'), { provider: 'cpu', allowCpuFallback: false });
    const seq = await prepare(m16, 'f16', inlineJob(m16.manifest, requests[0]![1]));
    await newEngine(m16).run([seq]);
    const r = await finish(m16, seq);
    expect(r.kind === 'image' && r.width === 64 && r.height === 64).toBe(true);
  });
});

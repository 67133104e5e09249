/**
 * `dimoo local …`: a job run in-process on a model directory (the embedded tiny model by default), no service needed.
 *   local generate --prompt "a red circle at the top left" [--out out.png] [--seed 1] [--steps N] [--cfg W] [--temperature T] [--cache]
 *   local understand --image in.png --question "what colour is the shape ?"
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { LocalRequest } from '@dimoo/contracts';
import type { RgbImage } from '@dimoo/model';
import { decodeImage } from '@dimoo/model';
import { encodeResult, finish, loadModel, newEngine, prepare, releaseModel, resolveLocal } from '@dimoo/runtime';

const DEFAULT_MODEL = resolve(__dirname, '../../../models/tiny');

export async function runLocal(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string', default: process.env['DIMOO_MODEL_DIR'] ?? DEFAULT_MODEL },
      prompt: { type: 'string' },
      question: { type: 'string' },
      image: { type: 'string' },
      out: { type: 'string', default: 'out/dimoo.png' },
      seed: { type: 'string', default: '1' },
      steps: { type: 'string' },
      cfg: { type: 'string' },
      temperature: { type: 'string' },
      cache: { type: 'boolean', default: false },
    },
  });
  const given = <K extends string>(key: K, v: string | undefined) => (v === undefined ? {} : ({ [key]: Number(v) } as Record<K, number>));
  const common = {
    seed: Number(values.seed),
    ...given('steps', values.steps),
    ...given('temperature', values.temperature),
    ...given('cfg', values.cfg),
    cache: values.cache,
  };
  let request: LocalRequest;
  const images: RgbImage[] = [];
  switch (command) {
    case 'generate':
      if (!values.prompt) throw new Error('generate needs --prompt');
      request = { task: 't2i', prompt: values.prompt, ...common };
      break;
    case 'understand':
      if (!values.image || !values.question) throw new Error('understand needs --image and --question');
      request = { task: 'mmu', question: values.question, ...common };
      images.push(await decodeImage(await readFile(values.image)));
      break;
    default:
      throw new Error('usage: dimoo local generate --prompt TEXT [--out FILE] | dimoo local understand --image FILE --question TEXT');
  }
  const t0 = performance.now();
  const model = await loadModel(values.model, { provider: 'cpu', allowCpuFallback: false });
  const t1 = performance.now();
  // the same resolution of a request as the API's: defaults and limits from the model's manifest
  const job = resolveLocal(model.manifest, request, { images });
  const seq = await prepare(model, 'cli', job);
  const engine = newEngine(model);
  await engine.run([seq]);
  const result = await finish(model, seq);
  await releaseModel(model);
  const t2 = performance.now();
  const timing = `load ${(t1 - t0).toFixed(0)} ms, ${engine.calls.length} model calls, sampling+decode ${(t2 - t1).toFixed(0)} ms`;
  if (result.kind === 'image') {
    const out = resolve(values.out);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, (await encodeResult(job.job, result.rgb)).bytes);
    console.log(
      `wrote ${out} (${result.width}×${result.height}, model ${model.manifest.name} ${model.checksum.slice(0, 12)}, seed ${job.job.seed}; ${timing})`,
    );
  } else {
    console.log(`${result.text}\n(model ${model.manifest.name}; ${timing})`);
  }
}

/**
 * Every image-to-image kind of the model through the HTTP API, on the twin (the real tokenizer, ids, templates and VQ;
 * random weights): subject, control, style (two images), dense prediction and multi-view. Beyond success, each job is
 * checked for the sequence it runs: the resolved job the API stored (Postgres) and the input objects it uploaded (S3)
 * go through the runtime's `prepare`, as the worker does, and the prepared sequence must be the spec's for the kind —
 * `tok(SYS, USER)[:-1]`, the input image blocks in request order, `</user>`, `<answer><IMAGE>` — with the system and user
 * sentences written out here from the spec (§1.2), not read from the manifest. The worker's result is then the
 * same image as the local engine makes from that sequence with the job's seed, so the worker ran that sequence.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JobView } from '@dimoo/contracts';
import { parseStoredJob, StoredImagesSchema } from '@dimoo/contracts';
import type { PrismaClient } from '@dimoo/db';
import { createPrisma } from '@dimoo/db';
import { imageBlock } from '@dimoo/diffusion';
import type { RgbImage } from '@dimoo/model';
import { decodeImage, encodePng, promptIds } from '@dimoo/model';
import type { Platform } from '@dimoo/platform';
import { ADMIN_KEY, platformStore, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import type { LoadedModel } from '@dimoo/runtime';
import { encodeResult, finish, loadModel, newEngine, prepare, releaseModel, toPlanar } from '@dimoo/runtime';

const TWIN = resolve(ROOT, 'models/twin/fp32');
const built = existsSync(resolve(TWIN, 'manifest.json'));
if (!built && process.env['CI']) throw new Error(`the twin model is missing at ${TWIN} (nx run model-tools:twin builds it)`);
const run = built ? describe : describe.skip;

/** spec §1.2, verbatim */
const SYS = {
  subject: 'Generate an image according to the text prompt and the given object image.',
  control: 'Generate an image according to the text prompt and the given control image.',
  style: 'Transform the current image into the style of the provided image.',
  dense: 'Perform dense prediction on the given images.',
  multiView: 'Generate a view-image based on the given image.',
};
const IDS = { endUser: 126343, boa: 126354, boi: 126349, eoi: 126350 };

let p: Platform;
let worker: WorkerProcess;
let key: string;
let prisma: PrismaClient;
let model: LoadedModel;

async function call(method: string, path: string, k: string, body?: unknown): Promise<Response> {
  return fetch(`${p.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

async function runJob(body: unknown): Promise<JobView> {
  const res = await call('POST', '/v1/jobs', key, body);
  const view = (await res.json()) as JobView;
  if (res.status !== 202) throw new Error(`${res.status}: ${JSON.stringify(view)}`);
  for (const t0 = Date.now(); Date.now() - t0 < 120000; await sleep(100)) {
    const j = (await (await call('GET', `/v1/jobs/${view.id}`, key)).json()) as JobView;
    if (['succeeded', 'failed', 'canceled'].includes(j.status)) return j;
  }
  throw new Error(`job ${view.id} did not finish:\n${worker.output.join('')}`);
}

/** A patterned image (distinct VQ codes per colour), as the PNG a client sends. */
const pattern = (width: number, height: number, rgb: [number, number, number]): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let k = 0; k < 3; k++) data[i * 3 + k] = (rgb[k]! + 7 * (i % width) + 3 * k) % 256;
  }
  return { width, height, data };
};
const png64 = async (img: RgbImage) => (await encodePng(img)).toString('base64');

run('every image-to-image kind through API → queue → worker, with the sequence each builds', () => {
  beforeAll(async () => {
    p = await startPlatform({ modelDir: TWIN });
    worker = new WorkerProcess({ ...p.workerEnv, MODEL_DIR: TWIN });
    const team = (await (await call('POST', '/v1/teams', ADMIN_KEY, { name: 'i2i' })).json()) as { id: string };
    key = ((await (await call('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 't' })).json()) as { key: string }).key;
    prisma = createPrisma(p.db.url);
    model = await loadModel(TWIN, { provider: 'cpu', allowCpuFallback: false });
    await worker.ready();
  }, 120000);

  afterAll(async () => {
    await prisma?.$disconnect();
    if (model) await releaseModel(model);
    await worker?.kill('SIGKILL');
    await p?.close();
  });

  it('runs subject, control, style, dense and multiView; each stored job prepares its kind’s prompts and image order', async () => {
    const content = pattern(64, 64, [200, 40, 40]);
    const styleRef = pattern(64, 32, [30, 60, 220]); // another size too: the output takes the last input's
    const [a, b] = [await png64(content), await png64(styleRef)];
    const common = { task: 'i2i', steps: 4, temperature: 1 };
    const cases = [
      { body: { editType: 'subject', prompt: 'the mug on a beach', images: [a], seed: 1 }, sys: SYS.subject, user: 'the mug on a beach', images: [content] },
      { body: { editType: 'control', prompt: 'a castle at dusk', images: [a], seed: 2 }, sys: SYS.control, user: 'a castle at dusk', images: [content] },
      { body: { editType: 'style', prompt: 'in this style', images: [a, b], seed: 3 }, sys: SYS.style, user: SYS.style, images: [content, styleRef] },
      {
        body: { editType: 'dense', target: 'segmentation', images: [a], seed: 4 },
        sys: SYS.dense,
        user: 'Generate a sam2 mask according to the image.',
        images: [content],
        stored: { target: 'segmentation' },
      },
      {
        body: { editType: 'multiView', view: 'back', images: [a], seed: 5 },
        sys: SYS.multiView,
        user: 'Generate the back view based on the provided front view.',
        images: [content],
        stored: { view: 'back' },
      },
    ];
    const views = await Promise.all(cases.map((c) => runJob({ ...common, ...c.body })));
    expect(views.map((v) => v.status)).toEqual(cases.map(() => 'succeeded'));

    const store = platformStore(p);
    const block = async (img: RgbImage) => Array.from(imageBlock(model.layout, await model.vq.encode(toPlanar(img))));
    const tok = (sys: string, user: string) => Array.from(promptIds(model.tokenizer, model.manifest, sys, user));
    expect(await block(content)).not.toEqual(await block(styleRef));
    for (const [i, c] of cases.entries()) {
      const view = views[i]!;
      const row = await prisma.job.findUniqueOrThrow({ where: { id: view.id } });
      const stored = parseStoredJob(row.params);
      if (!stored.ok) throw new Error(stored.reason);
      const job = stored.job;
      if (job.task !== 'i2i') throw new Error(`stored as ${job.task}`);
      expect([c.body.editType, job.editType, job.prompt, job.target, job.view]).toEqual([
        c.body.editType,
        c.body.editType,
        c.body.prompt,
        c.stored?.target,
        c.stored?.view,
      ]);
      // the worker's way: the stored input objects, decoded, in the stored order
      const images = await Promise.all(StoredImagesSchema.parse(row.inputs).images.map(async (k) => decodeImage(await store.get(k))));
      const seq = await prepare(model, view.id, { job, images });

      const blocks = (await Promise.all(c.images.map(block))).flat();
      const withImages = (ids: number[]) => [...ids.slice(0, -1), ...blocks, ...ids.slice(-1), IDS.boa, IDS.boi];
      const [cond, uncondText, uncondImage] = seq.spec.branches.map((br) => Array.from(br.prefix));
      expect([c.body.editType, cond]).toEqual([c.body.editType, withImages(tok(c.sys, c.user))]);
      expect(uncondText).toEqual(withImages(tok(c.sys, '<uncondition>')));
      expect(uncondImage).toEqual([...tok(c.sys, c.user), IDS.boa, IDS.boi]);
      const text = model.tokenizer.decode(cond!.slice(0, cond!.indexOf(IDS.boi)));
      expect([c.body.editType, text.includes(c.sys), text.includes(c.user)]).toEqual([c.body.editType, true, true]);

      // the worker ran this sequence: its result is the image the local engine makes from it (same seed)
      await newEngine(model).run([seq]);
      const local = await finish(model, seq);
      if (local.kind !== 'image') throw new Error('expected an image');
      const last = c.images.at(-1)!;
      expect([local.width, local.height]).toEqual([last.width, last.height]);
      const served = Buffer.from(await (await call('GET', `/v1/jobs/${view.id}/result`, key)).arrayBuffer());
      expect([c.body.editType, served.equals((await encodeResult(job, local.rgb)).bytes)]).toEqual([c.body.editType, true]);
    }
  });

  it('refuses a kind without its field, or with a field it does not take, as 400 naming the field', async () => {
    const image = await png64(pattern(64, 64, [0, 128, 0]));
    const errors = async (body: Record<string, unknown>) => {
      const res = await call('POST', '/v1/jobs', key, { task: 'i2i', images: [image], ...body });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      return ((await res.json()) as { errors: { field: string; reason: string }[] }).errors;
    };
    expect(await errors({ editType: 'dense' })).toEqual([{ field: 'target', reason: 'is required for editType dense' }]);
    expect(await errors({ editType: 'multiView', view: 'back', prompt: 'turn it around' })).toEqual([
      { field: 'prompt', reason: "is not taken by editType multiView: its user prompt is the model's own for the view" },
    ]);
    expect((await errors({ editType: 'dense', target: 'sketch' })).map((e) => e.field)).toEqual(['target']);
    expect((await errors({ editType: 'subject', prompt: 'x', view: 'back' })).map((e) => e.field)).toEqual(['view']);
    expect((await errors({ editType: 'dense', target: 'depth', images: [image, image] })).map((e) => e.field)).toEqual(['images']);
  });
});

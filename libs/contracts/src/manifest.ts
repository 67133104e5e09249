/**
 * The model manifest (docs/model-interface.md §7): token ids, templates, image geometry, per-model defaults and limits,
 * graph files and checksums. Job validation, the engine's token layout and the runtime all read it.
 */
import { z } from 'zod';
import type { EditType } from './enums';
import { EDIT_TYPES } from './enums';
import { CacheSettingsSchema } from './jobs';

const id = z.number().int().nonnegative();
const fileName = z.string().regex(/^[\w.-]+$/, 'a plain file name inside the model directory');

/** The system prompts a model serves: text-to-image (painting too), understanding, and one per image-to-image kind. */
export const SYS_PROMPTS = ['t2i', 'mmu', ...EDIT_TYPES] as const;
export type SysPrompt = 't2i' | 'mmu' | EditType;
const sysPrompts = z.object(Object.fromEntries(SYS_PROMPTS.map((k) => [k, z.string()])) as Record<SysPrompt, z.ZodString>);

/** The graphs of the device-resident ML-Cache (docs/model-interface.md §4.7): a model ships all of them or none. */
export const RESIDENT_CACHE_GRAPHS = ['denoise_device', 'sample_head_device', 'denoise_resident', 'cache_gather', 'cache_concat'] as const;

export const ManifestSchema = z
  .object({
    interfaceVersion: z.literal(2),
    name: z.string().min(1),
    version: z.string().min(1),
    description: z.string().optional(),
    architecture: z.object({
      nLayers: z.number().int().positive(),
      nHeads: z.number().int().positive(),
      dModel: z.number().int().positive(),
      ffnHidden: z.number().int().positive(),
      ropeTheta: z.number().positive(),
      vocabSize: z.number().int().positive(),
    }),
    tokens: z.object({
      textVocabSize: id,
      codeOffset: id,
      codebookSize: z.number().int().positive(),
      mask: id,
      newline: id,
      boi: id,
      eoi: id,
      uncondition: id,
      boa: id,
      eoa: id,
      answerPad: id,
      bos: id.nullable(),
      eos: id.nullable(),
    }),
    tokenizer: z.object({
      kind: z.enum(['word', 'hf']),
      file: fileName,
      /** kind "hf": the checkpoint's tokenizer_config.json, when shipped */
      config: fileName.optional(),
      /** more special strings whose ids the start-up check compares (e.g. `<|mdm_mask|>`, BOS), besides the manifest's tokens */
      specialTokens: z.record(z.string().min(1), id).optional(),
    }),
    templates: z.object({
      prompt: z.string().includes('{sys}').includes('{user}'),
      uncondition: z.string().min(1),
      /** every one of SYS_PROMPTS: a new editType needs its system prompt in every manifest */
      sys: sysPrompts,
    }),
    image: z.object({
      gridFactor: z.number().int().positive(),
      minSize: z.number().int().positive(),
      maxSize: z.number().int().positive(),
      defaultHeight: z.number().int().positive(),
      defaultWidth: z.number().int().positive(),
      maxAspect: z.number().positive(),
    }),
    lengthBucket: z.number().int().positive(),
    defaults: z.object({
      t2i: z.object({ steps: z.number().int().positive(), cfg: z.number().nonnegative(), temperature: z.number().nonnegative() }),
      i2i: z.object({
        steps: z.number().int().positive(),
        cfg: z.number().nonnegative(),
        cfgImage: z.number().nonnegative(),
        temperature: z.number().nonnegative(),
      }),
      mmu: z.object({
        steps: z.number().int().positive(),
        genLength: z.number().int().positive(),
        blockLength: z.number().int().positive(),
        cfg: z.number().nonnegative(),
        temperature: z.number().nonnegative(),
      }),
      cache: CacheSettingsSchema,
    }),
    limits: z.object({
      maxSteps: z.number().int().positive(),
      maxCfg: z.number().nonnegative(),
      maxTemperature: z.number().nonnegative(),
      maxGenLength: z.number().int().positive(),
      maxBatchRows: z.number().int().positive(),
    }),
    graphs: z.object({
      denoise: fileName,
      denoise_partial: fileName,
      sample_head: fileName,
      forward_logits: fileName,
      vq_encode: fileName,
      vq_decode: fileName,
      /** the GPU ML-Cache path (docs/model-interface.md §4.6); optional: without it a model serves through the CPU path */
      denoise_segment: fileName.optional(),
      /**
       * the device-resident ML-Cache (docs/model-interface.md §4.7; WebGPU): the full step and the draw under the float32
       * device rule (§3.1), a partial step returning the updated cache, and its regrouping
       */
      denoise_device: fileName.optional(),
      sample_head_device: fileName.optional(),
      denoise_resident: fileName.optional(),
      cache_gather: fileName.optional(),
      cache_concat: fileName.optional(),
    }),
    /** steps `denoise_segment` is unrolled to (its T axis): the longest refresh segment it runs in one call */
    segmentSteps: z.number().int().positive().optional(),
    files: z.record(fileName, z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative() })),
  })
  .superRefine((m, ctx) => {
    const t = m.tokens;
    if (t.codeOffset + t.codebookSize !== m.architecture.vocabSize) {
      ctx.addIssue({ code: 'custom', path: ['tokens', 'codeOffset'], message: 'codeOffset + codebookSize must equal architecture.vocabSize' });
    }
    if (t.textVocabSize > t.codeOffset) {
      ctx.addIssue({ code: 'custom', path: ['tokens', 'textVocabSize'], message: 'text ids must lie below the image codes' });
    }
    const specials = { mask: t.mask, newline: t.newline, boi: t.boi, eoi: t.eoi, uncondition: t.uncondition, boa: t.boa, eoa: t.eoa, answerPad: t.answerPad };
    const seen = new Map<number, string>();
    for (const [name, value] of Object.entries(specials)) {
      if (value >= t.textVocabSize) ctx.addIssue({ code: 'custom', path: ['tokens', name], message: 'special ids must lie below textVocabSize' });
      const other = seen.get(value);
      if (other) ctx.addIssue({ code: 'custom', path: ['tokens', name], message: `same id as ${other}` });
      seen.set(value, name);
    }
    for (const [graph, file] of Object.entries(m.graphs)) {
      if (file !== undefined && !m.files[file]) ctx.addIssue({ code: 'custom', path: ['graphs', graph], message: `${file} has no checksum in files` });
    }
    for (const [field, file] of [
      ['file', m.tokenizer.file],
      ['config', m.tokenizer.config],
    ] as const) {
      if (file !== undefined && !m.files[file]) ctx.addIssue({ code: 'custom', path: ['tokenizer', field], message: `${file} has no checksum in files` });
    }
    if ((m.graphs.denoise_segment === undefined) !== (m.segmentSteps === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['segmentSteps'], message: 'graphs.denoise_segment and segmentSteps come together' });
    }
    const resident = RESIDENT_CACHE_GRAPHS.filter((g) => m.graphs[g] !== undefined);
    if (resident.length !== 0 && resident.length !== RESIDENT_CACHE_GRAPHS.length) {
      ctx.addIssue({ code: 'custom', path: ['graphs'], message: `${RESIDENT_CACHE_GRAPHS.join(', ')} come together` });
    }
    if (m.image.minSize % m.image.gridFactor !== 0 || m.image.maxSize % m.image.gridFactor !== 0) {
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'sizes must be multiples of gridFactor' });
    }
  });

export type ModelManifest = z.infer<typeof ManifestSchema>;

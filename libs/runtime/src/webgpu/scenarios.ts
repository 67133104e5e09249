/**
 * The jobs the WebGPU tests run on both providers (webgpu.spec.ts runs the CPU side in-process, child.ts the WebGPU
 * side in a child process): every task in one mixed batch, with guidance, few steps (lavapipe, a CPU Vulkan driver,
 * runs a call in a third of a second at best). The two text-to-image step counts differ so that their ML-Cache
 * phases differ: a partial step then draws on two caches (`cache_concat`), and the shorter job leaves the longer one's
 * group (`cache_gather`).
 */
import type { DiffusionEngine, Sequence } from '@dimoo/diffusion';
import type { LoadedModel } from '../pipeline';
import { newEngine, prepare } from '../pipeline';
import type { InlineRequest } from '../testing/requests';
import { inlineJob } from '../testing/requests';
import type { ToyWorld } from '../testing/toy-world';
import { caption, mixedInputs } from '../testing/toy-world';

export interface Scenario {
  temperature: number;
  cache: boolean;
}

export function mixedBatch(world: ToyWorld, { temperature, cache }: Scenario): InlineRequest[] {
  const { scene, image, mask } = mixedInputs(world);
  const common = { temperature, cache };
  return [
    { task: 't2i', prompt: caption(world, scene(2)), cfg: 2, steps: 6, seed: 11, ...common },
    { task: 't2i', prompt: caption(world, scene(8)), cfg: 1.5, steps: 8, seed: 12, ...common },
    { task: 'paint', prompt: caption(world, scene(4)), image, mask, cfg: 1, steps: 5, seed: 14, ...common },
    { task: 'i2i', editType: 'edit', prompt: 'make it blue', images: [image], cfg: 1, cfgImage: 0.5, steps: 6, seed: 15, ...common },
    { task: 'mmu', question: 'what shape is it ?', image, cfg: 0.5, steps: 4, genLength: 8, blockLength: 4, seed: 16, ...common },
  ];
}

export interface BatchResult {
  /** each job's final token region, in the scenario's order */
  tokens: number[][];
  /** model calls by kind (full, partial, sample) */
  calls: Record<string, number>;
}

/** Runs the scenario's jobs as one batch on the model; returns each job's tokens and the engine's calls. */
export async function runBatch(model: LoadedModel, world: ToyWorld, scenario: Scenario): Promise<BatchResult & { engine: DiffusionEngine; seqs: Sequence[] }> {
  const reqs = mixedBatch(world, scenario);
  const seqs = await Promise.all(reqs.map((r, i) => prepare(model, `j${i}`, inlineJob(model.manifest, r))));
  const engine = newEngine(model);
  await engine.run(seqs);
  const calls: Record<string, number> = {};
  for (const c of engine.calls) calls[c.kind] = (calls[c.kind] ?? 0) + 1;
  return { tokens: seqs.map((s) => Array.from(s.region)), calls, engine, seqs };
}

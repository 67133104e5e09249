/**
 * The engine hands every ML-Cache handle back to the model once no sequence holds it (`DenoiseModel.releaseCache`):
 * a device-resident cache frees its memory then, not when a finalizer runs. A fake model counts live handles and
 * refuses to use a released one; sequences join, finish and are cancelled at different phases.
 */
import type { CacheSettings } from './cache-policy';
import { DiffusionEngine } from './engine';
import type { CachedSampleInput, CachedSampleOutput, CacheHandle, DenoiseModel, FullStepInput, FullStepOutput, PartialStepInput } from './model';
import { answerSequence, testLayout } from './testing/fixtures';

const L = testLayout(20);
/** four steps: full, full (leaves the cache), partial, partial */
const CACHE: CacheSettings = { cacheRatio: 0.5, warmupRatio: 0.25, refreshInterval: 4 };

class FakeHandle implements CacheHandle {
  released = false;
  constructor(
    readonly sequences: number,
    readonly rowMax: Float32Array,
  ) {}
  get bytes(): number {
    return this.rowMax.byteLength;
  }
}

class CountingModel implements DenoiseModel {
  readonly live = new Set<FakeHandle>();
  peak = 0;
  gathers = 0;

  private handle(sequences: number, rowMax: Float32Array): FakeHandle {
    const h = new FakeHandle(sequences, rowMax);
    this.live.add(h);
    this.peak = Math.max(this.peak, this.live.size);
    return h;
  }

  private use(cache: CacheHandle): FakeHandle {
    const h = cache as FakeHandle;
    if (h.released) throw new Error('a released cache was used');
    return h;
  }

  fullStep(x: FullStepInput): Promise<FullStepOutput> {
    const rowMax = Float32Array.from({ length: x.rows * x.length }, (_, i) => (i * 7) % 5);
    const out: FullStepOutput = {
      sampleIndex: new Int32Array(x.sequences * x.targets),
      sampleProb: new Float32Array(x.sequences * x.targets).fill(0.5),
      rowMax,
    };
    if (x.withCache) out.cache = this.handle(x.sequences, rowMax);
    return Promise.resolve(out);
  }

  partialStep(x: PartialStepInput): Promise<void> {
    this.use(x.cache);
    return Promise.resolve();
  }

  sampleCached(x: CachedSampleInput): Promise<CachedSampleOutput> {
    this.use(x.cache);
    return Promise.resolve({
      sampleIndex: new Int32Array(x.sequences * x.targets),
      sampleProb: new Float32Array(x.sequences * x.targets).fill(0.5),
      fed: x.targets,
    });
  }

  gatherCache(parts: readonly { cache: CacheHandle; sequence: number }[]): Promise<CacheHandle> {
    this.gathers++;
    const rows = parts.map((p) => this.use(p.cache));
    const L0 = rows[0]!.rowMax.length / rows[0]!.sequences;
    return Promise.resolve(this.handle(parts.length, new Float32Array(parts.length * L0)));
  }

  releaseCache(cache: CacheHandle): void {
    const h = this.use(cache);
    h.released = true;
    this.live.delete(h);
  }
}

describe('the engine releases ML-Cache handles no sequence holds', () => {
  it("frees each job's cache when it finishes, with jobs joining at every phase", async () => {
    const model = new CountingModel();
    const engine = new DiffusionEngine(model, { lengthBucket: 8, maxRows: 64 });
    let next = 0;
    const liveAfterStep: number[] = [];
    while (next < 40 || engine.size > 0) {
      // one job joins every step while there are any: the running ones are at different phases
      if (next < 40) engine.add(answerSequence(`a${next++}`, L, { cache: CACHE, seed: next }));
      await engine.step();
      liveAfterStep.push(model.live.size);
    }
    expect(model.gathers).toBeGreaterThan(0);
    expect(model.live.size).toBe(0);
    // a handle per phase group at most: bounded, whatever the number of jobs that went through
    expect(Math.max(...liveAfterStep)).toBeLessThanOrEqual(3);
  });

  it("frees a cancelled job's cache at once when it held it alone", async () => {
    const model = new CountingModel();
    const engine = new DiffusionEngine(model, { lengthBucket: 8, maxRows: 64 });
    engine.add(answerSequence('a', L, { cache: CACHE }));
    await engine.step();
    await engine.step(); // the full step right before a partial one leaves a cache
    expect(model.live.size).toBe(1);
    expect(engine.remove('a')).toBe(true);
    expect(model.live.size).toBe(0);
  });
});

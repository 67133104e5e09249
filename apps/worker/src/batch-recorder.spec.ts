import type { StepStats } from '@dimoo/runtime';
import type { BatchRecord } from './batch-recorder';
import { BatchRecorder } from './batch-recorder';

const step = (jobs: string[], running: number, partial = false): StepStats => ({
  jobs,
  calls: [
    {
      kind: partial ? 'partial' : 'full',
      sequences: jobs.length,
      rows: jobs.length,
      positions: partial ? 10 : 100,
      fullPositions: 100,
      length: 16,
      steps: 1,
      ms: 4,
    },
  ],
  stepMs: 5,
  cacheBytes: partial ? 2048 : 1024,
  batchCost: 112 * jobs.length,
  waiting: 0,
  running,
});

describe('BatchRecorder', () => {
  it('records one busy period: jobs, size over time, step times, cache saving', async () => {
    const records: BatchRecord[] = [];
    let t = 1000;
    const rec = new BatchRecorder(
      (r) => Promise.resolve(void records.push(r)),
      500,
      () => t,
    );
    const steps = [step(['a'], 1), step(['a', 'b'], 2), step(['a', 'b'], 2, true), step(['a', 'b'], 1, true), step(['b'], 0)];
    expect(rec.currentId).toBeNull();
    const ids = new Set<string | null>();
    for (const s of steps) {
      t += 5;
      const written = rec.onStep(s);
      ids.add(rec.currentId);
      await written;
    }
    expect(records).toHaveLength(1);
    const r = records[0]!;
    // the id the worker's registry row showed while the batch ran is the record's; none once it drained
    expect([...ids]).toEqual([r.id, null]);
    expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.jobIds.sort()).toEqual(['a', 'b']);
    expect(r.stats).toMatchObject({
      steps: 5,
      jobs: 2,
      maxSize: 2,
      meanSize: 1.6,
      modelCalls: 5,
      forwardMs: 20,
      positions: 320,
      fullPositions: 500,
      maxCacheBytes: 2048,
      maxBatchCost: 224,
    });
    expect(r.stats.sizeOverTime).toEqual([
      [5, 1],
      [10, 2],
      [25, 1],
    ]);
    expect(r.stats.cacheHitRatio).toBeCloseTo(0.36);
    expect(r.finishedAt.getTime() - r.startedAt.getTime()).toBe(25);
  });

  it('cuts a long busy period every maxSteps steps, and flushes what is open', async () => {
    const records: BatchRecord[] = [];
    const rec = new BatchRecorder((r) => Promise.resolve(void records.push(r)), 3);
    for (let i = 0; i < 7; i++) await rec.onStep(step(['a'], 1));
    expect(records.map((r) => r.stats.steps)).toEqual([3, 3]);
    await rec.flush();
    expect(records.map((r) => r.stats.steps)).toEqual([3, 3, 1]);
    expect(rec.flush()).toBeNull();
  });
});

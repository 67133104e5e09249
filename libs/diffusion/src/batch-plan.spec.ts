import fc from 'fast-check';
import type { BatchPolicy, Waiting } from './batch-plan';
import { planAdmission, sequenceCost } from './batch-plan';

const policy: BatchPolicy = { mode: 'continuous', costBudget: 1000, waitMs: 50 };
const w = (id: string, cost: number, arrivedAt = 0): Waiting => ({ id, cost, arrivedAt });

describe('planAdmission', () => {
  it('costs a sequence as padded length × branches', () => {
    expect(sequenceCost(112, 2)).toBe(224);
  });

  it('holds the first arrival for the wait window, then starts what fits', () => {
    const waiting = [w('a', 300, 0), w('b', 300, 10)];
    expect(planAdmission(policy, waiting, { count: 0, cost: 0 }, 20)).toEqual({ admit: [], retryInMs: 30 });
    expect(planAdmission(policy, waiting, { count: 0, cost: 0 }, 50)).toEqual({ admit: ['a', 'b'], retryInMs: null });
  });

  it('starts at once when the waiting cost fills the budget, and never exceeds it', () => {
    const waiting = [w('a', 400), w('b', 400), w('c', 400)];
    expect(planAdmission(policy, waiting, { count: 0, cost: 0 }, 1).admit).toEqual(['a', 'b']);
  });

  it('lets arrivals join a running batch at once in continuous mode, as far as the budget allows', () => {
    expect(planAdmission(policy, [w('c', 300, 99)], { count: 2, cost: 600 }, 100).admit).toEqual(['c']);
    expect(planAdmission(policy, [w('c', 500, 99)], { count: 2, cost: 600 }, 100).admit).toEqual([]);
  });

  it('never joins a running batch in static mode', () => {
    const r = planAdmission({ ...policy, mode: 'static' }, [w('c', 10)], { count: 1, cost: 10 }, 1000);
    expect(r).toEqual({ admit: [], retryInMs: null });
  });

  it('runs a sequence costlier than the whole budget alone instead of starving it', () => {
    expect(planAdmission(policy, [w('big', 5000), w('small', 10)], { count: 0, cost: 0 }, 0).admit).toEqual(['big']);
  });

  it('is first come, first served: a small sequence does not overtake a big one that does not fit', () => {
    expect(planAdmission(policy, [w('big', 600), w('small', 10)], { count: 1, cost: 500 }, 0).admit).toEqual([]);
  });

  it('keeps every batch within budget and admits a prefix of the arrival order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 1200 }), { maxLength: 20 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 200 }),
        (costs, count, runningCost, now) => {
          const waiting = costs.map((c, i) => w(`j${i}`, c, 0));
          const running = { count, cost: count === 0 ? 0 : runningCost };
          const { admit } = planAdmission(policy, waiting, running, now);
          expect(admit).toEqual(waiting.slice(0, admit.length).map((x) => x.id));
          const total = running.cost + waiting.slice(0, admit.length).reduce((n, x) => n + x.cost, 0);
          if (!(running.count === 0 && admit.length === 1)) expect(total).toBeLessThanOrEqual(policy.costBudget);
        },
      ),
    );
  });
});

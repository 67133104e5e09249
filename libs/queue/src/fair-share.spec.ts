import fc from 'fast-check';
import type { FairEntry, TeamQueue, Turn } from './fair-share';
import { pickFair } from './fair-share';

interface Team {
  id: string;
  weight: number;
  jobs: FairEntry[];
  room?: number;
}

/** Runs the planner call after call as the dispatcher does (state carried over, picked jobs removed). */
function simulate(teams: Team[], calls: number, n: number): { teamId: string; jobId: string; cost: number }[] {
  const queues = new Map(teams.map((t) => [t.id, [...t.jobs]]));
  const deficits = new Map<string, number>();
  let turn: Turn | null = null;
  const out: { teamId: string; jobId: string; cost: number }[] = [];
  for (let c = 0; c < calls; c++) {
    const ring: TeamQueue[] = teams
      .filter((t) => queues.get(t.id)!.length > 0)
      .map((t) => ({
        teamId: t.id,
        weight: t.weight,
        deficit: deficits.get(t.id) ?? 0,
        head: queues.get(t.id)!.slice(0, n),
        size: queues.get(t.id)!.length,
        room: t.room ?? Infinity,
      }));
    if (ring.length === 0) break;
    const r = pickFair(ring, turn, n);
    for (const [id, d] of r.deficits) deficits.set(id, d);
    for (const p of r.picks) queues.get(p.teamId)!.shift();
    for (const id of r.emptied) deficits.delete(id);
    turn = r.turn;
    out.push(...r.picks);
  }
  return out;
}

const jobs = (team: string, count: number, cost: number): FairEntry[] => Array.from({ length: count }, (_, i) => ({ jobId: `${team}-${i}`, cost }));

describe('pickFair (weighted deficit round robin)', () => {
  it('shares cost units by weight across three saturating teams with different costs', () => {
    const teams = [
      { id: 'a', weight: 1, jobs: jobs('a', 5000, 100) },
      { id: 'b', weight: 2, jobs: jobs('b', 5000, 37) },
      { id: 'c', weight: 1, jobs: jobs('c', 5000, 250) },
    ];
    const picks = simulate(teams, 300, 4);
    const units = new Map<string, number>();
    for (const p of picks) units.set(p.teamId, (units.get(p.teamId) ?? 0) + p.cost);
    const total = [...units.values()].reduce((a, b) => a + b, 0);
    // weights 1:2:1 → 25% / 50% / 25% of the units, whatever each job costs
    expect(units.get('a')! / total).toBeCloseTo(0.25, 1);
    expect(units.get('b')! / total).toBeCloseTo(0.5, 1);
    expect(units.get('c')! / total).toBeCloseTo(0.25, 1);
    expect(Math.abs(units.get('b')! / units.get('a')! - 2)).toBeLessThan(0.1);
  });

  it("admits a quiet team's lone job within one turn of the busy team", () => {
    // team a has 2,000 jobs waiting; b submits one: at most one turn of a (quantum / cost = 1 job) goes first
    const picks = simulate(
      [
        { id: 'a', weight: 1, jobs: jobs('a', 2000, 64) },
        { id: 'b', weight: 1, jobs: jobs('b', 1, 64) },
      ],
      10,
      1,
    );
    expect(picks.findIndex((p) => p.teamId === 'b')).toBeLessThanOrEqual(1);
  });

  it('keeps each team in its own order, never picks a job twice, never more than n per call', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ weight: fc.double({ min: 0.1, max: 10, noNaN: true }), count: fc.integer({ min: 0, max: 30 }), cost: fc.integer({ min: 1, max: 500 }) }),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        fc.integer({ min: 1, max: 8 }),
        (specs, n) => {
          const teams = specs.map((s, i) => ({ id: `t${i}`, weight: s.weight, jobs: jobs(`t${i}`, s.count, s.cost) }));
          const picks = simulate(teams, 1000, n);
          expect(new Set(picks.map((p) => p.jobId)).size).toBe(picks.length);
          // every job is picked eventually, each team's in its order
          expect(picks.length).toBe(specs.reduce((a, s) => a + s.count, 0));
          for (const t of teams) expect(picks.filter((p) => p.teamId === t.id).map((p) => p.jobId)).toEqual(t.jobs.map((j) => j.jobId));
        },
      ),
    );
    // a turn that can admit more goes on at the next call, without a second quantum
    const one = pickFair([{ teamId: 'a', weight: 5, deficit: 0, head: jobs('a', 9, 1), size: 9, room: Infinity }], null, 3);
    expect(one.picks).toHaveLength(3);
    expect(one.turn).toEqual({ teamId: 'a', charged: true });
  });

  it('skips a team at its running limit without giving it credit, and resets an emptied team', () => {
    const r = pickFair(
      [
        { teamId: 'a', weight: 1, deficit: 0, head: jobs('a', 5, 10), size: 5, room: 0 },
        { teamId: 'b', weight: 1, deficit: 0, head: jobs('b', 2, 10), size: 2, room: Infinity },
      ],
      null,
      4,
    );
    expect(r.picks.map((p) => p.jobId)).toEqual(['b-0', 'b-1']);
    expect(r.deficits.get('a')).toBe(0);
    expect(r.emptied).toEqual(['b']);
    expect(r.turn?.teamId).toBe('a');
  });
});

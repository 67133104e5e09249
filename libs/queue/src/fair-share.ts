/**
 * Fair share across teams: weighted deficit round robin (Shreedhar & Varghese) on each job's cost units. Teams with
 * waiting jobs form a ring; a team's turn adds `quantum × weight` to its deficit and admits its jobs, in its own
 * priority order, while the next one's cost fits in the deficit. Over time each busy team gets positions in proportion
 * to its weight, whatever its jobs cost; a lone job of a quiet team waits at most one turn of every other team.
 * Within a team, jobs wait in `JOB_PRIORITIES` order (high first), then in submission order (the head passed in).
 * Pure: the dispatcher (`fair-queue.ts`) reads the state from Redis, calls `pickFair` and writes the result back.
 */

/** Weights are clamped to this range, so a turn always adds something and one team cannot starve the others forever. */
export const WEIGHT_RANGE = { min: 0.01, max: 1000 } as const;
export const DEFAULT_WEIGHT = 1;

export interface FairEntry {
  jobId: string;
  cost: number;
}

export interface TeamQueue {
  teamId: string;
  weight: number;
  /** credit left from earlier turns (0 for a team that just joined) */
  deficit: number;
  /** the first waiting jobs in the team's order (at least as many as one call may pick, or all of them) */
  head: readonly FairEntry[];
  /** how many jobs it has waiting in all */
  size: number;
  /** how many more of its jobs may run now (its maxRunning less those running); Infinity without a limit */
  room: number;
}

/** Whose turn it is, and whether that team already got its quantum for this turn. */
export interface Turn {
  teamId: string;
  charged: boolean;
}

export interface FairPick {
  picks: { teamId: string; jobId: string; cost: number }[];
  /** every team's deficit after the picks (0 for a team whose queue emptied) */
  deficits: Map<string, number>;
  /** teams whose waiting jobs were all picked */
  emptied: string[];
  turn: Turn | null;
}

export function clampWeight(weight: number): number {
  return Math.min(WEIGHT_RANGE.max, Math.max(WEIGHT_RANGE.min, Number.isFinite(weight) ? weight : DEFAULT_WEIGHT));
}

/**
 * Up to `n` jobs in fair order. `ring` lists the teams with waiting jobs in ring order; `turn` is where the last call
 * stopped. The quantum is the largest cost in sight, so every turn of a weight-1 team admits at least one job.
 */
export function pickFair(ring: readonly TeamQueue[], turn: Turn | null, n: number): FairPick {
  const deficits = new Map(ring.map((t) => [t.teamId, t.deficit]));
  const taken = new Map(ring.map((t) => [t.teamId, 0]));
  const room = new Map(ring.map((t) => [t.teamId, t.room]));
  const picks: FairPick['picks'] = [];
  const quantum = Math.max(1, ...ring.flatMap((t) => t.head.map((e) => e.cost)));
  const waiting = (t: TeamQueue) => taken.get(t.teamId)! < t.head.length;
  const eligible = (t: TeamQueue) => waiting(t) && room.get(t.teamId)! > 0;
  const isEmpty = (t: TeamQueue) => taken.get(t.teamId)! >= t.size;

  let at = Math.max(
    0,
    ring.findIndex((t) => t.teamId === turn?.teamId),
  );
  let charged = turn !== null && ring[at]?.teamId === turn.teamId && turn.charged;
  while (picks.length < n && ring.some(eligible)) {
    const team = ring[at]!;
    if (eligible(team)) {
      if (!charged) deficits.set(team.teamId, deficits.get(team.teamId)! + quantum * clampWeight(team.weight));
      charged = true;
      while (picks.length < n && eligible(team)) {
        const next = team.head[taken.get(team.teamId)!]!;
        if (next.cost > deficits.get(team.teamId)!) break;
        picks.push({ teamId: team.teamId, jobId: next.jobId, cost: next.cost });
        deficits.set(team.teamId, deficits.get(team.teamId)! - next.cost);
        taken.set(team.teamId, taken.get(team.teamId)! + 1);
        room.set(team.teamId, room.get(team.teamId)! - 1);
      }
      // the turn goes on at the next call while this team may admit more (a head read to its end: the rest is unseen)
      if (picks.length >= n && !isEmpty(team) && room.get(team.teamId)! > 0) {
        const next = team.head[taken.get(team.teamId)!];
        if (!next || next.cost <= deficits.get(team.teamId)!) break;
      }
    }
    // an idle team keeps no credit (standard DRR); one held back by its running limit keeps what it has
    if (isEmpty(team)) deficits.set(team.teamId, 0);
    at = (at + 1) % ring.length;
    charged = false;
  }
  const emptied = ring.filter(isEmpty).map((t) => t.teamId);
  for (const id of emptied) deficits.set(id, 0);
  const current = ring[at];
  return { picks, deficits, emptied, turn: current && !emptied.includes(current.teamId) ? { teamId: current.teamId, charged } : null };
}

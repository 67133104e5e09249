/**
 * Batches (GET /v1/admin/batches): what each worker's engine ran together. Sizes over time for the recent ones, and per
 * batch its steps, jobs, step times, positions computed against full steps, and the ML-Cache's share.
 */
import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { BatchView } from '../api';
import { ChartBox, SERIES } from '../charts';
import { Card, ErrorBox, Loading } from '../components';
import { bytes, clock, ms, percent, shortId, time } from '../format';
import { Link } from '../router';
import { useSession } from '../session';

/** A batch the worker has written its figures for (a running one has none yet). */
type Recorded = BatchView & { stats: NonNullable<BatchView['stats']> };
const recorded = (b: BatchView): b is Recorded => b.stats !== null;
const duration = (b: BatchView) => (b.finishedAt ? new Date(b.finishedAt).getTime() - new Date(b.startedAt).getTime() : null);

/** A batch's size as a step line: [ms since it started, sequences] held until the next change and to its end. */
function sizeSteps(b: Recorded): { t: number; size: number }[] {
  const end = duration(b) ?? 0;
  const points = b.stats.sizeOverTime.map(([t = 0, size = 0]) => ({ t, size }));
  const last = points.at(-1);
  return last && last.t < end ? [...points, { t: end, size: last.size }] : points;
}

export function BatchesPage() {
  const session = useSession();
  const [selected, setSelected] = useState<string | null>(null);
  const batches = useInfiniteQuery({
    queryKey: ['batches', 'list'],
    queryFn: ({ pageParam }) => session.batches({ limit: 50, ...(pageParam ? { before: pageParam } : {}) }),
    initialPageParam: '',
    getNextPageParam: (page) => (page.items.length === 50 ? page.items.at(-1)!.startedAt : undefined),
    refetchInterval: 10_000,
  });
  if (batches.isPending) return <Loading />;
  if (batches.isError) return <ErrorBox error={batches.error} />;
  const items = batches.data.pages.flatMap((p) => p.items);
  const withStats = items.filter(recorded);
  const chosen = withStats.find((b) => b.id === selected) ?? withStats[0];
  const overTime = withStats
    .slice()
    .reverse()
    .map((b) => ({ label: clock(b.startedAt), mean: b.stats.meanSize, max: b.stats.maxSize, jobs: b.stats.jobs }));

  return (
    <>
      <header className="page-head">
        <h1>Batches</h1>
        <span className="muted small">{items.length} shown, newest first</span>
      </header>
      <div className="grid2">
        <Card>
          <ChartBox title="Batch size over time (mean and max sequences per step)" empty={overTime.length === 0}>
            <LineChart data={overTime}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis allowDecimals={false} width={32} />
              <Tooltip />
              <Legend />
              <Line dataKey="mean" stroke={SERIES.a} dot={false} isAnimationActive={false} />
              <Line dataKey="max" stroke={SERIES.b} dot={false} isAnimationActive={false} />
              <Line dataKey="jobs" stroke={SERIES.c} dot={false} isAnimationActive={false} />
            </LineChart>
          </ChartBox>
        </Card>
        <Card>
          <ChartBox title={chosen ? `Inside batch ${shortId(chosen.id)} (sequences over its ${ms(duration(chosen))})` : 'Inside a batch'} empty={!chosen}>
            <LineChart data={chosen ? sizeSteps(chosen) : []}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="t" type="number" tickFormatter={(v: number) => ms(v)} domain={['dataMin', 'dataMax']} />
              <YAxis allowDecimals={false} width={32} />
              <Tooltip labelFormatter={(v) => ms(Number(v))} />
              <Line type="stepAfter" dataKey="size" stroke={SERIES.a} dot={false} isAnimationActive={false} />
            </LineChart>
          </ChartBox>
        </Card>
      </div>
      <Card>
        <table className="table" data-testid="batches-table">
          <thead>
            <tr>
              <th>Batch</th>
              <th>Worker</th>
              <th>Started</th>
              <th>Steps</th>
              <th>Jobs</th>
              <th>Size mean / max</th>
              <th>Step p50 / p95</th>
              <th>Positions computed / full</th>
              <th>Cache hit</th>
              <th>Cache memory</th>
            </tr>
          </thead>
          <tbody>
            {items.map((b) => (
              <tr key={b.id} className={b.id === chosen?.id ? 'selected' : undefined} onClick={() => setSelected(b.id)}>
                <td className="mono">{shortId(b.id)}</td>
                <td className="mono small">{b.workerId}</td>
                <td className="nowrap">{time(b.startedAt)}</td>
                <td>{b.stats?.steps ?? '–'}</td>
                <td>
                  {b.stats?.jobs ?? b.jobIds.length}
                  {b.jobIds.slice(0, 3).map((id) => (
                    <Link key={id} to={`/jobs/${id}`} className="mono small chip" onClick={(e) => e.stopPropagation()}>
                      {shortId(id)}
                    </Link>
                  ))}
                </td>
                {b.stats ? (
                  <>
                    <td>
                      {b.stats.meanSize.toFixed(2)} / {b.stats.maxSize}
                    </td>
                    <td>
                      {ms(b.stats.stepMs.p50)} / {ms(b.stats.stepMs.p95)}
                    </td>
                    <td>
                      {b.stats.positions.toLocaleString()} / {b.stats.fullPositions.toLocaleString()}
                    </td>
                    <td>{percent(b.stats.cacheHitRatio)}</td>
                    <td>{bytes(b.stats.maxCacheBytes)}</td>
                  </>
                ) : (
                  <td colSpan={5} className="muted">
                    running: its figures come when it drains
                  </td>
                )}
              </tr>
            ))}
            {items.length === 0 && (
              <tr>
                <td colSpan={10} className="muted">
                  No batch recorded yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {batches.hasNextPage && (
          <button type="button" onClick={() => void batches.fetchNextPage()} disabled={batches.isFetchingNextPage}>
            Load more
          </button>
        )}
      </Card>
    </>
  );
}

/** Overview: the fleet now (GET /v1/admin/stats, every 5 s): counters, the no-worker alarm, the last hour in charts. */
import { useQuery } from '@tanstack/react-query';
import { Bar, BarChart, CartesianGrid, Cell, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { axisMs, ChartBox, SERIES, STATUS_COLOURS, STATUSES } from '../charts';
import { Card, ErrorBox, Loading, Stat } from '../components';
import { age, bytes, clock, ms, percent, shortId } from '../format';
import { Link } from '../router';
import { useSession } from '../session';

export function OverviewPage() {
  const session = useSession();
  const stats = useQuery({ queryKey: ['stats'], queryFn: () => session.stats(60), refetchInterval: 5000 });
  // the per-batch figures over time (the stats give the window's aggregates)
  const batches = useQuery({ queryKey: ['batches', 'recent'], queryFn: () => session.batches({ limit: 50 }), refetchInterval: 5000 });
  if (stats.isPending) return <Loading />;
  if (stats.isError) return <ErrorBox error={stats.error} />;
  const s = stats.data;
  const count = (status: keyof typeof s.byStatus) => s.byStatus[status] ?? 0;
  const series = s.series.map((p) => ({ ...p, label: clock(p.t) }));
  const byStatus = STATUSES.map((status) => ({ status, jobs: count(status) }));
  const byTeam = s.byTeam.map((t) => ({ team: t.teamName, ...t.byStatus }));
  const b = s.batches;
  const perBatch = (batches.data?.items ?? [])
    .flatMap((x) => (x.stats ? [{ ...x, stats: x.stats }] : []))
    .reverse()
    .map((x) => ({
      label: clock(x.startedAt),
      meanSize: x.stats.meanSize,
      maxSize: x.stats.maxSize,
      stepP50: x.stats.stepMs.p50,
      stepP95: x.stats.stepMs.p95,
      cacheHitRatio: x.stats.cacheHitRatio,
      cacheBytes: x.stats.maxCacheBytes,
    }));
  return (
    <>
      <header className="page-head">
        <h1>Overview</h1>
        <span className="muted small">
          last {s.minutes} min · updated {clock(s.generatedAt)} · every 5 s
        </span>
      </header>
      {s.waitingNoWorker && (
        <div className="banner bad" role="alert">
          Jobs are waiting and no worker is live: nothing will run until a worker starts.
        </div>
      )}
      <div className="stats">
        <Stat id="queued" label="Queued" value={count('queued')} />
        <Stat id="running" label="Running" value={count('running')} />
        <Stat id="succeeded" label={`Succeeded (${s.minutes} min)`} value={count('succeeded')} tone="good" />
        <Stat id="failed" label="Failed last hour" value={s.failuresLastHour} tone={s.failuresLastHour > 0 ? 'bad' : undefined} />
        <Stat
          id="oldest"
          label="Oldest waiting"
          value={age(s.oldestWaiting?.ageS)}
          hint={s.oldestWaiting ? <Link to={`/jobs/${s.oldestWaiting.id}`}>{shortId(s.oldestWaiting.id)}</Link> : 'none waiting'}
          tone={s.oldestWaiting && s.oldestWaiting.ageS > 60 ? 'warn' : undefined}
        />
        <Stat
          id="workers"
          label="Workers live"
          value={s.workers.live}
          hint={`${s.workers.stale} stale`}
          tone={s.workers.live === 0 ? 'bad' : s.workers.stale > 0 ? 'warn' : undefined}
        />
      </div>
      <div className="grid2">
        <Card>
          <ChartBox title="Throughput (jobs per minute)" empty={series.length === 0}>
            <BarChart data={series}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis allowDecimals={false} width={36} />
              <Tooltip />
              <Legend />
              <Bar maxBarSize={56} dataKey="succeeded" stackId="a" fill={STATUS_COLOURS.succeeded} isAnimationActive={false} />
              <Bar maxBarSize={56} dataKey="failed" stackId="a" fill={STATUS_COLOURS.failed} isAnimationActive={false} />
            </BarChart>
          </ChartBox>
        </Card>
        <Card>
          <ChartBox title="Wait and run time (p50 / p95)" empty={series.length === 0}>
            <LineChart data={series}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis tickFormatter={axisMs} width={48} />
              <Tooltip formatter={(v) => ms(Number(v))} />
              <Legend />
              <Line dataKey="waitP50Ms" name="wait p50" stroke={SERIES.a} dot={{ r: 2 }} connectNulls isAnimationActive={false} />
              <Line dataKey="waitP95Ms" name="wait p95" stroke={SERIES.b} dot={{ r: 2 }} connectNulls isAnimationActive={false} />
              <Line dataKey="runP50Ms" name="run p50" stroke={SERIES.c} dot={{ r: 2 }} connectNulls isAnimationActive={false} />
              <Line dataKey="runP95Ms" name="run p95" stroke={SERIES.d} dot={{ r: 2 }} connectNulls isAnimationActive={false} />
            </LineChart>
          </ChartBox>
        </Card>
        <Card>
          <ChartBox title="Jobs by state">
            <BarChart data={byStatus}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="status" />
              <YAxis allowDecimals={false} width={36} />
              <Tooltip />
              <Bar maxBarSize={56} dataKey="jobs" isAnimationActive={false}>
                {byStatus.map((b) => (
                  <Cell key={b.status} fill={STATUS_COLOURS[b.status]} />
                ))}
              </Bar>
            </BarChart>
          </ChartBox>
        </Card>
        <Card>
          <ChartBox title="Jobs by team" empty={byTeam.length === 0}>
            <BarChart data={byTeam}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="team" />
              <YAxis allowDecimals={false} width={36} />
              <Tooltip />
              <Legend />
              {STATUSES.map((status) => (
                <Bar key={status} maxBarSize={56} dataKey={status} stackId="t" fill={STATUS_COLOURS[status]} isAnimationActive={false} />
              ))}
            </BarChart>
          </ChartBox>
        </Card>
      </div>
      <Card title={`Batches (${b.count} in the last ${s.minutes} min)`}>
        <div className="stats">
          <Stat id="batch-mean" label="Mean batch size" value={b.meanSize === null ? '–' : b.meanSize.toFixed(2)} />
          <Stat id="batch-max" label="Max batch size" value={b.maxSize ?? '–'} />
          <Stat id="step-p50" label="Step p50" value={ms(b.stepP50Ms)} />
          <Stat id="step-p95" label="Step p95" value={ms(b.stepP95Ms)} />
          <Stat id="cache-hit" label="ML-Cache hit ratio" value={percent(b.cacheHitRatio)} hint={`${b.positions} of ${b.fullPositions} positions computed`} />
          <Stat id="cache-bytes" label="Cache memory (max)" value={bytes(b.maxCacheBytes)} />
        </div>
        <div className="grid3">
          <ChartBox title="Batch occupancy (sequences per step)" height={180} empty={perBatch.length === 0}>
            <LineChart data={perBatch}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis allowDecimals={false} width={32} />
              <Tooltip />
              <Legend />
              <Line dataKey="meanSize" name="mean" stroke={SERIES.a} dot={false} isAnimationActive={false} />
              <Line dataKey="maxSize" name="max" stroke={SERIES.b} dot={false} isAnimationActive={false} />
            </LineChart>
          </ChartBox>
          <ChartBox title="Step time (p50 / p95)" height={180} empty={perBatch.length === 0}>
            <LineChart data={perBatch}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis tickFormatter={axisMs} width={48} />
              <Tooltip formatter={(v) => ms(Number(v))} />
              <Legend />
              <Line dataKey="stepP50" name="p50" stroke={SERIES.c} dot={false} isAnimationActive={false} />
              <Line dataKey="stepP95" name="p95" stroke={SERIES.d} dot={false} isAnimationActive={false} />
            </LineChart>
          </ChartBox>
          <ChartBox title="ML-Cache hit ratio and memory" height={180} empty={perBatch.length === 0}>
            <LineChart data={perBatch}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" minTickGap={24} />
              <YAxis yAxisId="ratio" domain={[0, 1]} tickFormatter={(v: number) => `${Math.round(v * 100)}%`} width={40} />
              <YAxis yAxisId="bytes" orientation="right" tickFormatter={(v: number) => bytes(v)} width={64} />
              <Tooltip formatter={(v, name) => (name === 'hit ratio' ? percent(Number(v)) : bytes(Number(v)))} />
              <Legend />
              <Line yAxisId="ratio" dataKey="cacheHitRatio" name="hit ratio" stroke={SERIES.a} dot={false} isAnimationActive={false} />
              <Line yAxisId="bytes" dataKey="cacheBytes" name="cache memory" stroke={SERIES.c} dot={false} isAnimationActive={false} />
            </LineChart>
          </ChartBox>
        </div>
      </Card>
    </>
  );
}

/** Jobs of every team (GET /v1/admin/jobs): filters and id search kept in the URL, newest first, "load more" by cursor. */
import { useInfiniteQuery } from '@tanstack/react-query';
import type { FormEvent } from 'react';
import { useState } from 'react';
import { JOB_STATUSES, JOB_TASKS } from '@dimoo/contracts';
import type { AdminJobFilters } from '../api';
import { Card, ErrorBox, Loading, StatusBadge, TeamOptions } from '../components';
import { isoFromLocal, shortId, time } from '../format';
import { Link, navigate, useLocation } from '../router';
import { useSession, useTeams } from '../session';

const FILTERS = ['teamId', 'task', 'status', 'since', 'until', 'q'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;
const PAGE = 25;

/** An ISO time (as the URL keeps it) as a datetime-local input's value, in local time. */
const localOf = (iso: string) => {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};

export function JobsPage() {
  const session = useSession();
  const { query } = useLocation();
  const applied = Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? ''])) as Filters;
  const [draft, setDraft] = useState<Filters>({ ...applied, since: localOf(applied.since), until: localOf(applied.until) });
  const teams = useTeams();

  const filters: AdminJobFilters = Object.fromEntries(Object.entries(applied).filter(([, v]) => v !== ''));
  const jobs = useInfiniteQuery({
    queryKey: ['admin-jobs', filters],
    queryFn: ({ pageParam }) => session.jobs({ ...filters, limit: PAGE, ...(pageParam ? { after: pageParam } : {}) }),
    initialPageParam: '',
    getNextPageParam: (page) => (page.hasMore && page.items.length > 0 ? page.items.at(-1)!.id : undefined),
  });

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const qs = new URLSearchParams();
    for (const f of FILTERS) {
      const v = f === 'since' || f === 'until' ? (isoFromLocal(draft[f]) ?? '') : draft[f].trim();
      if (v) qs.set(f, v);
    }
    navigate(`/jobs${qs.size > 0 ? `?${qs.toString()}` : ''}`, { replace: true });
  };
  const reset = () => {
    setDraft(Object.fromEntries(FILTERS.map((f) => [f, ''])) as Filters);
    navigate('/jobs', { replace: true });
  };
  const set = (f: keyof Filters) => (e: { target: { value: string } }) => setDraft((d) => ({ ...d, [f]: e.target.value }));
  const items = jobs.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <>
      <header className="page-head">
        <h1>Jobs</h1>
      </header>
      <Card>
        <form className="filters" onSubmit={apply}>
          <label>
            Team
            <select name="teamId" value={draft.teamId} onChange={set('teamId')}>
              <option value="">all</option>
              <TeamOptions teams={teams.data?.items} />
            </select>
          </label>
          <label>
            Task
            <select name="task" value={draft.task} onChange={set('task')}>
              <option value="">all</option>
              {JOB_TASKS.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
          <label>
            Status
            <select name="status" value={draft.status} onChange={set('status')}>
              <option value="">all</option>
              {JOB_STATUSES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Since
            <input name="since" type="datetime-local" value={draft.since} onChange={set('since')} />
          </label>
          <label>
            Until
            <input name="until" type="datetime-local" value={draft.until} onChange={set('until')} />
          </label>
          <label className="grow">
            Job id
            <input name="q" placeholder="an id or its first characters" value={draft.q} onChange={set('q')} spellCheck={false} />
          </label>
          <div className="filter-buttons">
            <button type="submit" className="primary">
              Apply
            </button>
            <button type="button" onClick={reset}>
              Reset
            </button>
          </div>
        </form>
      </Card>
      <Card>
        <ErrorBox error={jobs.error} />
        {jobs.isPending ? (
          <Loading />
        ) : (
          <table className="table" data-testid="jobs-table">
            <thead>
              <tr>
                <th>Job</th>
                <th>Team</th>
                <th>Task</th>
                <th>Status</th>
                <th>Progress</th>
                <th>Attempts</th>
                <th>Created</th>
                <th>Finished</th>
              </tr>
            </thead>
            <tbody>
              {items.map((j) => (
                <tr key={j.id}>
                  <td className="mono">
                    <Link to={`/jobs/${j.id}`}>{shortId(j.id)}</Link>
                    {j.retryOf && <span className="muted small"> retry of {shortId(j.retryOf)}</span>}
                  </td>
                  <td>{j.teamName}</td>
                  <td>{j.task}</td>
                  <td>
                    <StatusBadge status={j.status} />
                  </td>
                  <td>
                    <progress max={1} value={j.progress} /> {j.step}/{j.steps ?? '?'}
                  </td>
                  <td>{j.attempts}</td>
                  <td className="nowrap">{time(j.createdAt)}</td>
                  <td className="nowrap">{time(j.finishedAt)}</td>
                </tr>
              ))}
              {items.length === 0 && (
                <tr>
                  <td colSpan={8} className="muted">
                    No job matches.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        {jobs.hasNextPage && (
          <button type="button" onClick={() => void jobs.fetchNextPage()} disabled={jobs.isFetchingNextPage}>
            {jobs.isFetchingNextPage ? 'Loading…' : 'Load more'}
          </button>
        )}
      </Card>
    </>
  );
}

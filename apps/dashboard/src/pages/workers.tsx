/** Workers (GET /v1/admin/workers, every 5 s): the registry; stale heartbeats and model mismatches stand out. */
import { useQuery } from '@tanstack/react-query';
import { Card, ErrorBox, Loading } from '../components';
import { time } from '../format';
import { Link } from '../router';
import { useSession } from '../session';

export function WorkersPage() {
  const session = useSession();
  const workers = useQuery({ queryKey: ['workers'], queryFn: () => session.workers(), refetchInterval: 5000 });
  if (workers.isPending) return <Loading />;
  if (workers.isError) return <ErrorBox error={workers.error} />;
  const items = workers.data.items;
  const stale = items.filter((w) => w.stale).length;
  const mismatched = items.filter((w) => !w.modelMatches).length;
  return (
    <>
      <header className="page-head">
        <h1>Workers</h1>
        <span className="muted small">
          {items.length - stale} live · {stale} stale · every 5 s
        </span>
      </header>
      {mismatched > 0 && (
        <div className="banner warn" role="alert">
          {mismatched} worker(s) serve another model than the manifest the API resolves requests against.
        </div>
      )}
      <Card>
        <table className="table" data-testid="workers-table">
          <thead>
            <tr>
              <th>Worker</th>
              <th>Host / pid</th>
              <th>Model</th>
              <th>Provider</th>
              <th>Slots</th>
              <th>Running</th>
              <th>Batch</th>
              <th>Done / failed</th>
              <th>Started</th>
              <th>Heartbeat</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {items.map((w) => (
              <tr key={w.id} className={w.stale ? 'stale' : undefined}>
                <td className="mono nowrap">
                  {w.id} {w.stale && <span className="badge status-failed">stale</span>}
                </td>
                <td className="small">
                  {w.host} / {w.pid}
                </td>
                <td>
                  {w.modelName} {w.modelVersion}{' '}
                  {w.modelMatches ? (
                    <span className="muted small mono">{w.modelChecksum.slice(0, 10)}</span>
                  ) : (
                    <span className="badge status-canceled" title={`checksum ${w.modelChecksum}`}>
                      model mismatch
                    </span>
                  )}
                </td>
                <td>{w.executionProvider}</td>
                <td>{w.slots}</td>
                <td>{w.runningJobs}</td>
                <td className="mono small">{w.currentBatchId ? w.currentBatchId.slice(0, 8) : '–'}</td>
                <td>
                  {w.jobsDone} / {w.jobsFailed}
                </td>
                <td className="nowrap">{time(w.startedAt)}</td>
                <td className="nowrap">{time(w.heartbeatAt)}</td>
                <td className="small error-text">{w.lastError ?? ''}</td>
              </tr>
            ))}
            {items.length === 0 && (
              <tr>
                <td colSpan={11} className="muted">
                  No worker has registered. <Link to="/">Overview</Link> says whether jobs are waiting.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Card>
    </>
  );
}

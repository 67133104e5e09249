/**
 * One job of any team (GET /v1/admin/jobs/:id): parameters, timeline, previews, the result, timings, attempts and error;
 * cancel, delete and retry (a new job: the page follows it).
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { isRetryableStatus, isTerminalStatus } from '@dimoo/contracts';
import type { AdminJobDetail, JobEventRecord } from '../api';
import { ApiImage, Card, ErrorBox, Facts, Loading, StatusBadge } from '../components';
import { ms, shortId, time } from '../format';
import { Link, navigate } from '../router';
import { useSession } from '../session';

/** The timeline with runs of progress events folded into one row. */
function timeline(events: JobEventRecord[]): { key: string; at: string; type: string; text: string }[] {
  const rows: { key: string; at: string; type: string; text: string; count?: number }[] = [];
  for (const e of events) {
    const data = e.data ?? {};
    const last = rows.at(-1);
    if (e.type === 'progress' && last?.type === 'progress') {
      last.count = (last.count ?? 1) + 1;
      last.text = `${last.text.split(' → ')[0]} → step ${String(data['step'])}/${String(data['steps'])} (${last.count} updates)`;
      continue;
    }
    const text =
      e.type === 'progress'
        ? `step ${String(data['step'])}/${String(data['steps'])}`
        : e.type === 'preview'
          ? `preview at step ${String(data['step'])}`
          : Object.keys(data).length > 0
            ? JSON.stringify(data)
            : '';
    rows.push({ key: String(e.seq), at: e.at, type: e.type, text });
  }
  return rows;
}

function previewSteps(job: AdminJobDetail): number[] {
  return job.events.filter((e) => e.type === 'preview').map((e) => Number(e.data?.['step']));
}

export function JobDetailPage({ id }: { id: string }) {
  const session = useSession();
  const client = useQueryClient();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const job = useQuery({
    queryKey: ['admin-job', id],
    queryFn: () => session.job(id),
    refetchInterval: (q) => (q.state.data && isTerminalStatus(q.state.data.status) ? false : 2000),
  });
  const refresh = () => client.invalidateQueries({ queryKey: ['admin-job', id] });
  const cancel = useMutation({ mutationFn: () => session.sdk.cancel(id), onSuccess: refresh });
  const remove = useMutation({ mutationFn: () => session.sdk.delete(id), onSuccess: () => navigate('/jobs') });
  const retry = useMutation({ mutationFn: () => session.retry(id), onSuccess: (created) => navigate(`/jobs/${created.id}`) });

  if (job.isPending) return <Loading />;
  if (job.isError) return <ErrorBox error={job.error} />;
  const j = job.data;
  const finished = isTerminalStatus(j.status);
  const steps = previewSteps(j);
  const images = j.result?.kind === 'image' ? Math.max(1, j.result.images.length) : 0;
  const timings = Object.entries(j.timings ?? {}).filter(([, v]) => v !== null) as [string, number][];

  return (
    <>
      <header className="page-head">
        <h1>
          Job <span className="mono">{shortId(j.id)}</span> <StatusBadge status={j.status} />
        </h1>
        <div className="actions">
          {!finished && (
            <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
              Cancel
            </button>
          )}
          {isRetryableStatus(j.status) && (
            <button type="button" className="primary" onClick={() => retry.mutate()} disabled={retry.isPending}>
              Retry
            </button>
          )}
          {finished &&
            (confirmDelete ? (
              <>
                <button type="button" className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
                  Delete for good
                </button>
                <button type="button" onClick={() => setConfirmDelete(false)}>
                  Keep
                </button>
              </>
            ) : (
              <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>
                Delete
              </button>
            ))}
        </div>
      </header>
      <ErrorBox error={cancel.error ?? remove.error ?? retry.error} />
      {j.error && (
        <div className="banner bad" role="alert">
          {j.error.type}: {j.error.message}
          {j.error.field ? ` (field ${j.error.field})` : ''}
        </div>
      )}
      <div className="grid2">
        <Card title="Job">
          <Facts
            items={[
              ['id', <span className="mono">{j.id}</span>],
              ['team', <Link to={`/jobs?teamId=${j.teamId}`}>{j.teamName}</Link>],
              ['task', j.task],
              ['progress', `${Math.round(j.progress * 100)}% (step ${j.step} of ${j.steps ?? '?'})`],
              ['attempts', j.attempts],
              ['seed', j.seed ?? '–'],
              ['model', `${j.model.name}${j.model.checksum ? ` · ${j.model.checksum.slice(0, 12)}` : ''}`],
              ['API key', j.apiKeyId ? <span className="mono">{shortId(j.apiKeyId)}</span> : 'bootstrap / none'],
              ['retry of', j.retryOf ? <Link to={`/jobs/${j.retryOf}`}>{shortId(j.retryOf)}</Link> : '–'],
              ['created', time(j.createdAt)],
              ['started', time(j.startedAt)],
              ['finished', time(j.finishedAt)],
              ['deadline', time(j.deadline)],
              ...(j.resultDeletedAt ? ([['result removed', time(j.resultDeletedAt)]] as [string, string][]) : []),
            ]}
          />
        </Card>
        <Card title="Timings">
          {timings.length === 0 ? <p className="muted">Not started yet.</p> : <Facts items={timings.map(([k, v]) => [k.replace(/Ms$/, ''), ms(v)])} />}
          {j.params && (
            <>
              <h3>Parameters</h3>
              <pre className="json">{JSON.stringify(j.params, null, 2)}</pre>
            </>
          )}
        </Card>
      </div>
      <Card title="Result">
        {j.result?.kind === 'text' && (
          <p className="answer" data-testid="answer">
            {j.result.text}
          </p>
        )}
        {images > 0 && !j.resultDeletedAt && (
          <div className="strip">
            {Array.from({ length: images }, (_, i) => (
              <ApiImage key={i} source={`${j.id}/${i}`} load={(s) => s.resultUrl(j.id, i)} alt={`result ${i + 1}`} className="result-img" />
            ))}
          </div>
        )}
        {!j.result && <p className="muted">{finished ? 'No result.' : 'Not finished yet.'}</p>}
      </Card>
      <Card title={`Previews (${steps.length})`}>
        {steps.length === 0 ? (
          <p className="muted">No previews.</p>
        ) : (
          <div className="strip">
            {steps.map((step) => (
              <figure key={step} className="preview">
                <ApiImage source={`${j.id}/${step}`} load={(s) => s.previewUrl(j.id, step)} alt={`preview at step ${step}`} className="preview-img" />
                <figcaption>step {step}</figcaption>
              </figure>
            ))}
          </div>
        )}
      </Card>
      <Card title="Events">
        <table className="table compact">
          <tbody>
            {timeline(j.events).map((e) => (
              <tr key={e.key}>
                <td className="nowrap">{time(e.at)}</td>
                <td>
                  <span className={`badge event-${e.type}`}>{e.type}</span>
                </td>
                <td className="mono small">{e.text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
    </>
  );
}

/**
 * Queues (GET /v1/admin/queues): BullMQ's counts per queue, pause and resume, and bull-board through a one-time URL
 * (POST /v1/admin/board-session): the admin key never leaves this tab.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { QueueCounts } from '../api';
import { Card, ErrorBox, Loading } from '../components';
import { useSession } from '../session';

const COUNTS: (keyof QueueCounts)[] = ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'];

export function QueuesPage() {
  const session = useSession();
  const client = useQueryClient();
  const queues = useQuery({ queryKey: ['queues'], queryFn: () => session.queues(), refetchInterval: 5000 });
  const toggle = useMutation({
    mutationFn: ({ name, pause }: { name: string; pause: boolean }) => session.setQueuePaused(name, pause),
    onSuccess: () => client.invalidateQueries({ queryKey: ['queues'] }),
  });
  const board = useMutation({
    // the tab opens inside the click (a popup blocker allows that), the one-time URL follows
    mutationFn: async (tab: Window | null) => {
      try {
        const { url } = await session.boardSession();
        if (tab) tab.location.href = url;
        else window.open(url, '_blank');
      } catch (err) {
        tab?.close();
        throw err;
      }
    },
  });

  return (
    <>
      <header className="page-head">
        <h1>Queues</h1>
        <button type="button" onClick={() => board.mutate(window.open('', '_blank'))} disabled={board.isPending}>
          Open bull-board ↗
        </button>
      </header>
      <ErrorBox error={board.error ?? toggle.error} />
      <Card>
        {queues.isPending ? (
          <Loading />
        ) : queues.isError ? (
          <ErrorBox error={queues.error} />
        ) : (
          <table className="table" data-testid="queues-table">
            <thead>
              <tr>
                <th>Queue</th>
                <th>State</th>
                {COUNTS.map((c) => (
                  <th key={c} className="num">
                    {c}
                  </th>
                ))}
                <th />
              </tr>
            </thead>
            <tbody>
              {queues.data.items.map((q) => (
                <tr key={q.name}>
                  <td className="mono">{q.name}</td>
                  <td>{q.paused ? <span className="badge status-canceled">paused</span> : <span className="badge status-succeeded">running</span>}</td>
                  {COUNTS.map((c) => (
                    <td key={c} className="num">
                      {q.counts[c]}
                    </td>
                  ))}
                  <td>
                    <button type="button" onClick={() => toggle.mutate({ name: q.name, pause: !q.paused })} disabled={toggle.isPending}>
                      {q.paused ? 'Resume' : 'Pause'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

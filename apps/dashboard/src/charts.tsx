/** Chart settings shared by the pages (recharts): one colour per job status, axes that read in ms. */
import type { ReactNode } from 'react';
import { ResponsiveContainer } from 'recharts';
import { JOB_STATUSES } from '@dimoo/contracts';
import type { JobStatus } from './api';

export const STATUS_COLOURS: Record<JobStatus, string> = {
  queued: '#8b95a7',
  running: '#2f6fdf',
  succeeded: '#2e9d5b',
  failed: '#d64545',
  canceled: '#c98a1a',
  expired: '#7d5bbf',
};
export const STATUSES = JOB_STATUSES;

export const SERIES = { a: '#2f6fdf', b: '#9bbcf5', c: '#2e9d5b', d: '#a6dcb9' };

export const axisMs = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}s` : `${v}ms`);

export function ChartBox({ title, height = 220, empty, children }: { title: string; height?: number; empty?: boolean; children: ReactNode }) {
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {empty ? (
        <div className="chart-empty" style={{ height }}>
          no data yet
        </div>
      ) : (
        <div style={{ height }}>
          <ResponsiveContainer width="100%" height="100%">
            {children as React.ReactElement}
          </ResponsiveContainer>
        </div>
      )}
    </figure>
  );
}

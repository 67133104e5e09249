/**
 * Push for job events: every committed row of `job_events` sends a Postgres notification on `JOB_EVENTS_CHANNEL`
 * with its job id (a trigger, migration `20261129220000_fair_share`). One listening connection per API process; the
 * event log stays the record, so a notification only says "read this job's events now".
 */
import pg from 'pg';

export const JOB_EVENTS_CHANNEL = 'dimoo_job_events';

export interface JobEventListenerOptions {
  /** a job got a new event */
  onEvent: (jobId: string) => void;
  /** the connection was (re)established: notifications sent while it was down are gone, so read everything */
  onConnected: () => void;
  onError: (err: unknown) => void;
  /** how long to wait before reconnecting */
  retryMs?: number;
}

export class JobEventListener {
  private client: pg.Client | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly databaseUrl: string,
    private readonly options: JobEventListenerOptions,
  ) {}

  /** Connects now (resolves once listening, or after the first failure: it keeps retrying in the background). */
  async start(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 5000, keepAlive: true });
    this.client = client;
    const again = (err: unknown) => {
      if (this.client !== client) return;
      this.client = null;
      this.options.onError(err);
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (!this.closed) this.retry = setTimeout(() => void this.start(), this.options.retryMs ?? 1000);
    };
    client.on('error', again);
    client.on('end', () => again(new Error('the listening connection ended')));
    client.on('notification', (n) => {
      if (n.channel === JOB_EVENTS_CHANNEL && n.payload) this.options.onEvent(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
      this.options.onConnected();
    } catch (err) {
      again(err);
    }
  }

  get listening(): boolean {
    return this.client !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}

/**
 * The job enums live once, in @dimoo/contracts (enums.ts). Prisma's schema and the migrated database must say the same:
 * the generated enums, the Postgres enum types, and the partial index that allows one terminal event per job.
 */
import pg from 'pg';

import { JOB_STATUSES, JOB_TASKS, TERMINAL_STATUSES } from '@dimoo/contracts';
import { JobStatus, JobTask } from './generated/prisma/client';
import { createTestDatabase, type TestDatabase } from './testing';

describe('job enums: Prisma and Postgres equal @dimoo/contracts', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  const pgEnum = async (name: string) =>
    (
      await client.query<{ v: string }>(
        'SELECT e.enumlabel AS v FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = $1 ORDER BY e.enumsortorder',
        [name],
      )
    ).rows.map((r) => r.v);

  it('statuses', async () => {
    expect(Object.values(JobStatus)).toEqual([...JOB_STATUSES]);
    expect(await pgEnum('job_status')).toEqual([...JOB_STATUSES]);
  });

  it('tasks', async () => {
    expect(Object.values(JobTask)).toEqual([...JOB_TASKS]);
    expect(await pgEnum('job_task')).toEqual([...JOB_TASKS]);
  });

  it('the one-terminal-event index covers exactly the terminal statuses', async () => {
    const { rows } = await client.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE indexname = 'job_events_one_terminal_per_job'");
    const listed = [...(rows[0]?.indexdef ?? '').matchAll(/'(\w+)'::text/g)].map((m) => m[1]).sort();
    expect(listed).toEqual([...TERMINAL_STATUSES].sort());
  });
});

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import pg from 'pg';

import { createTestDatabase, type TestDatabase, workspaceRoot } from '../testing';

const execFileAsync = promisify(execFile);

// The committed migrations through the real CLI and the migration adapter of prisma.config.ts, on an empty database.
describe('prisma migrate deploy (PostgreSQL)', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase({ template: false });
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('applies every committed migration, including the hand-written partial index', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const migrations = await client.query<{ migration_name: string; finished_at: Date | null }>(
        'SELECT migration_name, finished_at FROM _prisma_migrations ORDER BY migration_name',
      );
      expect(migrations.rows.length).toBeGreaterThan(0);
      expect(migrations.rows.every((m) => m.finished_at !== null)).toBe(true);
      const tables = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
      expect(tables.rows.map((t) => t.tablename)).toEqual([
        '_prisma_migrations',
        'api_keys',
        'audit_log',
        'batches',
        'idempotency_keys',
        'job_events',
        'jobs',
        'notifier_state',
        'teams',
        'webhook_deliveries',
        'webhook_secrets',
        'workers',
      ]);
      const index = await client.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE indexname = 'job_events_one_terminal_per_job'");
      expect(index.rows[0]?.indexdef).toMatch(/CREATE UNIQUE INDEX .* WHERE .*'expired'/);
    } finally {
      await client.end();
    }
  });

  it('leaves nothing pending', async () => {
    const cli = require.resolve('prisma/build/index.js', { paths: [workspaceRoot()] });
    const { stdout } = await execFileAsync(process.execPath, [cli, 'migrate', 'status'], {
      cwd: workspaceRoot(),
      env: { ...process.env, DATABASE_URL: db.url, CHECKPOINT_DISABLE: '1', PRISMA_HIDE_UPDATE_MESSAGE: '1' },
    });
    expect(stdout).toContain('Database schema is up to date');
  });
});

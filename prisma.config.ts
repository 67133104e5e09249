// Prisma CLI configuration: WASM schema engine ("js") over a driver adapter, so no native engine binary is downloaded.
// The adapter is a migration-only wrapper around @prisma/adapter-pg (see libs/db/src/migrate/migration-adapter.ts).
import path from 'node:path';

import { defineConfig } from 'prisma/config';

import { migrationAdapter } from './libs/db/src/migrate/migration-adapter';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: path.join(__dirname, 'prisma', 'schema.prisma'),
  migrations: { path: path.join(__dirname, 'prisma', 'migrations') },
  // Called only by commands that touch the database (migrate, db, diff); `prisma generate` never connects.
  adapter: () => Promise.resolve(migrationAdapter(process.env['DATABASE_URL'])),
});

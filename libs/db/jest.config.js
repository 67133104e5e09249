// Integration tests on the real local PostgreSQL: each spec file creates its own database and applies the committed
// migrations with `prisma migrate deploy` (see src/testing/test-database.ts).
module.exports = { ...require('../../jest.preset.js'), displayName: 'db', rootDir: __dirname, roots: ['<rootDir>/src'] };

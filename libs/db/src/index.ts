export * from './api-key.repository';
export * from './batch.repository';
export * from './errors';
export * from './job.repository';
export { createPrisma, isUuid, Prisma, PrismaClient } from './prisma';
export type { ApiKey, AuditEntry, Batch, CreatePrismaOptions, Job, JobEvent, Team } from './prisma';
export * from './listen';
export * from './job-view';
export * from './webhook.repository';

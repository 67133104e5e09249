export * from './job-options';
export * from './queues';
export * from './redis';
export * from './retry';
export * from './fair-queue';
export * from './fair-share';
export * from './telemetry';

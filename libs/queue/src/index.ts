export * from './env';
export * from './job-options';
export * from './redis';

export * from './test-database';
export * from './worker-state';

export * from './jobs';
export * from './manifest';

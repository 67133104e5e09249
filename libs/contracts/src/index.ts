export * from './admin';
export * from './admin-insights';
export * from './api';
export * from './enums';
export * from './jobs';
export * from './manifest';
export * from './resolve';

export * from './api';
export * from './enums';
export * from './jobs';
export * from './manifest';
export * from './resolve';

export * from './env';
export * from './metrics';

export * from './errors';
export * from './image';
export * from './inputs';
export * from './manifest';
export * from './mask';
export * from './probe';
export * from './tokenizer';

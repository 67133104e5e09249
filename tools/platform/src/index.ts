export * from './deploy';
export * from './fault-proxy';
export * from './platform';
export * from './processes';

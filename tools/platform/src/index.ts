export * from './deploy';
export * from './platform';
export * from './processes';

export * from './client';
export { readEventStream } from './events';
export type { SseItem } from './events';
export * from './images';
export type { components, operations, paths } from './generated/openapi';

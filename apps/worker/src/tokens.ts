export const WORKER_ENV = Symbol('WORKER_ENV');
export const ENGINE = Symbol('ENGINE');

export const API_ENV = Symbol('API_ENV');
export const MODEL_MANIFEST = Symbol('MODEL_MANIFEST');
export const GENERATION_QUEUE = Symbol('GENERATION_QUEUE');

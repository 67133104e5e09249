export * from './errors';
export * from './image';
export * from './manifest';
export * from './onnx-model';
export * from './pipeline';
export * from './session';
export * from './tokenizer';
export * from './vq';

export * from './engine-host';
export * from './engine-protocol';
export * from './onnx-model';
export * from './pipeline';
export * from './prompts';
export * from './segment';
export * from './session';
export * from './vq';

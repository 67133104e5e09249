/** Test and benchmark helpers of the runtime (`@dimoo/runtime/testing`): the toy world and the mixed WebGPU batch. */
export * from './model-dir';
export * from './toy-world';
export * from '../webgpu/scenarios';

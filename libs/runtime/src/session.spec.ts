/**
 * Provider selection: a GPU provider that this onnxruntime-node build lacks (the npm package ships CUDA and TensorRT
 * only where its install step could download them) refuses with the provider named, or falls back to CPU when allowed
 * and says so. Where the provider is present (a GPU machine) the open must simply succeed on it.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '@dimoo/model';
import type { ExecutionProvider } from './session';
import { openSession } from './session';
import { TEST_MODEL_DIR } from './testing/model-dir';

const graph = join(TEST_MODEL_DIR, 'vq_decode.onnx');
const present = (name: string) => ort.listSupportedBackends().some((b) => b.name === name && b.bundled);

describe.each<ExecutionProvider>(['cuda', 'tensorrt'])('the %s provider', (provider) => {
  const available = present(provider);

  (available ? it.skip : it)('refuses with the provider named when this build lacks it', async () => {
    const err = await openSession(graph, { provider, allowCpuFallback: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(String(err)).toContain(`with the ${provider} execution provider`);
  });

  (available ? it.skip : it)('falls back to CPU when allowed, and logs it', async () => {
    const logs: string[] = [];
    const opened = await openSession(graph, { provider, allowCpuFallback: true, log: (m) => logs.push(m) });
    expect(opened.provider).toBe('cpu');
    expect(logs.join('\n')).toContain(`${provider} execution provider unavailable`);
  });

  (available ? it : it.skip)('opens on the GPU where the provider is present', async () => {
    expect((await openSession(graph, { provider, allowCpuFallback: false })).provider).toBe(provider);
  });
});

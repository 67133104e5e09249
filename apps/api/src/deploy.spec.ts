/**
 * The deployment files boot the API: in every kustomization as `kubectl kustomize` renders it (k8s/base, each
 * overlay) and in the compose service, the API's environment passes its env schema with no unknown variable, the
 * manifest it reads at boot is in the pod itself (a ConfigMap, never the workers' model volume) and loads, and the
 * probes point at the routes the API serves.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifestFile } from '@dimoo/model';
import { composeEnv, containerEnv, deploymentPod, kustomizations, kustomize, mountedConfigMapFile } from '@dimoo/platform';
import { ApiEnvSchema, manifestFile } from './config';

const known = new Set(Object.keys(ApiEnvSchema.shape));

describe.each(kustomizations())('api deployment: %s', (dir) => {
  const objects = kustomize(dir);
  const pod = deploymentPod(objects, 'dimoo-api');
  const container = pod.containers[0]! as (typeof pod.containers)[number] & {
    livenessProbe?: { httpGet: { path: string } };
    readinessProbe?: { httpGet: { path: string } };
  };
  const env = containerEnv(objects, container);

  it('the pod environment passes the API schema; probes hit /healthz and /readyz on the served port', () => {
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    expect(ApiEnvSchema.parse(env).PORT).toBe(8080);
    expect([container.livenessProbe?.httpGet.path, container.readinessProbe?.httpGet.path]).toEqual(['/healthz', '/readyz']);
  });

  it('the manifest the API reads at boot is mounted from a ConfigMap and loads; the pod mounts no model files', async () => {
    const parsed = ApiEnvSchema.parse(env);
    // the model directory is the workers': the API has none, it must not fall back to `${MODEL_DIR}/manifest.json`
    expect(parsed.MODEL_DIR).toBeUndefined();
    const text = mountedConfigMapFile(objects, pod, container, manifestFile(parsed));
    const scratch = mkdtempSync(join(tmpdir(), 'dimoo-manifest-'));
    try {
      writeFileSync(join(scratch, 'manifest.json'), text);
      const manifest = await loadManifestFile(join(scratch, 'manifest.json'));
      expect(manifest.name).toMatch(/\S/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    expect((pod.volumes ?? []).filter((v) => !v['configMap'] && !v['emptyDir'])).toEqual([]);
  });
});

describe('api deployment: docker-compose.yml', () => {
  it('the api service environment passes the API schema', () => {
    const env = composeEnv('api');
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    expect(() => ApiEnvSchema.parse(env)).not.toThrow();
  });
});

/**
 * The deployment files boot the API: the environment of the API pod (k8s/base) and of the compose service passes the
 * API's env schema with no unknown variable, and the probes point at the routes the API serves.
 */
import { composeEnv, containerEnv, deploymentPod, k8sObjects } from '@dimoo/platform';
import { ApiEnvSchema } from './config';

const known = new Set(Object.keys(ApiEnvSchema.shape));

describe('api deployment', () => {
  it('k8s/base: the pod environment passes the API schema; probes hit /healthz and /readyz on the served port', () => {
    const base = k8sObjects('k8s/base');
    const container = deploymentPod(base, 'dimoo-api').containers[0]! as {
      env?: { name: string }[];
      livenessProbe?: { httpGet: { path: string } };
      readinessProbe?: { httpGet: { path: string } };
    };
    const env = containerEnv(base, container as Parameters<typeof containerEnv>[1]);
    // MODEL_DIR: the API reads the manifest to check requests against the served model's limits
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    expect(ApiEnvSchema.parse(env).PORT).toBe(8080);
    expect([container.livenessProbe?.httpGet.path, container.readinessProbe?.httpGet.path]).toEqual(['/healthz', '/readyz']);
  });

  it('docker-compose.yml: the api service environment passes the API schema', () => {
    const env = composeEnv('api');
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    expect(() => ApiEnvSchema.parse(env)).not.toThrow();
  });
});

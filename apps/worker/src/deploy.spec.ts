/**
 * The deployment files boot the worker: the environment a worker pod gets in every kustomization as `kubectl kustomize`
 * renders it (k8s/base, each overlay) and the compose service's pass the worker's env schema and name no variable the
 * worker does not know; the pod's termination grace outlasts the worker's drain (SHUTDOWN_GRACE_MS), so a rolling
 * update or a scale-down hands jobs back instead of killing them; a pod given a GPU runs the CUDA provider on a model
 * mounted read-only.
 */
import { composeEnv, containerEnv, deploymentPod, kustomizations, kustomize } from '@dimoo/platform';
import { WorkerEnvSchema } from './config';

const known = new Set(Object.keys(WorkerEnvSchema.shape));
const unknownIn = (env: Record<string, string>) => Object.keys(env).filter((k) => !known.has(k) && k !== 'ADMIN_API_KEY');

describe.each(kustomizations())('worker deployment: %s', (dir) => {
  const objects = kustomize(dir);
  const pod = deploymentPod(objects, 'dimoo-worker');
  const c = pod.containers[0]! as (typeof pod.containers)[number] & {
    ports?: { name: string; containerPort: number }[];
    readinessProbe?: { httpGet: { path: string; port: string } };
    livenessProbe?: { httpGet: { path: string; port: string } };
    resources?: { limits?: Record<string, string | number> };
  };
  const env = containerEnv(objects, c);

  it('the pod environment passes the worker schema, has no unknown variable, and the grace period outlasts the drain', () => {
    expect(unknownIn(env)).toEqual([]);
    const parsed = WorkerEnvSchema.parse(env);
    expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(parsed.SHUTDOWN_GRACE_MS + 5000);
    // the probes ask the worker's health endpoint, on the port it serves it
    expect(c.ports?.find((x) => x.name === c.readinessProbe?.httpGet.port)?.containerPort).toBe(parsed.HEALTH_PORT);
    expect([c.readinessProbe?.httpGet.path, c.livenessProbe?.httpGet.path]).toEqual(['/readyz', '/healthz']);
  });

  it('a GPU (nvidia.com/gpu limit) and a GPU provider go together; a GPU worker reads its model from a read-only volume', () => {
    const parsed = WorkerEnvSchema.parse(env);
    const gpu = Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0) > 0;
    expect(parsed.EXECUTION_PROVIDER !== 'cpu').toBe(gpu);
    if (gpu) {
      const mount = c.volumeMounts?.find((m) => parsed.MODEL_DIR.startsWith(`${m.mountPath}/`));
      expect(mount?.readOnly).toBe(true);
      expect(pod.volumes?.find((v) => v.name === mount!.name)?.['persistentVolumeClaim']).toBeDefined();
    }
  });
});

describe('worker deployment: docker-compose.yml', () => {
  it('the worker service environment passes the worker schema', () => {
    const compose = composeEnv('worker');
    expect(unknownIn(compose)).toEqual([]);
    expect(() => WorkerEnvSchema.parse(compose)).not.toThrow();
  });
});

/**
 * The deployment files boot the worker: the environment a worker pod (k8s base and GPU overlay) or the compose service
 * gets passes the worker's env schema, names no variable the worker does not know, and the pod's termination grace
 * outlasts the worker's drain (SHUTDOWN_GRACE_MS), so a rolling update hands jobs back instead of killing them.
 */
import { composeEnv, containerEnv, deploymentPod, k8sObjects } from '@dimoo/platform';
import { WorkerEnvSchema } from './config';

const known = new Set(Object.keys(WorkerEnvSchema.shape));
const unknownIn = (env: Record<string, string>) => Object.keys(env).filter((k) => !known.has(k) && k !== 'ADMIN_API_KEY');

describe('worker deployment', () => {
  const base = k8sObjects('k8s/base');
  const pod = deploymentPod(base, 'dimoo-worker');
  const env = containerEnv(base, pod.containers[0]!);

  it('k8s/base: the pod environment passes the worker schema and has no unknown variable', () => {
    expect(unknownIn(env)).toEqual([]);
    const parsed = WorkerEnvSchema.parse(env);
    expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(parsed.SHUTDOWN_GRACE_MS + 5000);
    // the probes ask the worker's health endpoint, on the port it serves it
    const c = pod.containers[0] as {
      ports?: { name: string; containerPort: number }[];
      readinessProbe?: { httpGet: { path: string; port: string } };
      livenessProbe?: { httpGet: { path: string; port: string } };
    };
    expect(c.ports?.find((x) => x.name === c.readinessProbe?.httpGet.port)?.containerPort).toBe(parsed.HEALTH_PORT);
    expect([c.readinessProbe?.httpGet.path, c.livenessProbe?.httpGet.path]).toEqual(['/readyz', '/healthz']);
  });

  it('k8s/overlays/gpu: the CUDA worker patch keeps the schema and the drain inside the grace period', () => {
    const patch = deploymentPod(k8sObjects('k8s/overlays/gpu'), 'dimoo-worker');
    const gpuEnv = { ...env, ...containerEnv(base, { name: 'worker', env: patch.containers[0]!.env ?? [] }), MODEL_DIR: '/models/lumina-dimoo/fp16' };
    expect(unknownIn(gpuEnv)).toEqual([]);
    const parsed = WorkerEnvSchema.parse(gpuEnv);
    expect(parsed.EXECUTION_PROVIDER).toBe('cuda');
    expect(patch.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(parsed.SHUTDOWN_GRACE_MS + 5000);
  });

  it('docker-compose.yml: the worker service environment passes the worker schema', () => {
    const compose = composeEnv('worker');
    expect(unknownIn(compose)).toEqual([]);
    expect(() => WorkerEnvSchema.parse(compose)).not.toThrow();
  });
});

/**
 * The deployment files boot the notifier: the environment its pod (k8s base) and its compose service get passes its
 * env schema; the only variables it does not read are the shared ones every service gets (store, model).
 */
import { ServiceEnvSchema } from '@dimoo/config';
import { composeEnv, containerEnv, deploymentPod, k8sObjects } from '@dimoo/platform';
import { NotifierEnvSchema } from './config';

const known = new Set([...Object.keys(NotifierEnvSchema.shape), ...Object.keys(ServiceEnvSchema.shape), 'ADMIN_API_KEY']);
const unknownIn = (env: Record<string, string>) => Object.keys(env).filter((k) => !known.has(k));

describe('notifier deployment', () => {
  it('k8s/base: the pod environment passes the notifier schema and has no unknown variable', () => {
    const base = k8sObjects('k8s/base');
    const pod = deploymentPod(base, 'dimoo-notifier');
    const env = containerEnv(base, pod.containers[0]!);
    expect(unknownIn(env)).toEqual([]);
    expect(NotifierEnvSchema.parse(env).WEBHOOK_ALLOW).toEqual([]);
  });

  it('docker-compose.yml: the notifier service environment passes the notifier schema', () => {
    const env = composeEnv('notifier');
    expect(unknownIn(env)).toEqual([]);
    expect(() => NotifierEnvSchema.parse(env)).not.toThrow();
  });
});

/**
 * The deployment files boot the notifier: the environment its pod gets in every kustomization as `kubectl kustomize`
 * renders it (k8s/base, each overlay) and its compose service's pass its env schema; the only variables it does not
 * read are the shared ones every service gets (store, model).
 */
import { ServiceEnvSchema } from '@dimoo/config';
import { composeEnv, containerEnv, deploymentPod, kustomizations, kustomize } from '@dimoo/platform';
import { NotifierEnvSchema } from './config';

const known = new Set([...Object.keys(NotifierEnvSchema.shape), ...Object.keys(ServiceEnvSchema.shape), 'ADMIN_API_KEY']);
const unknownIn = (env: Record<string, string>) => Object.keys(env).filter((k) => !known.has(k));

describe.each(kustomizations())('notifier deployment: %s', (dir) => {
  it('the pod environment passes the notifier schema and has no unknown variable', () => {
    const objects = kustomize(dir);
    const env = containerEnv(objects, deploymentPod(objects, 'dimoo-notifier').containers[0]!);
    expect(unknownIn(env)).toEqual([]);
    expect(NotifierEnvSchema.parse(env).WEBHOOK_ALLOW).toEqual([]);
  });
});

describe('notifier deployment: docker-compose.yml', () => {
  it('the notifier service environment passes the notifier schema', () => {
    const env = composeEnv('notifier');
    expect(unknownIn(env)).toEqual([]);
    expect(() => NotifierEnvSchema.parse(env)).not.toThrow();
  });
});

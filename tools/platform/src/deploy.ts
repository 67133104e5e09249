/**
 * Reads the deployment files (k8s/, docker-compose.yml) the way a pod or a compose service would see its
 * environment, so tests can run each service's env schema over it: a variable the schema does not know, or a required
 * one that is missing, fails CI instead of a rollout.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { WORKSPACE_ROOT } from './processes';

export interface K8sObject {
  kind: string;
  metadata: { name: string };
  [key: string]: unknown;
}

interface Container {
  name: string;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
}

interface PodSpec {
  terminationGracePeriodSeconds?: number;
  containers: Container[];
}

/** Every object of every YAML file in `dir` (kustomization files excluded). */
export function k8sObjects(dir: string): K8sObject[] {
  const root = join(WORKSPACE_ROOT, dir);
  return readdirSync(root)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(root, f), 'utf8')).map((d) => d.toJS() as K8sObject))
    .filter((o) => o !== null);
}

export function deploymentPod(objects: K8sObject[], name: string): PodSpec {
  const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return (d as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

/**
 * The environment the container gets: ConfigMap and Secret entries (envFrom), then its own `env` (later wins, as in
 * Kubernetes); a `valueFrom` entry becomes a placeholder string.
 */
export function containerEnv(objects: K8sObject[], container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  const data = (kind: string, name: string, field: string) =>
    ((objects.find((o) => o.kind === kind && o.metadata.name === name) as Record<string, unknown> | undefined)?.[field] ?? null) as Record<
      string,
      string
    > | null;
  for (const from of container.envFrom ?? []) {
    const src = from.configMapRef
      ? data('ConfigMap', from.configMapRef.name, 'data')
      : from.secretRef
        ? data('Secret', from.secretRef.name, 'stringData')
        : null;
    if (!src) throw new Error(`container ${container.name}: envFrom names a missing ConfigMap or Secret`);
    Object.assign(env, src);
  }
  for (const e of container.env ?? []) env[e.name] = e.value ?? `from-${e.name.toLowerCase()}`;
  return env;
}

/** docker-compose.yml's environment of `service` (x-env anchors resolved; `${VAR:-default}` takes the default). */
export function composeEnv(service: string): Record<string, string> {
  const doc = parseAllDocuments(readFileSync(join(WORKSPACE_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true })[0]!.toJS({ maxAliasCount: -1 }) as {
    services: Record<string, { environment?: Record<string, string> }>;
  };
  const env = doc.services[service]?.environment;
  if (!env) throw new Error(`no compose service ${service}`);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));
}

/**
 * Reads the deployment files (k8s/, docker-compose.yml) the way a pod or a compose service would see its
 * environment, so tests can run each service's env schema over it: a variable the schema does not know, or a required
 * one that is missing, fails CI instead of a rollout. Kubernetes objects are read as `kubectl kustomize` renders each
 * kustomization (the base and every overlay), patches, generated ConfigMaps and image tags applied.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { WORKSPACE_ROOT } from './processes';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  [key: string]: unknown;
}

export interface PodSpec {
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string; items?: { key: string; path: string }[] }; [key: string]: unknown }[];
  [key: string]: unknown;
}

/** The kustomizations a team can apply: k8s/base and every folder under k8s/overlays. */
export function kustomizations(): string[] {
  const overlays = readdirSync(join(WORKSPACE_ROOT, 'k8s/overlays'), { withFileTypes: true }).filter((d) => d.isDirectory());
  return ['k8s/base', ...overlays.map((d) => `k8s/overlays/${d.name}`)];
}

const rendered = new Map<string, K8sObject[]>();

/** Every object `kubectl kustomize <dir>` renders (kubectl ≥ 1.14 carries kustomize; this one is v1.32). */
export function kustomize(dir: string): K8sObject[] {
  const known = rendered.get(dir);
  if (known) return known;
  let yaml: string;
  try {
    yaml = execFileSync('kubectl', ['kustomize', join(WORKSPACE_ROOT, dir)], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error(
        'kubectl not found: the deployment tests render k8s/ with `kubectl kustomize` (kubectl v1.32 is part of the machine image and cannot be installed from apt here)',
      );
    }
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? e.message}`);
  }
  const objects = parseAllDocuments(yaml)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  rendered.set(dir, objects);
  return objects;
}

export function deploymentPod(objects: K8sObject[], name: string): PodSpec {
  const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return (d as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

/** The content of the ConfigMap entry mounted at `file` in the container (a configMap volume), or an error saying why not. */
export function mountedConfigMapFile(objects: K8sObject[], pod: PodSpec, container: Container, file: string): string {
  const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  if (!mount) throw new Error(`container ${container.name}: nothing is mounted at ${file}`);
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  if (!volume?.configMap) throw new Error(`container ${container.name}: ${file} is not on a configMap volume`);
  const path = file.slice(mount.mountPath.replace(/\/$/, '').length + 1);
  const key = volume.configMap.items ? volume.configMap.items.find((i) => i.path === path)?.key : path;
  const data = (objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap!.name) as { data?: Record<string, string> } | undefined)
    ?.data;
  if (!data) throw new Error(`container ${container.name}: no ConfigMap ${volume.configMap.name}`);
  if (key === undefined || data[key] === undefined) throw new Error(`ConfigMap ${volume.configMap.name} has no entry for ${file}`);
  return data[key];
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

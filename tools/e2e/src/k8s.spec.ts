/**
 * Every kustomization a team can apply (k8s/base, each folder under k8s/overlays), rendered by `kubectl kustomize`:
 * each object is valid against its schema (kubernetes-models; KEDA and Prometheus Operator models for their kinds),
 * and the deployment rules hold — pods run as non-root on a read-only root filesystem with no privilege escalation,
 * no capabilities and the RuntimeDefault seccomp profile; every container has CPU and memory requests and limits and a
 * pinned image; a CUDA worker has a GPU limit; the namespace denies all traffic but what each pod needs, and only the
 * notifier reaches the internet; autoscaled workers are not cut short by a scale-down. The env schemas run over the
 * same rendered output in apps/*\/src/deploy.spec.ts. The model manifests the kustomizations carry are copies, held
 * equal to their sources here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1';
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as batch from 'kubernetes-models/batch/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import { ManifestSchema } from '@dimoo/contracts';
import type { Container, K8sObject, PodSpec } from '@dimoo/platform';
import { kustomizations, kustomize, WORKSPACE_ROOT } from '@dimoo/platform';

type Model = new (data: unknown) => { validate(): void };
/** The models of every apiVersion the kustomizations use: an object of another one fails until it is added here. */
const MODELS: Record<string, Record<string, unknown>> = {
  v1: core,
  'apps/v1': apps,
  'batch/v1': batch,
  'policy/v1': policy,
  'autoscaling/v2': autoscaling,
  'networking.k8s.io/v1': networking,
  'keda.sh/v1alpha1': keda,
  'monitoring.coreos.com/v1': monitoring,
};

interface Workload {
  id: string;
  name: string;
  labels: Record<string, string>;
  pod: PodSpec;
}

/** The pods of every Deployment and Job, named `Kind/name`, with their template's labels. */
function workloads(objects: K8sObject[]): Workload[] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
    .map((o) => {
      const template = (o as unknown as { spec: { template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } } }).spec.template;
      return { id: `${o.kind}/${o.metadata.name}`, name: o.metadata.name, labels: template.metadata?.labels ?? {}, pod: template.spec };
    });
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabel &&
    (selector.matchExpressions ?? []).every((e) => {
      const value = labels[e.key];
      if (e.operator === 'In') return value !== undefined && (e.values ?? []).includes(value);
      if (e.operator === 'NotIn') return value === undefined || !(e.values ?? []).includes(value);
      if (e.operator === 'Exists') return value !== undefined;
      return value === undefined;
    })
  );
}

interface Peer {
  ipBlock?: { cidr: string; except?: string[] };
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}
interface Rule {
  to?: Peer[];
  from?: Peer[];
  ports?: { protocol?: string; port?: number | string }[];
}
interface Policy {
  name: string;
  podSelector: LabelSelector;
  policyTypes: string[];
  egress?: Rule[];
  ingress?: Rule[];
}

const policies = (objects: K8sObject[]): Policy[] =>
  objects.filter((o) => o.kind === 'NetworkPolicy').map((o) => ({ name: o.metadata.name, ...(o as unknown as { spec: Omit<Policy, 'name'> }).spec }));

/** A rule's destinations include every address (no `to`, or an ipBlock over the whole IPv4 or IPv6 space). */
const anyAddress = (peers: Peer[] | undefined) =>
  !peers || peers.length === 0 || peers.some((p) => p.ipBlock?.cidr === '0.0.0.0/0' || p.ipBlock?.cidr === '::/0');
/**
 * The ports a pod other than the notifier may reach at any address: DNS, the backing services and an OpenTelemetry
 * collector's OTLP/HTTP port (network-policies.yaml).
 */
const BACKEND_PORTS = new Set([53, 5432, 6379, 9000, 4318]);

const containersOf = (pod: PodSpec): Container[] => [...pod.containers, ...((pod['initContainers'] as Container[] | undefined) ?? [])];

describe.each(kustomizations())('kustomization %s', (dir) => {
  const objects = kustomize(dir);
  const pods = workloads(objects);

  it('renders, and every object is valid against its Kubernetes, KEDA or Prometheus Operator schema', () => {
    expect(pods.length).toBeGreaterThan(0);
    const invalid: string[] = [];
    for (const o of objects) {
      const model = MODELS[o.apiVersion]?.[o.kind] as Model | undefined;
      if (!model) {
        invalid.push(`${o.apiVersion} ${o.kind}/${o.metadata.name}: no model (add its package to MODELS)`);
        continue;
      }
      try {
        new model(o).validate();
      } catch (err) {
        invalid.push(`${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
      }
    }
    expect(invalid).toEqual([]);
  });

  it('every pod runs without a service account token, as a non-root user, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    const problems: string[] = [];
    for (const { id, pod } of pods) {
      if (pod['automountServiceAccountToken'] !== false) problems.push(`${id}: automountServiceAccountToken`);
      const podSc = (pod['securityContext'] ?? {}) as { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
      for (const c of containersOf(pod)) {
        const sc = (c['securityContext'] ?? {}) as typeof podSc & {
          readOnlyRootFilesystem?: boolean;
          allowPrivilegeEscalation?: boolean;
          capabilities?: { drop?: string[]; add?: string[] };
        };
        const where = `${id} ${c.name}`;
        if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot`);
        const user = sc.runAsUser ?? podSc.runAsUser;
        if (user === undefined || user === 0) problems.push(`${where}: runAsUser (a non-zero uid)`);
        if ((sc.seccompProfile ?? podSc.seccompProfile)?.type !== 'RuntimeDefault') problems.push(`${where}: seccompProfile RuntimeDefault`);
        if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem`);
        if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation false`);
        if (!sc.capabilities?.drop?.includes('ALL') || (sc.capabilities.add ?? []).length > 0) problems.push(`${where}: capabilities drop ALL, add none`);
        // Node, npm and Prisma may write temporary files: /tmp is a volume, never the image
        if (!c.volumeMounts?.some((m) => m.mountPath === '/tmp')) problems.push(`${where}: a volume at /tmp`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every container has CPU and memory requests and limits and a pinned image (a tag or digest, never latest)', () => {
    const problems: string[] = [];
    for (const { id, pod } of pods) {
      for (const c of containersOf(pod)) {
        const r = (c['resources'] ?? {}) as { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
        for (const kind of ['requests', 'limits'] as const) {
          for (const resource of ['cpu', 'memory']) if (r[kind]?.[resource] === undefined) problems.push(`${id} ${c.name}: ${kind}.${resource}`);
        }
        const image = c.image ?? '';
        const tag = image.includes('@') ? 'digest' : /:([^/:]+)$/.exec(image)?.[1];
        if (!tag || tag === 'latest') problems.push(`${id} ${c.name}: image ${image} is not pinned`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('a container on a GPU provider has an nvidia.com/gpu limit', () => {
    const problems: string[] = [];
    for (const { id, pod } of pods) {
      for (const c of containersOf(pod)) {
        const provider = c.env?.find((e) => e.name === 'EXECUTION_PROVIDER')?.value ?? 'cpu';
        const limits = (c['resources'] as { limits?: Record<string, unknown> } | undefined)?.limits ?? {};
        if (provider !== 'cpu' && !(Number(limits['nvidia.com/gpu']) >= 1)) problems.push(`${id} ${c.name}: ${provider} without a GPU limit`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('network: all traffic denied by default; only the notifier reaches the internet; the API takes traffic on http', () => {
    const all = policies(objects);
    const denyAll = all.find((p) => Object.keys(p.podSelector).length === 0 && p.policyTypes.includes('Egress') && p.policyTypes.includes('Ingress'));
    expect(denyAll && !denyAll.egress && !denyAll.ingress).toBe(true);
    const internet: string[] = [];
    for (const w of pods) {
      for (const p of all.filter((q) => selects(q.podSelector, w.labels))) {
        for (const rule of p.egress ?? []) {
          if (!anyAddress(rule.to)) continue;
          const ports = rule.ports?.map((x) => x.port) ?? [];
          const open = ports.length === 0 ? ['any port'] : ports.filter((port) => !BACKEND_PORTS.has(Number(port)));
          if (open.length > 0) internet.push(`${w.id} via ${p.name}: ${open.join(', ')}`);
        }
      }
    }
    // the notifier (webhooks on 80 and 443) and nothing else
    expect([...new Set(internet.map((line) => line.split(' ')[0]))]).toEqual(['Deployment/dimoo-notifier']);
    expect(internet.join('\n')).toMatch(/dimoo-notifier-webhooks: 80, 443/);
    const api = pods.find((w) => w.name === 'dimoo-api')!;
    const apiIngress = all.filter((p) => selects(p.podSelector, api.labels)).flatMap((p) => p.ingress ?? []);
    expect(apiIngress.flatMap((r) => r.ports?.map((x) => x.port) ?? [])).toContain('http');
  });

  it('Services and ServiceMonitors name ports their pods serve', () => {
    const problems: string[] = [];
    const services = objects.filter((o) => o.kind === 'Service');
    for (const s of services) {
      const spec = (s as unknown as { spec: { selector: Record<string, string>; ports: { name: string; targetPort?: string | number }[] } }).spec;
      const backing = pods.filter((w) => selects({ matchLabels: spec.selector }, w.labels));
      if (backing.length === 0) problems.push(`Service/${s.metadata.name}: selects no pod`);
      for (const port of spec.ports) {
        const served = backing.every((w) =>
          w.pod.containers.some((c) => (c['ports'] as { name?: string }[] | undefined)?.some((p) => p.name === port.targetPort)),
        );
        if (!served) problems.push(`Service/${s.metadata.name}: targetPort ${String(port.targetPort)}`);
      }
    }
    for (const m of objects.filter((o) => o.kind === 'ServiceMonitor')) {
      const spec = (m as unknown as { spec: { selector: LabelSelector; endpoints: { port: string }[] } }).spec;
      const target = services.filter((s) => selects(spec.selector, s.metadata.labels ?? {}));
      const names = target.flatMap((s) => (s as unknown as { spec: { ports: { name: string }[] } }).spec.ports.map((p) => p.name));
      if (target.length === 0) problems.push(`ServiceMonitor/${m.metadata.name}: selects no Service`);
      for (const e of spec.endpoints) if (!names.includes(e.port)) problems.push(`ServiceMonitor/${m.metadata.name}: port ${e.port}`);
    }
    expect(problems).toEqual([]);
  });

  it('autoscaled Deployments leave their replica count to the autoscaler; KEDA wakes workers on the first job and lets batches drain', () => {
    const problems: string[] = [];
    const deployment = (name: string) =>
      objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as { spec: Record<string, unknown> } | undefined;
    for (const h of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
      const target = (h as unknown as { spec: { scaleTargetRef: { name: string } } }).spec.scaleTargetRef.name;
      if (!deployment(target)) problems.push(`HorizontalPodAutoscaler/${h.metadata.name}: no Deployment ${target}`);
      else if ('replicas' in deployment(target)!.spec) problems.push(`Deployment/${target}: replicas set, but an HPA owns it`);
    }
    for (const s of objects.filter((o) => o.kind === 'ScaledObject')) {
      const spec = (s as unknown as { spec: keda.IScaledObject['spec'] }).spec;
      const target = deployment(spec.scaleTargetRef.name);
      if (!target) {
        problems.push(`ScaledObject/${s.metadata.name}: no Deployment ${spec.scaleTargetRef.name}`);
        continue;
      }
      if ('replicas' in target.spec) problems.push(`Deployment/${spec.scaleTargetRef.name}: replicas set, but KEDA owns it`);
      const grace = (target.spec['template'] as { spec: PodSpec }).spec.terminationGracePeriodSeconds ?? 30;
      const scaleDown = spec.advanced?.horizontalPodAutoscalerConfig?.behavior?.scaleDown?.stabilizationWindowSeconds ?? 300;
      if ((spec.cooldownPeriod ?? 300) < grace) problems.push(`ScaledObject/${s.metadata.name}: cooldownPeriod shorter than the drain`);
      if (scaleDown < grace) problems.push(`ScaledObject/${s.metadata.name}: scale-down stabilization shorter than the drain`);
      for (const t of spec.triggers) {
        // with minReplicaCount 0, a job must wake a worker: an activation threshold above 0 would strand a lone job
        if (spec.minReplicaCount === 0 && Number(t.metadata['activationThreshold'] ?? 0) !== 0) {
          problems.push(`ScaledObject/${s.metadata.name}: activationThreshold`);
        }
        if (t.type === 'prometheus' && !/dimoo_queue_waiting_jobs/.test(String(t.metadata['query']))) problems.push(`ScaledObject/${s.metadata.name}: query`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('the model manifests the kustomizations carry', () => {
  const json = (path: string): unknown => JSON.parse(readFileSync(join(WORKSPACE_ROOT, path), 'utf8'));

  it('k8s/base/model-manifest.json is models/tiny/manifest.json, the model the base workers serve (after a rebuild: cp models/tiny/manifest.json k8s/base/)', () => {
    expect(json('k8s/base/model-manifest.json')).toEqual(json('models/tiny/manifest.json'));
  });

  it("k8s/overlays/gpu/model-manifest.json is an exported model's manifest; the committed placeholder is the twin's (cp models/twin/fp16/manifest.json k8s/overlays/gpu/)", () => {
    const manifest = ManifestSchema.parse(json('k8s/overlays/gpu/model-manifest.json'));
    // the GPU path: ML-Cache jobs run denoise_segment
    expect(manifest.graphs.denoise_segment).toBeDefined();
    if (manifest.name.startsWith('dimoo-twin')) {
      if (!existsSync(join(WORKSPACE_ROOT, 'models/twin/fp16/manifest.json'))) throw new Error('models/twin is missing: npx nx run model-tools:twin');
      // everything the API reads; the files' checksums change with every export and the API never reads them
      const { files: _placeholder, ...served } = manifest;
      const { files: _built, ...twin } = ManifestSchema.parse(json('models/twin/fp16/manifest.json'));
      expect(served).toEqual(twin);
    }
  });
});

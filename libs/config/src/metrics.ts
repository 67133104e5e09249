import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * A process's metrics registry with Node's default process metrics under `prefix` (e.g. `dimoo_api_`). prom-client's
 * sums of its per-type `nodejs_active_*` gauges end in `_total`, which Prometheus keeps for counters (promtool check
 * metrics refuses them): they are dropped, the per-type gauges stay.
 */
export function processRegistry(prefix: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  for (const m of ['handles', 'requests', 'resources']) registry.removeSingleMetric(`${prefix}nodejs_active_${m}_total`);
  return registry;
}

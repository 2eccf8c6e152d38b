/**
 * Prometheus metrics. Each process owns one Registry (not prom-client's global one) so tests
 * can run several components in one process without name clashes.
 */
import { collectDefaultMetrics, Registry } from "prom-client";

export const METRIC_PREFIX = "paystream_";

export function createRegistry(component: string, defaults = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  if (defaults) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

/** Latency buckets in seconds for per-event paths: 0.5 ms .. 10 s. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The processor's Prometheus metrics (names are a contract: dashboards and alert rules use them). */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS, METRIC_PREFIX as P } from "../lib/metrics.ts";

export function createProcessorMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    records: new Counter({
      name: `${P}processor_records_total`,
      help: "Records processed, by outcome (ok, duplicate, invalid, late)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    lagRecords: new Gauge({
      name: `${P}consumer_lag_records`,
      help: "Records behind the log end, per partition",
      labelNames: ["partition"] as const,
      registers,
    }),
    lagSeconds: new Gauge({
      name: `${P}consumer_lag_seconds`,
      help: "Age of the last processed record's log append time, per partition (0 when caught up)",
      labelNames: ["partition"] as const,
      registers,
    }),
    batchDuration: new Histogram({
      name: `${P}batch_duration_seconds`,
      help: "Time to process one fetched batch including its durable writes",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: `${P}batch_records`,
      help: "Records per processed batch",
      buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000],
      registers,
    }),
    e2eLatency: new Histogram({
      name: `${P}e2e_latency_seconds`,
      help: "Kafka append time to output durable, by output (alert_store, warehouse)",
      labelNames: ["output"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    alerts: new Counter({
      name: `${P}alerts_total`,
      help: "Fraud alerts raised, by rule and severity",
      labelNames: ["rule", "severity"] as const,
      registers,
    }),
    shadowAlerts: new Counter({
      name: `${P}shadow_alerts_total`,
      help: "Alerts shadow rules would have raised (never sent to the live outputs), by rule",
      labelNames: ["rule"] as const,
      registers,
    }),
    rulesVersion: new Gauge({
      name: `${P}rules_version`,
      help: "The rules-log version this replica applies (0 before one is applied)",
      registers,
    }),
    dedupHits: new Counter({
      name: `${P}dedup_hits_total`,
      help: "Duplicate transactions dropped",
      registers,
    }),
    dlq: new Counter({
      name: `${P}dlq_total`,
      help: "Records sent to the DLQ, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    sinkLatency: new Histogram({
      name: `${P}sink_write_seconds`,
      help: "Write latency per sink",
      labelNames: ["sink"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    dependencyUp: new Gauge({
      name: `${P}dependency_up`,
      help: "1 while a dependency (dedup, alert_store, kafka, commit, the warehouse) answers, 0 while its operations fail and are retried (the processor is then not ready)",
      labelNames: ["dependency"] as const,
      registers,
    }),
    sinkErrors: new Counter({
      name: `${P}sink_errors_total`,
      help: "Failed sink writes (retried), by sink",
      labelNames: ["sink"] as const,
      registers,
    }),
    rebalances: new Counter({
      name: `${P}rebalances_total`,
      help: "Partition assignment changes seen by this replica",
      registers,
    }),
    partitionStalls: new Counter({
      name: `${P}partition_stalls_total`,
      help: "Owned partitions found with lag but no records arriving; each detection makes the consumer rejoin",
      registers,
    }),
    assignedPartitions: new Gauge({
      name: `${P}assigned_partitions`,
      help: "Partitions currently assigned to this replica",
      registers,
    }),
    windowAccounts: new Gauge({
      name: `${P}window_accounts`,
      help: "Accounts with state held in memory",
      registers,
    }),
    watermarkLag: new Gauge({
      name: `${P}watermark_delay_seconds`,
      help: "Wall clock minus the event-time watermark",
      registers,
    }),
    recoveryDuration: new Histogram({
      name: `${P}recovery_duration_seconds`,
      help: "Time to rebuild a newly assigned partition's window state from Kafka",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    recoveryRecords: new Counter({
      name: `${P}recovery_records_total`,
      help: "Records replayed to rebuild window state",
      registers,
    }),
    casesFiled: new Counter({
      name: `${P}cases_filed_total`,
      help: "Live alerts filed into cases, by outcome (new: opened a case, joined: added to one)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    caseStatusSynced: new Counter({
      name: `${P}case_status_synced_total`,
      help: "Cases written to the warehouse's fraud_cases by the status sync (analysts' status changes; a case re-read after a restart counts again)",
      registers,
    }),
    rulesReloads: new Counter({
      name: `${P}rules_reloads_total`,
      help: "Rule set versions applied from the rules log (and file reloads), by result (ok, error: refused, previous rules kept)",
      labelNames: ["result"] as const,
      registers,
    }),
  };
  // A labelled counter is exported only once incremented. Rejected reloads are rare: a series
  // that first appears at 1 has no earlier sample for increase() to compare with, and
  // PaystreamRulesReloadFailed would never see the first one. Both results exist from start-up.
  for (const result of ["ok", "error"] as const) metrics.rulesReloads.inc({ result }, 0);
  return metrics;
}

export type ProcessorMetrics = ReturnType<typeof createProcessorMetrics>;

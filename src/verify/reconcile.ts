/**
 * `paystream verify`, the pure half: tallies of what was read and the comparisons between
 * them, ending in one report (a table of checks and a verdict). No I/O here: sources.ts reads
 * Kafka, Redis and the warehouse and feeds these structures, so every rule of the
 * reconciliation is unit-tested without servers.
 *
 * The ground truth is the input topic itself (what was produced):
 *   U  unique valid transaction_ids        → each must be in the warehouse exactly once
 *   D  resends of an id already seen       → must not add a row (covered by "exactly once")
 *   M  invalid records, by (partition, offset) and reason → each must be in the DLQ
 * and, from the labels topic, the scenario incidents of this run (their transactions are in U)
 *   → exactly one alert per (rule, account, incident) on the alerts topic, in Redis and in the
 *     warehouse.
 *
 * One module per comparison: rows.ts (U, D, M and the warehouse rows), dlq.ts (M against the
 * DLQ), incidents.ts (which labels are this run's), alerts.ts (incidents and alerts in three
 * stores), report.ts (the checks and the verdict), render.ts (the table). This module is
 * their one entry point.
 */

export {
  type AlertRecord,
  type AlertResult,
  alertIdsToLookUp,
  type IncidentProblem,
  parseAlertRecord,
  type RuleOutcome,
  reconcileAlerts,
} from "./alerts.ts";
export { type DlqResult, DlqTally, reconcileDlq } from "./dlq.ts";
export { type Incident, type IncidentSelection, parseScenarioLabel, selectIncidents } from "./incidents.ts";
export { renderTable } from "./render.ts";
export {
  buildReport,
  type CheckRow,
  type GroupLag,
  type ReportInputs,
  type Status,
  type TopicReadFacts,
  type VerifyReport,
} from "./report.ts";
export { InputTally, type PartitionRange, type RowCountResult, RowCountTally } from "./rows.ts";
export { DEFAULT_MAX_EXAMPLES } from "./tally.ts";

/** Rules whose labelled incidents are checked by default: every scenario the collector injects. */
export const DEFAULT_CHECKED_RULES: readonly string[] = [
  "velocity_count",
  "card_testing",
  "geo_velocity",
  "merchant_spread",
  "amount_spike",
];

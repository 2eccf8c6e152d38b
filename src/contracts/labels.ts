/**
 * Ground truth on payments.labels: what the collector injected (incidents, duplicates, late,
 * out-of-order and malformed records), for `paystream verify` and the benchmarks to score
 * the processor against. The processor never reads it.
 */
import type { DlqReason } from "./dlq.ts";

export const SCENARIO_TYPES = [
  "velocity_burst",
  "card_testing",
  "geo_velocity",
  "merchant_spread",
  "amount_spike",
] as const;
export type ScenarioType = (typeof SCENARIO_TYPES)[number];

/** Ids of the agreed default processor rules. */
export type RuleId = "velocity_count" | "card_testing" | "geo_velocity" | "merchant_spread" | "amount_spike";

/** The rule each scenario is built to trip (and only that rule). */
export const EXPECTED_RULE: Readonly<Record<ScenarioType, RuleId>> = {
  velocity_burst: "velocity_count",
  card_testing: "card_testing",
  geo_velocity: "geo_velocity",
  merchant_spread: "merchant_spread",
  amount_spike: "amount_spike",
};

export const RECORD_KINDS = ["normal", "scenario", "duplicate", "late", "out_of_order", "malformed"] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/** Times in labels are epoch milliseconds; started_at / completed_at are event times. */
export interface ScenarioLabel {
  type: "scenario";
  scenario_id: string;
  scenario: ScenarioType;
  expected_rule: RuleId;
  account_id: string;
  /** Every transaction of the incident, in emission order. */
  transaction_ids: string[];
  /** The transaction on whose arrival the expected rule should fire. */
  trigger_transaction_id: string;
  started_at: number;
  completed_at: number;
}

export interface DuplicateLabel {
  type: "duplicate";
  transaction_id: string;
  /** nowMs of the call that emitted the original. */
  original_sent_at: number;
}

export interface LateLabel {
  type: "late";
  transaction_id: string;
  /** nowMs at emission minus event_time. */
  lateness_ms: number;
}

export interface OutOfOrderLabel {
  type: "out_of_order";
  transaction_id: string;
}

export interface MalformedLabel {
  type: "malformed";
  /** The reason decodeTransaction (and so the DLQ) must report. */
  reason: DlqReason;
  detail: string;
  /** The record's Kafka key (an account id), which is all that identifies a record with no parseable id. */
  key: string;
}

export type Label = ScenarioLabel | DuplicateLabel | LateLabel | OutOfOrderLabel | MalformedLabel;

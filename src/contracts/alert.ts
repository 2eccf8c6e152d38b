/**
 * Alerts as they leave the processor: the in-process shape, the rule types and severities
 * they carry, and the one JSON encoding used in Redis, Kafka and the dashboard.
 */

export const RULE_TYPES = [
  "velocity_count",
  "amount_sum",
  "card_testing",
  "geo_velocity",
  "merchant_spread",
  "amount_spike",
] as const;
export type RuleType = (typeof RULE_TYPES)[number];

export const SEVERITIES = ["low", "medium", "high", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface MaskedCard {
  /** Issuer identification: the first 6 digits. */
  readonly bin: string;
  /** The last 4 digits (fewer for PANs under 15 digits, so that at least 5 stay hidden). */
  readonly last4: string;
  /** Keyed token of the whole PAN. */
  readonly token: string;
}

/** The window's numbers behind an alert (count, sum, speedKmh...); see docs/rules.md per rule type. */
export type AlertFigures = Record<string, number | string>;

export interface Alert {
  readonly alertId: string;
  readonly ruleId: string;
  readonly ruleType: RuleType;
  readonly severity: Severity;
  readonly accountId: string;
  /** The transaction whose arrival made the rule fire. */
  readonly transactionId: string;
  /** Event time of that transaction (epoch ms). */
  readonly eventTimeMs: number;
  /** Processing time at detection (epoch ms), as passed to evaluate(). */
  readonly detectedAtMs: number;
  readonly figures: AlertFigures;
  /** BIN, last digits and token of the triggering card; filled in by the caller, who holds the Masker. */
  maskedCard?: MaskedCard;
  /** The rules-log version the rule came from (stamped by the processor); absent outside a versioned run. */
  readonly ruleSetVersion?: number;
  /** Raised by a shadow rule: stored in the shadow area only, never on a live output. */
  readonly shadow?: boolean;
}

/** The JSON shape of an alert outside the process (Redis, Kafka, dashboard). */
export function alertToJson(a: Alert): string {
  return JSON.stringify({
    alert_id: a.alertId,
    rule_id: a.ruleId,
    rule_type: a.ruleType,
    severity: a.severity,
    account_id: a.accountId,
    masked_card: a.maskedCard ?? null,
    transaction_id: a.transactionId,
    event_time: new Date(a.eventTimeMs).toISOString(),
    detected_at: new Date(a.detectedAtMs).toISOString(),
    figures: a.figures,
    // Always present, so a reader never has to tell "absent" from "false" or "unversioned".
    rule_set_version: a.ruleSetVersion ?? null,
    shadow: a.shadow === true,
  });
}

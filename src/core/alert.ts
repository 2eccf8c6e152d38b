/**
 * Fraud alerts. An alert is identified by (rule, account, triggering transaction) and
 * nothing else, so replaying the same events after a crash or a rebalance rewrites the same
 * Redis hash, Kafka record and warehouse row instead of adding a second alert.
 */
import { hash } from "node:crypto";
import type { MaskedCard } from "./masking.ts";
import type { RuleType, Severity } from "./rules.ts";

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
}

/**
 * Deterministic alert id: 128 bits of SHA-256 over the length-prefixed triple, as 32 hex
 * chars. Length prefixes (rather than a separator) keep ("a:b", "c") and ("a", "b:c") apart
 * whatever characters ids contain.
 */
export function alertId(ruleId: string, accountId: string, transactionId: string): string {
  const input = `${ruleId.length}:${ruleId}${accountId.length}:${accountId}${transactionId.length}:${transactionId}`;
  return hash("sha256", input, "buffer").toString("hex", 0, 16);
}

/**
 * Cases: the alerts of one incident on one account, grouped so an analyst works one item
 * instead of one per rule. Alerts on the same account join the account's current case while
 * they come within the case gap (event time, default the rule window) of its last hit;
 * otherwise they open a new case. Filing is idempotent per alert id, so a replay that raises
 * the same alerts changes nothing.
 */
import type { AlertFigures, MaskedCard, RuleType, Severity } from "./alert.ts";

export const CASE_STATUSES = ["open", "acknowledged", "resolved_fraud", "resolved_legitimate"] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];

/** One rule hit in a case: the alert and its triggering (masked) transaction. */
export interface CaseHit {
  readonly alertId: string;
  readonly ruleId: string;
  readonly ruleType: RuleType;
  readonly severity: Severity;
  readonly transactionId: string;
  readonly eventTimeMs: number;
  readonly detectedAtMs: number;
  readonly ruleSetVersion?: number;
  readonly figures: AlertFigures;
  readonly maskedCard?: MaskedCard;
}

export interface CaseStatusChange {
  readonly status: CaseStatus;
  /** The authenticated caller who set it. */
  readonly by: string;
  readonly atMs: number;
  readonly note?: string;
}

export interface FraudCase {
  /** The alert id of the case's first hit: deterministic, so a replay files into the same case. */
  readonly caseId: string;
  readonly accountId: string;
  readonly status: CaseStatus;
  /** The highest severity among the hits. */
  readonly severity: Severity;
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  /** Distinct rule ids hit, in first-hit order. */
  readonly ruleIds: readonly string[];
  /** In event-time order. */
  readonly hits: readonly CaseHit[];
  /** Status changes, oldest first (empty while never touched). */
  readonly history: readonly CaseStatusChange[];
}

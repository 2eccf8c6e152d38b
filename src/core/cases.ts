/**
 * Cases, the pure part: filing an alert into its account's case, the analyst's status
 * workflow, resolution counts for precision, queue order and the JSON shape. The Redis and
 * embedded stores both run these functions, so the two can only differ in storage.
 *
 * Filing is decided on event time, not arrival: a hit joins the account's current case when
 * it falls within the gap after the case's last hit — or inside the case, or at most one gap
 * before its first hit (an out-of-order hit of the same burst). Anything else opens a new
 * case whose id is that alert's id, so a replay that raises the same alerts in the same order
 * rebuilds the same ids; stores also keep an alert → case index so a refiled alert is a no-op.
 */
import type { Alert, Severity } from "../contracts/alert.ts";
import { SEVERITIES } from "../contracts/alert.ts";
import type { CaseHit, CaseStatus, CaseStatusChange, FraudCase } from "../contracts/case.ts";
import type { RuleResolutions } from "../contracts/ports.ts";
import { ErrorCodes, PaystreamError } from "./errors.ts";

/** Default gap: the rule window, so one burst seen by a 60 s window is one case. */
export const DEFAULT_CASE_GAP_MS = 60_000;

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

export function isResolved(s: CaseStatus): s is "resolved_fraud" | "resolved_legitimate" {
  return s === "resolved_fraud" || s === "resolved_legitimate";
}

export function hitOf(a: Alert): CaseHit {
  const v = a.ruleSetVersion;
  return {
    alertId: a.alertId,
    ruleId: a.ruleId,
    ruleType: a.ruleType,
    severity: a.severity,
    transactionId: a.transactionId,
    eventTimeMs: a.eventTimeMs,
    detectedAtMs: a.detectedAtMs,
    ...(v === undefined ? {} : { ruleSetVersion: v }),
    figures: a.figures,
    ...(a.maskedCard ? { maskedCard: a.maskedCard } : {}),
  };
}

/** Whether a hit at `eventTimeMs` belongs to the incident `c` (see the module comment). */
export function fitsCase(c: FraudCase, eventTimeMs: number, gapMs: number): boolean {
  return eventTimeMs <= c.lastSeenMs + gapMs && eventTimeMs >= c.firstSeenMs - gapMs;
}

/** A case's derived fields (severity, first/last seen, rule ids) from its hits. */
function withHits(base: FraudCase, hits: CaseHit[]): FraudCase {
  hits.sort((x, y) => x.eventTimeMs - y.eventTimeMs || x.detectedAtMs - y.detectedAtMs);
  let sev = 0;
  for (const h of hits) sev = Math.max(sev, severityRank(h.severity));
  // First hit by event time, not by filing order: a replay filing in another order agrees.
  const ruleIds: string[] = [];
  for (const h of hits) if (!ruleIds.includes(h.ruleId)) ruleIds.push(h.ruleId);
  return {
    ...base,
    severity: SEVERITIES[sev]!,
    firstSeenMs: hits[0]!.eventTimeMs,
    lastSeenMs: hits[hits.length - 1]!.eventTimeMs,
    ruleIds,
    hits,
  };
}

export function newCase(a: Alert): FraudCase {
  return withHits(
    {
      caseId: a.alertId,
      accountId: a.accountId,
      status: "open",
      severity: a.severity,
      firstSeenMs: a.eventTimeMs,
      lastSeenMs: a.eventTimeMs,
      ruleIds: [],
      hits: [],
      history: [],
    },
    [hitOf(a)],
  );
}

export type FileOutcome = "new" | "joined" | "known";

export interface Filed {
  readonly case: FraudCase;
  readonly outcome: FileOutcome;
  /** Whether the account's current case is now `case` (an older stray hit leaves it alone). */
  readonly current: boolean;
}

/**
 * Files `a` given its account's current case. "known": the alert is already one of its hits
 * (nothing changes). The caller checks its alert → case index first for hits filed into an
 * older case.
 */
export function fileAlert(current: FraudCase | undefined, a: Alert, gapMs: number): Filed {
  if (current !== undefined) {
    if (current.hits.some((h) => h.alertId === a.alertId)) {
      return { case: current, outcome: "known", current: true };
    }
    if (fitsCase(current, a.eventTimeMs, gapMs)) {
      return { case: withHits(current, [...current.hits, hitOf(a)]), outcome: "joined", current: true };
    }
  }
  const c = newCase(a);
  // A hit from before the current incident opens its own case but does not take the account.
  const isCurrent = current === undefined || a.eventTimeMs > current.lastSeenMs;
  return { case: c, outcome: "new", current: isCurrent };
}

/** Status changes an analyst may make: resolving is reversible (reopen) for a mistaken verdict. */
export const CASE_TRANSITIONS: Readonly<Record<CaseStatus, readonly CaseStatus[]>> = {
  open: ["acknowledged", "resolved_fraud", "resolved_legitimate"],
  acknowledged: ["resolved_fraud", "resolved_legitimate"],
  resolved_fraud: ["open"],
  resolved_legitimate: ["open"],
};

export function canTransition(from: CaseStatus, to: CaseStatus): boolean {
  return CASE_TRANSITIONS[from].includes(to);
}

/** The case with `change` applied; a transition not in CASE_TRANSITIONS is refused. */
export function applyStatus(c: FraudCase, change: CaseStatusChange): FraudCase {
  if (!canTransition(c.status, change.status)) {
    throw new PaystreamError(
      ErrorCodes.CASE_TRANSITION,
      `case ${c.caseId} is ${c.status}: it can go to ${CASE_TRANSITIONS[c.status].join(" or ")}, not ${change.status}`,
      { details: { caseId: c.caseId, from: c.status, to: change.status } },
    );
  }
  const entry: CaseStatusChange = {
    status: change.status,
    by: change.by,
    atMs: change.atMs,
    ...(change.note ? { note: change.note } : {}),
  };
  return { ...c, status: change.status, history: [...c.history, entry] };
}

/** One entry of a case store's change feed: a case and when its status last changed (store clock). */
export interface FeedEntry {
  readonly caseId: string;
  readonly atMs: number;
}

/** Change-feed order: by change time, then case id (a Redis sorted set's order for equal scores). */
export function compareFeed(a: FeedEntry, b: FeedEntry): number {
  return a.atMs - b.atMs || (a.caseId < b.caseId ? -1 : a.caseId > b.caseId ? 1 : 0);
}

/**
 * Where a change feed read goes on, given the first `limit` entries at or after `sinceMs`
 * (in compareFeed order) read atomically at store time `nowMs`. Stores stamp changes with a
 * clock that does not go back, so a change recorded after the read is stamped `nowMs` or
 * later: a short page has read everything before `nowMs`, and the cursor stays on `nowMs`
 * because that millisecond may still get changes. A full page may stop inside its last
 * millisecond: the next read starts at that millisecond again. A full page within ONE
 * millisecond could never move on that way: the caller reads that whole millisecond
 * (`wholeMs`) and the cursor goes past it.
 */
export function feedCursor(
  page: readonly FeedEntry[],
  limit: number,
  sinceMs: number,
  nowMs: number,
): { cursor: number; wholeMs?: number } {
  if (page.length < limit) return { cursor: Math.max(sinceMs, nowMs) };
  const first = page[0]!.atMs;
  const last = page[page.length - 1]!.atMs;
  if (first < last) return { cursor: last };
  return { cursor: last + 1, wholeMs: last };
}

/** Refuses a change-feed page size that could not make progress. */
export function checkFeedLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`changedSince: limit must be a positive integer, got ${limit}`);
  }
}

/** What one case contributes to precision: each rule it hit once, under its current resolution. */
export function resolutionsOf(c: FraudCase | undefined): Map<string, RuleResolutions> {
  const out = new Map<string, RuleResolutions>();
  if (c === undefined || !isResolved(c.status)) return out;
  const fraud = c.status === "resolved_fraud" ? 1 : 0;
  for (const r of c.ruleIds) out.set(r, { fraud, legitimate: 1 - fraud });
  return out;
}

/** The change in per-rule counts when a case goes from `before` to `after` (zero entries omitted). */
export function resolutionDelta(
  before: FraudCase | undefined,
  after: FraudCase | undefined,
): Map<string, RuleResolutions> {
  const out = resolutionsOf(after);
  for (const [rule, r] of resolutionsOf(before)) {
    const cur = out.get(rule) ?? { fraud: 0, legitimate: 0 };
    out.set(rule, { fraud: cur.fraud - r.fraud, legitimate: cur.legitimate - r.legitimate });
  }
  for (const [rule, r] of out) if (r.fraud === 0 && r.legitimate === 0) out.delete(rule);
  return out;
}

/** fraud ÷ resolved, or null before any resolution. */
export function precisionOf(r: RuleResolutions): number | null {
  const n = r.fraud + r.legitimate;
  return n > 0 ? r.fraud / n : null;
}

/** Queue order: unresolved first, then the highest severity, then the oldest first hit. */
export function compareCases(a: FraudCase, b: FraudCase): number {
  return (
    Number(isResolved(a.status)) - Number(isResolved(b.status)) ||
    severityRank(b.severity) - severityRank(a.severity) ||
    a.firstSeenMs - b.firstSeenMs ||
    (a.caseId < b.caseId ? -1 : a.caseId > b.caseId ? 1 : 0)
  );
}

/**
 * A sorted-set score giving compareCases' order within one status: severity bands 1e13 ms
 * apart (event times stay below that until the year 2286), oldest first inside a band.
 */
export function queueScore(c: FraudCase): number {
  return (SEVERITIES.length - 1 - severityRank(c.severity)) * 1e13 + c.firstSeenMs;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The JSON shape outside the process (dashboard API), snake_case like alertToJson. */
export function caseToJson(c: FraudCase): Record<string, unknown> {
  return {
    case_id: c.caseId,
    account_id: c.accountId,
    status: c.status,
    severity: c.severity,
    first_seen: iso(c.firstSeenMs),
    last_seen: iso(c.lastSeenMs),
    rule_ids: c.ruleIds,
    hits: c.hits.map((h) => ({
      alert_id: h.alertId,
      rule_id: h.ruleId,
      rule_type: h.ruleType,
      severity: h.severity,
      transaction_id: h.transactionId,
      event_time: iso(h.eventTimeMs),
      detected_at: iso(h.detectedAtMs),
      rule_set_version: h.ruleSetVersion ?? null,
      figures: h.figures,
      masked_card: h.maskedCard ?? null,
    })),
    history: c.history.map((s) => ({
      status: s.status,
      by: s.by,
      at: iso(s.atMs),
      ...(s.note ? { note: s.note } : {}),
    })),
  };
}

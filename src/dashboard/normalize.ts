/**
 * Reading the upstreams' answers defensively: a processor's /status (or `paystream up`'s,
 * another shape), an alert for the feed, and why an answer is not a success. Whatever an
 * upstream sends, these return a well-formed value or undefined; they never throw. The
 * feed's alerts carry masked card data only (BIN + last digits; anything that looks like a
 * card number is dropped).
 */
import { findLuhnDigitRuns } from "../core/pan.ts";
import type { Answer, FeedAlert } from "./model.ts";

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
export const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : undefined;
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

// ------------------------------------------------------------------------- processor status

type CountKey = "records" | "ok" | "duplicates" | "invalid" | "late" | "alerts";

export interface ProcessorStatus extends Record<CountKey, number> {
  alertsByRule: Record<string, number>;
  lag: number | null;
  /** Failing dependencies and why. */
  health: Record<string, string>;
}

/** Where each count lives in a processor's /status totals and in `paystream up`'s /status processor. */
const PROCESSOR_COUNTS: Record<CountKey, string> = {
  records: "records",
  ok: "ok",
  duplicates: "duplicates",
  invalid: "invalid",
  late: "late",
  alerts: "alerts",
};
const UP_COUNTS: Record<CountKey, string> = { ...PROCESSOR_COUNTS, records: "processed", invalid: "dlq" };

function counts(o: Obj, names: Record<CountKey, string>): Record<CountKey, number> {
  const out = {} as Record<CountKey, number>;
  for (const [key, name] of Object.entries(names)) out[key as CountKey] = num(o[name]) ?? 0;
  return out;
}

function countMap(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (isObj(v)) for (const [k, n] of Object.entries(v)) if (num(n) !== undefined) out[k] = n as number;
  return out;
}

/**
 * Reads a processor's /status, or `paystream up`'s /status (a different shape: both are
 * accepted so --processor-urls can point at either). Undefined for anything else.
 */
export function normalizeStatus(body: unknown): ProcessorStatus | undefined {
  if (!isObj(body)) return undefined;
  if (isObj(body.totals)) {
    const health: Record<string, string> = {};
    if (isObj(body.health)) for (const [k, v] of Object.entries(body.health)) health[k] = String(v);
    return {
      ...counts(body.totals, PROCESSOR_COUNTS),
      alertsByRule: countMap(body.alertsByRule),
      lag: num(body.lag) ?? null,
      health,
    };
  }
  if (isObj(body.processor)) {
    const p = body.processor;
    return {
      ...counts(p, UP_COUNTS),
      alertsByRule: countMap(p.alerts_by_rule),
      lag: num(p.lag_records) ?? null,
      health: {},
    };
  }
  return undefined;
}

// ------------------------------------------------------------------------- alert feed

const BIN = /^\d{6}$/;
const LAST = /^\d{1,4}$/;

/** A string that holds no card-number-like digit run, or a placeholder. */
function safeText(v: string): string {
  return findLuhnDigitRuns(v).length > 0 ? "[redacted]" : v;
}

/**
 * One alert for the feed, from its JSON form (Redis stream entry, embedded store). Only the
 * BIN and the last digits of the card are kept (never the token, never more digits), and any
 * text that contains a Luhn-valid 12–19 digit run is replaced: the feed can never carry a PAN.
 */
export function toFeedAlert(raw: unknown): FeedAlert | undefined {
  if (!isObj(raw)) return undefined;
  const alertId = str(raw.alert_id);
  const ruleId = str(raw.rule_id);
  if (!alertId || !ruleId) return undefined;
  let card: string | null = null;
  if (isObj(raw.masked_card)) {
    const bin = str(raw.masked_card.bin);
    const last4 = str(raw.masked_card.last4);
    if (bin && last4 && BIN.test(bin) && LAST.test(last4)) card = `${bin} •••••• ${last4}`;
  }
  const eventTime = str(raw.event_time) ?? "";
  const detectedAt = str(raw.detected_at) ?? "";
  const e = Date.parse(eventTime);
  const d = Date.parse(detectedAt);
  const figures: Record<string, number | string> = {};
  if (isObj(raw.figures)) {
    for (const [k, v] of Object.entries(raw.figures)) {
      if (typeof v === "number" && Number.isFinite(v)) {
        figures[k] = safeText(String(v)) === String(v) ? v : "[redacted]";
      } else if (typeof v === "string") figures[k] = safeText(v);
    }
  }
  return {
    alert_id: safeText(alertId),
    rule_id: safeText(ruleId),
    rule_type: safeText(str(raw.rule_type) ?? ""),
    severity: safeText(str(raw.severity) ?? ""),
    account_id: safeText(str(raw.account_id) ?? ""),
    card,
    event_time: safeText(eventTime),
    detected_at: safeText(detectedAt),
    detection_latency_ms: Number.isFinite(e) && Number.isFinite(d) ? Math.max(0, d - e) : null,
    figures,
  };
}

// ------------------------------------------------------------------------- answers

/** Why an answer is not a success, or undefined. */
export function answerProblem(a: Answer): string | undefined {
  if (a.error) return a.error;
  if (a.status >= 200 && a.status < 300) return undefined;
  const b = a.body;
  if (isObj(b)) {
    if (isObj(b.failing))
      return Object.entries(b.failing)
        .map(([k, v]) => `${k}: ${String(v)}`)
        .join("; ");
    if (str(b.reason)) return str(b.reason);
  }
  return `HTTP ${a.status}`;
}

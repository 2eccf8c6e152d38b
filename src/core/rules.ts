/**
 * Fraud rules as data: a validated document (parseRules) and a per-event evaluator
 * (evaluate). docs/rules.md is the user-facing description of every field and rule type.
 *
 * evaluate() runs on every transaction right after WindowStore.add(), so it is written to
 * allocate nothing unless a rule fires: rules are compiled into one object shape (so the
 * dispatch loop stays monomorphic), windows are scanned in place on the account's ring, the
 * start of a window is found once per distinct windowMs by binary search, distinct counts
 * use a shared scratch array with early exit, and the no-alert result is a shared frozen
 * array. Figures for the alert are computed only after a rule has fired.
 *
 * Late events (behind the watermark) never raise alerts. They are already part of history
 * and, when recent enough, of the window (see window.ts), so the next on-time event of the
 * account sees them; alerting on the late event itself would evaluate a window that on-time
 * processing has moved past and, on replays, would make the alert set depend on arrival
 * timing. Cooldowns are not touched by late events either.
 */
import {
  type Alert,
  type AlertFigures,
  RULE_TYPES,
  type RuleType,
  SEVERITIES,
  type Severity,
} from "../contracts/alert.ts";
import type { Transaction } from "../contracts/transaction.ts";
import { alertId } from "./alert.ts";
import { ErrorCodes, PaystreamError } from "./errors.ts";
import { formatMinor, parseAmountMinor } from "./schema.ts";
import {
  type AccountState,
  countryFromCode,
  DEFAULT_WINDOW_MS,
  F_AMOUNT,
  F_COUNTRY,
  F_LAT,
  F_LON,
  F_MERCHANT,
  F_TIME,
  STRIDE,
} from "./window.ts";

export const RULES_DOCUMENT_VERSION = 1;
export const DEFAULT_COOLDOWN_MS = 300_000;
/** Upper bound for count thresholds: keeps distinct-count scratch small and typos obvious. */
export const MAX_COUNT_THRESHOLD = 10_000;

interface RuleCommon {
  readonly id: string;
  readonly enabled: boolean;
  readonly severity: Severity;
  readonly windowMs: number;
  readonly cooldownMs: number;
  readonly description: string;
}

/** At least `threshold` transactions in the window (the current one included). */
export interface VelocityCountRule extends RuleCommon {
  readonly type: "velocity_count";
  readonly threshold: number;
}

/** Sum of amounts in the window (the current one included) at least thresholdMinor. */
export interface AmountSumRule extends RuleCommon {
  readonly type: "amount_sum";
  readonly thresholdMinor: number;
}

/** At least minSmallCount amounts <= smallAmountMaxMinor earlier in the window, then one >= largeAmountMinMinor. */
export interface CardTestingRule extends RuleCommon {
  readonly type: "card_testing";
  readonly minSmallCount: number;
  readonly smallAmountMaxMinor: number;
  readonly largeAmountMinMinor: number;
}

/** Impossible travel between consecutive events, or too many countries in the window. null disables a check. */
export interface GeoVelocityRule extends RuleCommon {
  readonly type: "geo_velocity";
  readonly maxSpeedKmh: number | null;
  readonly minDistanceKm: number;
  readonly minDistinctCountries: number | null;
}

/** At least `threshold` distinct merchant_id in the window. */
export interface MerchantSpreadRule extends RuleCommon {
  readonly type: "merchant_spread";
  readonly threshold: number;
}

/** Amount at least `multiplier` x the account's prior mean and at least minAmountMinor, given minHistory prior transactions. */
export interface AmountSpikeRule extends RuleCommon {
  readonly type: "amount_spike";
  readonly multiplier: number;
  readonly minAmountMinor: number;
  readonly minHistory: number;
}

export type Rule =
  | VelocityCountRule
  | AmountSumRule
  | CardTestingRule
  | GeoVelocityRule
  | MerchantSpreadRule
  | AmountSpikeRule;

const K_VELOCITY = 0;
const K_AMOUNT_SUM = 1;
const K_CARD_TESTING = 2;
const K_GEO = 3;
const K_MERCHANT = 4;
const K_SPIKE = 5;

/**
 * The evaluator's view of an enabled rule: every rule type in one object shape, numeric
 * parameters in generic slots, so the loop over rules never sees a second hidden class.
 */
export interface CompiledRule {
  readonly rule: Rule;
  readonly id: string;
  readonly kind: number;
  readonly windowMs: number;
  readonly cooldownMs: number;
  /** velocity/merchant threshold, card-testing small count, geo distinct countries (0 = off), spike history. */
  readonly count: number;
  /** amount_sum threshold, card-testing large minimum, spike minimum (minor units). */
  readonly amountMinor: number;
  /** card-testing small maximum (minor units). */
  readonly smallAmountMinor: number;
  /** geo speed limit in km/h (0 = off). */
  readonly speedKmh: number;
  readonly distanceKm: number;
  readonly multiplier: number;
}

export interface RuleSet {
  readonly version: number;
  /** Every rule in document order, disabled ones included (for display). */
  readonly rules: readonly Rule[];
  /** Enabled rules only, in document order: what evaluate() runs. */
  readonly compiled: readonly CompiledRule[];
}

export interface ParseRulesOptions {
  /** The WindowStore's windowMs: no rule may look further back than the store keeps. Default 60 000. */
  maxWindowMs?: number;
}

// ---------------------------------------------------------------------------------------
// Parsing and validation

const COMMON_FIELDS = ["id", "type", "enabled", "severity", "windowMs", "cooldownMs", "description"];
const TYPE_FIELDS: Record<RuleType, readonly string[]> = {
  velocity_count: ["threshold"],
  amount_sum: ["threshold"],
  card_testing: ["minSmallCount", "smallAmountMax", "largeAmountMin"],
  geo_velocity: ["maxSpeedKmh", "minDistanceKm", "minDistinctCountries"],
  merchant_spread: ["threshold"],
  amount_spike: ["multiplier", "minAmount", "minHistory"],
};
const DEFAULT_SEVERITY: Record<RuleType, Severity> = {
  velocity_count: "high",
  amount_sum: "medium",
  card_testing: "critical",
  geo_velocity: "high",
  merchant_spread: "medium",
  amount_spike: "medium",
};
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

function invalid(where: string, field: string, message: string, ruleId?: string): never {
  throw new PaystreamError(ErrorCodes.RULES_INVALID, `${where}: field "${field}" ${message}`, {
    details: ruleId === undefined ? { field } : { ruleId, field },
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads one rule's fields, naming the rule and the field in every error. */
class FieldReader {
  readonly where: string;
  readonly ruleId: string | undefined;
  readonly raw: Record<string, unknown>;

  constructor(where: string, raw: Record<string, unknown>, ruleId?: string) {
    this.where = where;
    this.raw = raw;
    this.ruleId = ruleId;
  }

  fail(field: string, message: string): never {
    return invalid(this.where, field, message, this.ruleId);
  }

  int(field: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
      const kind = min > 0 ? "a positive integer" : "a non-negative integer";
      this.fail(field, `must be ${kind}${max < Number.MAX_SAFE_INTEGER ? ` <= ${max}` : ""}`);
    }
    return v;
  }

  positiveNumber(field: string, fallback: number): number {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.fail(field, "must be a positive number");
    return v;
  }

  /** A positive number, or null to switch the check off. Absent means the default. */
  optionalPositiveNumber(field: string, fallback: number): number | null {
    const v = this.raw[field];
    if (v === null) return null;
    return this.positiveNumber(field, fallback);
  }

  optionalCount(field: string, fallback: number): number | null {
    const v = this.raw[field];
    if (v === null) return null;
    return this.int(field, fallback, 1, MAX_COUNT_THRESHOLD);
  }

  /** Money as a decimal in major units ("2.00" or 2), converted exactly to minor units. */
  amount(field: string, fallbackMinor: number): number {
    const v = this.raw[field];
    if (v === undefined) return fallbackMinor;
    const minor = typeof v === "string" || typeof v === "number" ? parseAmountMinor(v) : Number.NaN;
    if (!(minor > 0)) this.fail(field, "must be a positive amount with at most 2 decimals");
    return minor;
  }
}

/**
 * Validates a parsed rules document (YAML or JSON, already parsed by the caller) and
 * compiles it. Throws PaystreamError(RULES_INVALID) naming the rule and field. Defaults:
 * docs/rules.md. Unknown fields are errors, so a typo never silently falls back to a default.
 */
export function parseRules(doc: unknown, options: ParseRulesOptions = {}): RuleSet {
  const maxWindowMs = options.maxWindowMs ?? DEFAULT_WINDOW_MS;
  if (!isRecord(doc)) invalid("rules document", "(root)", "must be an object with version and rules");
  for (const key of Object.keys(doc)) {
    if (key !== "version" && key !== "rules") invalid("rules document", key, "is not a known field");
  }
  if (doc["version"] !== RULES_DOCUMENT_VERSION) {
    invalid("rules document", "version", `must be ${RULES_DOCUMENT_VERSION}`);
  }
  const list = doc["rules"];
  if (!Array.isArray(list)) invalid("rules document", "rules", "must be a list of rules");

  const rules: Rule[] = [];
  const firstIndex = new Map<string, number>();
  list.forEach((raw: unknown, index: number) => {
    if (!isRecord(raw)) invalid(`rule #${index}`, "(rule)", "must be an object");
    const id = raw["id"];
    if (typeof id !== "string" || !ID_PATTERN.test(id)) {
      invalid(`rule #${index}`, "id", "must be 1-64 characters of letters, digits and _ . : - (not first)");
    }
    const r = new FieldReader(`rule "${id}"`, raw, id);
    const seen = firstIndex.get(id);
    if (seen !== undefined) r.fail("id", `is a duplicate (also rule #${seen})`);
    firstIndex.set(id, index);
    const type = raw["type"];
    if (typeof type !== "string" || !(RULE_TYPES as readonly string[]).includes(type)) {
      r.fail("type", `must be one of ${RULE_TYPES.join(", ")}`);
    }
    rules.push(parseRule(r, id, type as RuleType, maxWindowMs));
  });

  const compiled = rules.filter((rule) => rule.enabled).map(compile);
  return { version: RULES_DOCUMENT_VERSION, rules, compiled };
}

function parseRule(r: FieldReader, id: string, type: RuleType, maxWindowMs: number): Rule {
  const allowed = TYPE_FIELDS[type];
  for (const key of Object.keys(r.raw)) {
    if (!COMMON_FIELDS.includes(key) && !allowed.includes(key)) {
      r.fail(key, `is not a field of a ${type} rule (allowed: ${[...COMMON_FIELDS, ...allowed].join(", ")})`);
    }
  }
  const enabled = r.raw["enabled"] ?? true;
  if (typeof enabled !== "boolean") r.fail("enabled", "must be true or false");
  const severity = r.raw["severity"] ?? DEFAULT_SEVERITY[type];
  if (typeof severity !== "string" || !(SEVERITIES as readonly string[]).includes(severity)) {
    r.fail("severity", `must be one of ${SEVERITIES.join(", ")}`);
  }
  const description = r.raw["description"] ?? "";
  if (typeof description !== "string") r.fail("description", "must be a string");
  const common = {
    id,
    enabled,
    severity: severity as Severity,
    windowMs: r.int("windowMs", Math.min(DEFAULT_WINDOW_MS, maxWindowMs), 1, maxWindowMs),
    cooldownMs: r.int("cooldownMs", DEFAULT_COOLDOWN_MS, 0),
    description,
  };
  switch (type) {
    case "velocity_count":
      return { ...common, type, threshold: r.int("threshold", 10, 1, MAX_COUNT_THRESHOLD) };
    case "amount_sum":
      return { ...common, type, thresholdMinor: r.amount("threshold", 1_000_000) };
    case "card_testing": {
      const rule: CardTestingRule = {
        ...common,
        type,
        minSmallCount: r.int("minSmallCount", 5, 1, MAX_COUNT_THRESHOLD),
        smallAmountMaxMinor: r.amount("smallAmountMax", 200),
        largeAmountMinMinor: r.amount("largeAmountMin", 10_000),
      };
      if (rule.largeAmountMinMinor <= rule.smallAmountMaxMinor) {
        r.fail("largeAmountMin", "must be greater than smallAmountMax");
      }
      return rule;
    }
    case "geo_velocity": {
      const rule: GeoVelocityRule = {
        ...common,
        type,
        maxSpeedKmh: r.optionalPositiveNumber("maxSpeedKmh", 900),
        minDistanceKm: r.int("minDistanceKm", 500, 0),
        minDistinctCountries: r.optionalCount("minDistinctCountries", 3),
      };
      if (rule.maxSpeedKmh === null && rule.minDistinctCountries === null) {
        r.fail("maxSpeedKmh", "and minDistinctCountries cannot both be null (the rule would never fire)");
      }
      return rule;
    }
    case "merchant_spread":
      return { ...common, type, threshold: r.int("threshold", 6, 1, MAX_COUNT_THRESHOLD) };
    case "amount_spike":
      return {
        ...common,
        type,
        multiplier: r.positiveNumber("multiplier", 10),
        minAmountMinor: r.amount("minAmount", 50_000),
        minHistory: r.int("minHistory", 5, 1, MAX_COUNT_THRESHOLD),
      };
  }
}

function compile(rule: Rule): CompiledRule {
  let kind = 0;
  let count = 0;
  let amountMinor = 0;
  let smallAmountMinor = 0;
  let speedKmh = 0;
  let distanceKm = 0;
  let multiplier = 0;
  switch (rule.type) {
    case "velocity_count":
      kind = K_VELOCITY;
      count = rule.threshold;
      break;
    case "amount_sum":
      kind = K_AMOUNT_SUM;
      amountMinor = rule.thresholdMinor;
      break;
    case "card_testing":
      kind = K_CARD_TESTING;
      count = rule.minSmallCount;
      amountMinor = rule.largeAmountMinMinor;
      smallAmountMinor = rule.smallAmountMaxMinor;
      break;
    case "geo_velocity":
      kind = K_GEO;
      count = rule.minDistinctCountries ?? 0;
      speedKmh = rule.maxSpeedKmh ?? 0;
      distanceKm = rule.minDistanceKm;
      break;
    case "merchant_spread":
      kind = K_MERCHANT;
      count = rule.threshold;
      break;
    case "amount_spike":
      kind = K_SPIKE;
      count = rule.minHistory;
      amountMinor = rule.minAmountMinor;
      multiplier = rule.multiplier;
      break;
  }
  if ((kind === K_GEO || kind === K_MERCHANT) && count > scratch.length) scratch = new Float64Array(count);
  return {
    rule,
    id: rule.id,
    kind,
    windowMs: rule.windowMs,
    cooldownMs: rule.cooldownMs,
    count,
    amountMinor,
    smallAmountMinor,
    speedKmh,
    distanceKm,
    multiplier,
  };
}

// ---------------------------------------------------------------------------------------
// Evaluation

const NO_ALERTS: readonly Alert[] = Object.freeze([]);

/** Distinct values seen so far in distinctAtLeast; grown at compile time to the largest threshold. */
let scratch = new Float64Array(16);

const EARTH_RADIUS_KM = 6371.0088;
const RAD = Math.PI / 180;

export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RAD;
  const dLon = (lon2 - lon1) * RAD;
  const s1 = Math.sin(dLat / 2);
  const s2 = Math.sin(dLon / 2);
  const a = s1 * s1 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * s2 * s2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * Cheap upper bound on the great-circle distance: a meridian leg plus a parallel leg is a
 * path between the points, so no shorter than the geodesic. Lets the common case (same
 * city) skip the trigonometry.
 */
function distanceUpperBoundKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  let dLon = Math.abs(lon2 - lon1);
  if (dLon > 180) dLon = 360 - dLon;
  return EARTH_RADIUS_KM * RAD * (Math.abs(lat2 - lat1) + dLon);
}

/** Smallest logical index j <= cur whose event time is > cutoff (cur + 1 if none). */
function windowStart(s: AccountState, cur: number, cutoff: number): number {
  const buf = s.buf;
  const h = s.head;
  const m = s.mask;
  let lo = 0;
  let hi = cur + 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (buf[((h + mid) & m) * STRIDE + F_TIME]! > cutoff) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** True once `k` distinct values of `field` are found among logical indices [from, to]. */
function distinctAtLeast(s: AccountState, from: number, to: number, field: number, k: number): boolean {
  if (to - from + 1 < k) return false;
  const buf = s.buf;
  const h = s.head;
  const m = s.mask;
  const seen = scratch;
  let d = 0;
  for (let i = to; i >= from; i--) {
    const v = buf[((h + i) & m) * STRIDE + field]!;
    let j = 0;
    while (j < d && seen[j] !== v) j++;
    if (j === d) {
      seen[d++] = v;
      if (d >= k) return true;
    }
  }
  return false;
}

/** Distinct values of `field` in [from, to] (allocates: only after a rule fired). */
function distinctValues(s: AccountState, from: number, to: number, field: number): number[] {
  const set = new Set<number>();
  for (let i = from; i <= to; i++) set.add(s.buf[s.offset(i) + field]!);
  return [...set];
}

/** Per-call cache of windowStart for the last windowMs asked (rules usually share one). */
let cachedWindowMs = -1;
let cachedStart = 0;

function startFor(s: AccountState, cur: number, t: number, windowMs: number): number {
  if (windowMs !== cachedWindowMs) {
    cachedWindowMs = windowMs;
    cachedStart = windowStart(s, cur, t - windowMs);
  }
  return cachedStart;
}

/**
 * Runs every enabled rule against the account's state for the transaction just added by
 * WindowStore.add() (which must have been the last add). Returns the alerts raised, or a
 * shared empty array. nowMs is the processing time recorded as detectedAtMs; windows are
 * anchored on tx.eventTimeMs.
 */
export function evaluate(
  ruleSet: RuleSet,
  s: AccountState,
  tx: Transaction,
  nowMs: number,
): readonly Alert[] {
  const cur = s.curIndex;
  if (s.curLate || cur < 0) return NO_ALERTS;
  const t = tx.eventTimeMs;
  const rules = ruleSet.compiled;
  cachedWindowMs = -1;
  let out: Alert[] | null = null;
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]!;
    if (s.cooldownRuleIds !== null && s.inCooldown(rule.id, t)) continue;
    let figures: AlertFigures | null = null;
    switch (rule.kind) {
      case K_VELOCITY: {
        const from = startFor(s, cur, t, rule.windowMs);
        const count = cur - from + 1;
        if (count >= rule.count) {
          const sum = s.sumRange(from, cur);
          figures = {
            count,
            threshold: rule.count,
            sumMinor: sum,
            sum: formatMinor(sum),
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case K_AMOUNT_SUM: {
        const from = startFor(s, cur, t, rule.windowMs);
        const sum = s.sumRange(from, cur);
        if (sum >= rule.amountMinor) {
          figures = {
            sumMinor: sum,
            sum: formatMinor(sum),
            threshold: formatMinor(rule.amountMinor),
            count: cur - from + 1,
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case K_CARD_TESTING:
        // minAmountMinor bounds the ring from below: above the small limit, nothing is small.
        if (tx.amountMinor >= rule.amountMinor && s.minAmountMinor <= rule.smallAmountMinor) {
          figures = cardTesting(rule, s, cur, t, tx.amountMinor);
        }
        break;
      case K_GEO:
        figures = geoVelocity(rule, s, cur, t, tx);
        break;
      case K_MERCHANT: {
        const from = startFor(s, cur, t, rule.windowMs);
        if (distinctAtLeast(s, from, cur, F_MERCHANT, rule.count)) {
          figures = {
            distinctMerchants: distinctValues(s, from, cur, F_MERCHANT).length,
            threshold: rule.count,
            count: cur - from + 1,
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case K_SPIKE: {
        const amount = tx.amountMinor;
        if (
          s.priorCount >= rule.count &&
          amount >= rule.amountMinor &&
          amount >= rule.multiplier * s.priorMean
        ) {
          const mean = Math.round(s.priorMean);
          figures = {
            amount: formatMinor(amount),
            historicalMean: formatMinor(mean),
            ratio: Math.round((amount / s.priorMean) * 100) / 100,
            multiplier: rule.multiplier,
            historyCount: s.priorCount,
          };
        }
        break;
      }
    }
    if (figures !== null) {
      s.startCooldown(rule.id, t + rule.cooldownMs);
      if (out === null) out = [];
      out.push({
        alertId: alertId(rule.id, tx.account_id, tx.transaction_id),
        ruleId: rule.id,
        ruleType: rule.rule.type,
        severity: rule.rule.severity,
        accountId: tx.account_id,
        transactionId: tx.transaction_id,
        eventTimeMs: t,
        detectedAtMs: nowMs,
        figures,
      });
    }
  }
  return out ?? NO_ALERTS;
}

function cardTesting(rule: CompiledRule, s: AccountState, cur: number, t: number, amount: number) {
  const from = startFor(s, cur, t, rule.windowMs);
  const buf = s.buf;
  const h = s.head;
  const m = s.mask;
  const max = rule.smallAmountMinor;
  let small = 0;
  // Only events before the large one count ("small ones, then a large one").
  for (let i = cur - 1; i >= from; i--) {
    if (buf[((h + i) & m) * STRIDE + F_AMOUNT]! <= max && ++small >= rule.count) break;
  }
  if (small < rule.count) return null;
  small = 0;
  let smallSum = 0;
  for (let i = from; i < cur; i++) {
    const a = buf[s.offset(i) + F_AMOUNT]!;
    if (a <= max) {
      small++;
      smallSum += a;
    }
  }
  return {
    smallCount: small,
    smallSum: formatMinor(smallSum),
    amount: formatMinor(amount),
    threshold: rule.count,
    smallAmountMax: formatMinor(max),
    largeAmountMin: formatMinor(rule.amountMinor),
    windowMs: rule.windowMs,
  };
}

/** Speed between two events if it breaks the rule's limits, else -1. */
function impossibleSpeed(
  rule: CompiledRule,
  lat1: number,
  lon1: number,
  t1: number,
  lat2: number,
  lon2: number,
  t2: number,
): number {
  if (distanceUpperBoundKm(lat1, lon1, lat2, lon2) <= rule.distanceKm) return -1;
  const km = haversineKm(lat1, lon1, lat2, lon2);
  if (km <= rule.distanceKm) return -1;
  // Equal timestamps count as 1 ms apart: far apart at the same instant is as impossible as it gets.
  const hours = Math.max(Math.abs(t2 - t1), 1) / 3_600_000;
  const speed = km / hours;
  return speed > rule.speedKmh ? speed : -1;
}

function geoVelocity(rule: CompiledRule, s: AccountState, cur: number, t: number, tx: Transaction) {
  let speed = -1;
  let otherTime = 0;
  let otherLat = 0;
  let otherLon = 0;
  if (rule.speedKmh > 0) {
    // Consecutive in event time. The newest event's predecessor is kept outside the ring,
    // so it is known even when it has left the window (a jump after a 5-minute pause is
    // still impossible travel). An out-of-order event forms two new pairs in the ring.
    if (s.curNewest) {
      if (s.prevTimeMs !== Number.NEGATIVE_INFINITY) {
        speed = impossibleSpeed(rule, s.prevLat, s.prevLon, s.prevTimeMs, tx.lat, tx.lon, t);
        otherTime = s.prevTimeMs;
        otherLat = s.prevLat;
        otherLon = s.prevLon;
      }
    } else {
      const buf = s.buf;
      for (let side = -1; side <= 1 && speed < 0; side += 2) {
        const i = cur + side;
        if (i < 0 || i >= s.len) continue;
        const o = s.offset(i);
        otherTime = buf[o + F_TIME]!;
        otherLat = buf[o + F_LAT]!;
        otherLon = buf[o + F_LON]!;
        speed = impossibleSpeed(rule, otherLat, otherLon, otherTime, tx.lat, tx.lon, t);
      }
    }
  }
  let countriesHit = false;
  let from = 0;
  // A ring from a single country cannot reach 2+ distinct countries: skip the scan.
  if (rule.count > 0 && (s.uniformCountry < 0 || rule.count <= 1)) {
    from = startFor(s, cur, t, rule.windowMs);
    countriesHit = distinctAtLeast(s, from, cur, F_COUNTRY, rule.count);
  }
  if (speed < 0 && !countriesHit) return null;
  if (rule.count === 0) from = startFor(s, cur, t, rule.windowMs);
  const countries = distinctValues(s, from, cur, F_COUNTRY).map(countryFromCode).sort();
  const figures: AlertFigures = {
    reason: speed >= 0 && countriesHit ? "speed+countries" : speed >= 0 ? "speed" : "countries",
    distinctCountries: countries.length,
    countries: countries.join(","),
    windowMs: rule.windowMs,
  };
  if (speed >= 0) {
    figures["speedKmh"] = Math.round(speed);
    figures["distanceKm"] = Math.round(haversineKm(otherLat, otherLon, tx.lat, tx.lon));
    figures["elapsedMs"] = Math.abs(t - otherTime);
    figures["maxSpeedKmh"] = rule.speedKmh;
  }
  if (rule.count > 0) figures["minDistinctCountries"] = rule.count;
  return figures;
}

/**
 * Rule documents: the rule types, and parseRules(), which validates a rules document and
 * compiles it into the RuleSet the evaluator (evaluate.ts) runs on every event. docs/rules.md
 * is the user-facing description of every field and rule type.
 *
 * Compiling puts every rule type into one object shape (CompiledRule), so the evaluator's
 * dispatch loop stays monomorphic, and gives the set its own evaluation scratch, so
 * evaluating allocates nothing and core keeps no module-level state.
 */
import { RULE_TYPES, type RuleType, SEVERITIES, type Severity } from "../contracts/alert.ts";
import { ErrorCodes, PaystreamError } from "./errors.ts";
import { parseAmountMinor } from "./schema.ts";
import { DEFAULT_WINDOW_MS } from "./window.ts";

export const RULES_DOCUMENT_VERSION = 1;
export const DEFAULT_COOLDOWN_MS = 300_000;
/** Upper bound for count thresholds: keeps the evaluator's distinct-count scratch small and typos obvious. */
export const MAX_COUNT_THRESHOLD = 10_000;

interface RuleCommon {
  readonly id: string;
  readonly enabled: boolean;
  /** Evaluated and counted like a live rule, but its alerts go only to the shadow area. */
  readonly shadow: boolean;
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

/** CompiledRule.kind: the evaluator switches on a small integer, not on the type string. */
export const RuleKind = {
  velocityCount: 0,
  amountSum: 1,
  cardTesting: 2,
  geoVelocity: 3,
  merchantSpread: 4,
  amountSpike: 5,
} as const;
export type RuleKind = (typeof RuleKind)[keyof typeof RuleKind];

/**
 * The evaluator's view of an enabled rule: every rule type in one object shape, numeric
 * parameters in generic slots, so the loop over rules never sees a second hidden class.
 */
export interface CompiledRule {
  readonly rule: Rule;
  readonly id: string;
  readonly kind: RuleKind;
  readonly shadow: boolean;
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

/**
 * evaluate()'s working memory, owned by its rule set: distinct values seen so far (as long
 * as the largest distinct-count threshold), and the window start of the event being
 * evaluated for the last windowMs asked (rules usually share one). evaluate() is synchronous,
 * so one rule set may serve any number of window stores.
 */
export interface EvaluationScratch {
  readonly seen: Float64Array;
  startWindowMs: number;
  start: number;
}

export interface RuleSet {
  readonly version: number;
  /** Every rule in document order, disabled ones included (for display). */
  readonly rules: readonly Rule[];
  /** Enabled rules only, in document order: what the evaluator runs. */
  readonly compiled: readonly CompiledRule[];
  /** Ids of the enabled shadow rules: their alerts never reach the live outputs. */
  readonly shadowIds: ReadonlySet<string>;
  /** Not data: evaluate()'s scratch (see EvaluationScratch). */
  readonly scratch: EvaluationScratch;
}

export interface ParseRulesOptions {
  /** The WindowStore's windowMs: no rule may look further back than the store keeps. Default 60 000. */
  maxWindowMs?: number;
}

// ---------------------------------------------------------------------------------------
// Parsing and validation

const COMMON_FIELDS = [
  "id",
  "type",
  "enabled",
  "shadow",
  "severity",
  "windowMs",
  "cooldownMs",
  "description",
];
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
  let distinct = 1;
  for (const c of compiled) {
    if (c.kind === RuleKind.geoVelocity || c.kind === RuleKind.merchantSpread)
      distinct = Math.max(distinct, c.count);
  }
  const scratch: EvaluationScratch = { seen: new Float64Array(distinct), startWindowMs: -1, start: 0 };
  const shadowIds = new Set(compiled.filter((c) => c.shadow).map((c) => c.id));
  return { version: RULES_DOCUMENT_VERSION, rules, compiled, shadowIds, scratch };
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
  const shadow = r.raw["shadow"] ?? false;
  if (typeof shadow !== "boolean") r.fail("shadow", "must be true or false");
  const severity = r.raw["severity"] ?? DEFAULT_SEVERITY[type];
  if (typeof severity !== "string" || !(SEVERITIES as readonly string[]).includes(severity)) {
    r.fail("severity", `must be one of ${SEVERITIES.join(", ")}`);
  }
  const description = r.raw["description"] ?? "";
  if (typeof description !== "string") r.fail("description", "must be a string");
  const common = {
    id,
    enabled,
    shadow,
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
  let kind: RuleKind = RuleKind.velocityCount;
  let count = 0;
  let amountMinor = 0;
  let smallAmountMinor = 0;
  let speedKmh = 0;
  let distanceKm = 0;
  let multiplier = 0;
  switch (rule.type) {
    case "velocity_count":
      kind = RuleKind.velocityCount;
      count = rule.threshold;
      break;
    case "amount_sum":
      kind = RuleKind.amountSum;
      amountMinor = rule.thresholdMinor;
      break;
    case "card_testing":
      kind = RuleKind.cardTesting;
      count = rule.minSmallCount;
      amountMinor = rule.largeAmountMinMinor;
      smallAmountMinor = rule.smallAmountMaxMinor;
      break;
    case "geo_velocity":
      kind = RuleKind.geoVelocity;
      count = rule.minDistinctCountries ?? 0;
      speedKmh = rule.maxSpeedKmh ?? 0;
      distanceKm = rule.minDistanceKm;
      break;
    case "merchant_spread":
      kind = RuleKind.merchantSpread;
      count = rule.threshold;
      break;
    case "amount_spike":
      kind = RuleKind.amountSpike;
      count = rule.minHistory;
      amountMinor = rule.minAmountMinor;
      multiplier = rule.multiplier;
      break;
  }
  return {
    rule,
    id: rule.id,
    kind,
    shadow: rule.shadow,
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

/**
 * Pure traffic generator: turns "it is now T" into Kafka-ready records (key, JSON value)
 * plus out-of-band ground-truth labels. No I/O, no timers, no wall clock: the caller passes
 * nowMs, so the same seed and the same sequence of calls give byte-identical output.
 *
 * Cost model: a normal record is one uuid, one amount and a concatenation of cached JSON
 * fragments (see Population), about 1 µs. Scenario incidents, faults and malformed records
 * are rare and may allocate freely.
 */

import { type DlqReason, DlqReasons } from "../contracts/dlq.ts";
import {
  type DuplicateLabel,
  EXPECTED_RULE,
  type Label,
  type LateLabel,
  type OutOfOrderLabel,
  RECORD_KINDS,
  type RecordKind,
  SCENARIO_TYPES,
  type ScenarioLabel,
  type ScenarioType,
} from "../contracts/labels.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, transactionJsonSchemaV1 } from "../contracts/transaction.ts";
import { ConfigError } from "../core/errors.ts";
import { haversineKm } from "../core/rules.ts";
import { formatMinor } from "../core/schema.ts";
import { CATEGORY, farCities, Population, type PopulationOptions } from "./population.ts";
import { Rng } from "./random.ts";

export interface GeneratedRecord {
  /** account_id: the Kafka key. */
  key: string;
  /** The JSON value, exactly as it goes on the wire. */
  value: string;
  /** transaction_id of a valid record (duplicates repeat the original's); null for malformed records. */
  transactionId: string | null;
  kind: RecordKind;
  /** Ground truth for payments.labels; null for normal records and for scenario records before the last. */
  label: Label | null;
}

/** Per scenario type: fraction of all accounts that start an incident per hour. */
export type ScenarioRates = Record<ScenarioType, number>;

/** Fractions of emitted records (scenario records excluded from the denominator). */
export interface FaultRates {
  duplicate: number;
  late: number;
  outOfOrder: number;
  malformed: number;
}

export const DEFAULT_SCENARIO_RATES: Readonly<ScenarioRates> = {
  velocity_burst: 0.005,
  card_testing: 0.005,
  geo_velocity: 0.005,
  merchant_spread: 0.005,
  amount_spike: 0.005,
};

export const DEFAULT_FAULT_RATES: Readonly<FaultRates> = {
  duplicate: 0.005,
  late: 0.002,
  outOfOrder: 0.005,
  malformed: 0.001,
};

export const DEFAULT_LATE_MAX_MS = 30_000;
export const DEFAULT_JITTER_MS = 250;
export const DEFAULT_MIN_ACCOUNT_GAP_MS = 20_000;

export interface GeneratorOptions {
  seed?: number | string;
  /** Default 100 000. Ignored when `population` is given. */
  accounts?: number;
  /** Default 5 000. Ignored when `population` is given. */
  merchants?: number;
  /** JSON-fragment cache slots; see PopulationOptions.cacheSlots. Ignored when `population` is given. */
  cacheSlots?: number;
  /** Reuse a population (its own seed, accounts and merchants apply). */
  population?: Population;
  scenarioRates?: Partial<ScenarioRates>;
  faultRates?: Partial<FaultRates>;
  /** Late events are U(1 s, lateMaxMs) behind nowMs. Default 30 000. */
  lateMaxMs?: number;
  /** Oversized malformed records exceed this many bytes. Default 16 KiB. */
  maxMessageBytes?: number;
  /** Normal event_time = nowMs - U(0, jitterMs). Default 250. */
  jitterMs?: number;
  /** Least event-time gap between two normal transactions of one account. Default 20 000. */
  minAccountGapMs?: number;
}

export interface GeneratorSettings {
  seed: number | string;
  accounts: number;
  merchants: number;
  scenarioRates: ScenarioRates;
  faultRates: FaultRates;
  lateMaxMs: number;
  maxMessageBytes: number;
  jitterMs: number;
  minAccountGapMs: number;
}

export interface GeneratorCounters {
  generated: Record<RecordKind, number>;
  scenariosStarted: Record<ScenarioType, number>;
  scenariosCompleted: Record<ScenarioType, number>;
  /** Incidents not started because no quiet account was found in a few draws. */
  scenariosSkipped: Record<ScenarioType, number>;
  /** Normal records that had to break the per-account minimum gap: the rate is too high for the population. */
  cooldownOverrides: number;
  /** Incidents emitting now, plus finished ones whose account is still held out of normal traffic. */
  activeScenarios: number;
}

/**
 * An account must be idle this long (event time) before an incident and stays reserved this
 * long after it: the 60 s rule window + 10 s allowed lateness + margin. Normal traffic then
 * never shares a window with an incident, so the label's trigger is exactly where the rule fires.
 */
export const SCENARIO_QUIET_MS = 75_000;
/**
 * Incidents use accounts whose mean amount is at most 150.00 (about 98% of them), and an
 * amount_spike keeps its window total under SCENARIO_WINDOW_SUM_MAX_MINOR: then no incident
 * also reaches the default amount_sum rule (10 000.00 in 60 s), and each label maps to one rule.
 */
const SCENARIO_MAX_MEAN_MINOR = 15_000;
const SCENARIO_WINDOW_SUM_MAX_MINOR = 950_000;
/** Geo incidents hold the account until the trip home is below the rule's 900 km/h. */
const GEO_RELEASE_KMH = 800;
/** Out-of-order events sit this close behind nowMs so they are never behind the 10 s watermark. */
const OOO_MAX_AGE_MS = 7_000;
const OOO_MIN_BACK_MS = 100;
const OOO_MAX_BACK_MS = 3_000;
const RING_SIZE = 1024;
const RING_INTERVAL_MS = 5;
const COOLDOWN_TRIES = 16;
const SCENARIO_ACCOUNT_TRIES = 32;
/** A scheduler that falls further behind than this drops the backlog rather than bursting it. */
const MAX_SCHEDULE_LAG_MS = 60_000;
const HOUR_MS = 3_600_000;

const PREFIX = '{"schema_version":1,"transaction_id":"';
const MS_TAIL: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0") + 'Z"}');

type Malformation =
  | "truncated"
  | "not_object"
  | "missing_field"
  | "wrong_type"
  | "luhn"
  | "negative"
  | "zero"
  | "bad_amount"
  | "bad_event_time"
  | "schema_v2"
  | "oversized";

const MALFORMATIONS: readonly Malformation[] = [
  "truncated",
  "not_object",
  "missing_field",
  "wrong_type",
  "luhn",
  "negative",
  "zero",
  "bad_amount",
  "bad_event_time",
  "schema_v2",
  "oversized",
];
const MALFORMATION_WEIGHTS = [0.2, 0.04, 0.12, 0.12, 0.12, 0.08, 0.06, 0.06, 0.08, 0.06, 0.06];

interface Incident {
  readonly id: string;
  readonly type: ScenarioType;
  readonly account: number;
  readonly card: number;
  readonly device: number;
  /** Planned emission times (epoch ms), one per transaction. */
  readonly due: number[];
  readonly merchants: number[];
  readonly amounts: number[];
  readonly trigger: number;
  /** How long the account stays reserved after the last transaction. */
  readonly holdMs: number;
  readonly txIds: string[];
  next: number;
  startedAt: number;
  lastEventMs: number;
  releaseAt: number;
}

type Plan = Pick<Incident, "due" | "merchants" | "amounts" | "trigger" | "holdMs">;

function checkRate(field: string, value: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    throw new ConfigError(field, `must be a number in [0, ${max}], got ${value}`);
  }
  return value;
}

function checkInt(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(field, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function mergeScenarioRates(base: ScenarioRates, update: Partial<ScenarioRates>): ScenarioRates {
  const out = { ...base };
  for (const t of SCENARIO_TYPES) {
    const v = update[t];
    if (v !== undefined) out[t] = checkRate(`scenarioRates.${t}`, v, 100);
  }
  return out;
}

function mergeFaultRates(base: FaultRates, update: Partial<FaultRates>): FaultRates {
  const out = { ...base };
  for (const k of ["duplicate", "late", "outOfOrder", "malformed"] as const) {
    const v = update[k];
    if (v !== undefined) out[k] = checkRate(`faultRates.${k}`, v, 1);
  }
  if (out.duplicate + out.late + out.outOfOrder + out.malformed > 1) {
    throw new ConfigError("faultRates", "the four rates must add up to at most 1");
  }
  return out;
}

function zeroBy<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** `count` times from start to start + span, both ends included, sorted. */
function spread(rng: Rng, count: number, start: number, span: number): number[] {
  const t = [start];
  for (let i = 1; i < count - 1; i++) t.push(start + rng.below(span));
  t.push(start + span);
  return t.sort((a, b) => a - b);
}

export class TrafficGenerator {
  readonly population: Population;

  private readonly rng: Rng;
  private readonly seed: number | string;
  private scenarioRates: ScenarioRates;
  private faultRates: FaultRates;
  private readonly lateMaxMs: number;
  private readonly maxMessageBytes: number;
  private readonly jitterMs: number;
  private readonly minAccountGapMs: number;

  // Cumulative fault thresholds, compared with one uniform draw per record.
  private cutDuplicate = 0;
  private cutLate = 0;
  private cutOutOfOrder = 0;
  private cutMalformed = 0;

  /**
   * Newest event time per account: -Infinity = never, +Infinity = an incident owns it. One
   * array answers both "rested?" and "free?" with one memory access per candidate.
   */
  private readonly lastEventMs: Float64Array;
  /** Draws per normal record before the rest gap gives way; shrinks when the population is saturated. */
  private cooldownTries = COOLDOWN_TRIES;

  private readonly running: Incident[] = [];
  private readonly cooling: Incident[] = [];
  private nextDueMs = Number.POSITIVE_INFINITY;
  private nextReleaseMs = Number.POSITIVE_INFINITY;
  private readonly nextStartMs = new Float64Array(SCENARIO_TYPES.length);
  private nextStartMin = Number.POSITIVE_INFINITY;
  private scheduled = false;
  private scenarioSeq = 0;

  // Duplicates resend either the previous valid record or one from a ring sampled at most
  // every RING_INTERVAL_MS, which spans a few seconds whatever the rate while holding few
  // records (a ring of every record would keep thousands of strings alive through GC).
  private prevValue = "";
  private prevKey = "";
  private prevTxId = "";
  private prevSentAt = 0;
  private readonly ringValue: string[] = new Array<string>(RING_SIZE).fill("");
  private readonly ringKey: string[] = new Array<string>(RING_SIZE).fill("");
  private readonly ringTxId: string[] = new Array<string>(RING_SIZE).fill("");
  private readonly ringSentAt = new Float64Array(RING_SIZE);
  private ringHead = 0;
  private ringCount = 0;
  private ringLastMs = Number.NEGATIVE_INFINITY;

  private lastNormalAccount = -1;
  private lastNormalEventMs = 0;

  private timeSec = Number.NaN;
  private timePrefix = "";
  /** transaction_id of the last build(); a field so build() can return just the value. */
  private txId = "";
  private padding = "";

  private readonly generated = zeroBy(RECORD_KINDS);
  private readonly started = zeroBy(SCENARIO_TYPES);
  private readonly completed = zeroBy(SCENARIO_TYPES);
  private readonly skipped = zeroBy(SCENARIO_TYPES);
  private cooldownOverrides = 0;

  constructor(options: GeneratorOptions = {}) {
    this.seed = options.seed ?? 0;
    if (options.population !== undefined) {
      this.population = options.population;
    } else {
      const popOptions: PopulationOptions = { seed: this.seed };
      if (options.accounts !== undefined) popOptions.accounts = options.accounts;
      if (options.merchants !== undefined) popOptions.merchants = options.merchants;
      if (options.cacheSlots !== undefined) popOptions.cacheSlots = options.cacheSlots;
      this.population = new Population(popOptions);
    }
    // A separate stream from the population's, so traffic does not shift when the population changes.
    this.rng = new Rng(this.seed, 0x7ffffff0);
    this.scenarioRates = mergeScenarioRates({ ...DEFAULT_SCENARIO_RATES }, options.scenarioRates ?? {});
    this.faultRates = mergeFaultRates({ ...DEFAULT_FAULT_RATES }, options.faultRates ?? {});
    this.lateMaxMs = checkInt("lateMaxMs", options.lateMaxMs ?? DEFAULT_LATE_MAX_MS, 1_001, 3_600_000);
    this.maxMessageBytes = checkInt(
      "maxMessageBytes",
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      1_024,
      64 * 1024 * 1024,
    );
    this.jitterMs = checkInt("jitterMs", options.jitterMs ?? DEFAULT_JITTER_MS, 0, 5_000);
    this.minAccountGapMs = checkInt(
      "minAccountGapMs",
      options.minAccountGapMs ?? DEFAULT_MIN_ACCOUNT_GAP_MS,
      0,
      HOUR_MS,
    );
    this.applyFaultRates();
    const n = this.population.accounts;
    this.lastEventMs = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
  }

  /**
   * Writes n records for time nowMs into out[0..n) (fresh objects; nothing is reused) and
   * truncates out to n. Returns out.
   */
  fill(out: GeneratedRecord[], n: number, nowMs: number): GeneratedRecord[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
    const now = this.advance(nowMs);
    for (let i = 0; i < n; i++) out[i] = this.one(now);
    out.length = n;
    return out;
  }

  next(nowMs: number): GeneratedRecord {
    return this.one(this.advance(nowMs));
  }

  /** Starts an incident now (e.g. from a control API). Returns its scenario_id, or null if no quiet account was found. */
  injectScenario(type: ScenarioType, nowMs: number): string | null {
    if (!SCENARIO_TYPES.includes(type)) throw new ConfigError("scenario", `unknown scenario type ${type}`);
    return this.startIncident(type, this.advance(nowMs));
  }

  /** Takes effect at the next call: every type's next start is redrawn from then. */
  setScenarioRates(rates: Partial<ScenarioRates>): void {
    this.scenarioRates = mergeScenarioRates(this.scenarioRates, rates);
    this.scheduled = false;
  }

  setFaultRates(rates: Partial<FaultRates>): void {
    this.faultRates = mergeFaultRates(this.faultRates, rates);
    this.applyFaultRates();
  }

  settings(): GeneratorSettings {
    return {
      seed: this.seed,
      accounts: this.population.accounts,
      merchants: this.population.merchants,
      scenarioRates: { ...this.scenarioRates },
      faultRates: { ...this.faultRates },
      lateMaxMs: this.lateMaxMs,
      maxMessageBytes: this.maxMessageBytes,
      jitterMs: this.jitterMs,
      minAccountGapMs: this.minAccountGapMs,
    };
  }

  counters(): GeneratorCounters {
    return {
      generated: { ...this.generated },
      scenariosStarted: { ...this.started },
      scenariosCompleted: { ...this.completed },
      scenariosSkipped: { ...this.skipped },
      cooldownOverrides: this.cooldownOverrides,
      activeScenarios: this.running.length + this.cooling.length,
    };
  }

  private applyFaultRates(): void {
    const f = this.faultRates;
    this.cutDuplicate = f.duplicate;
    this.cutLate = this.cutDuplicate + f.late;
    this.cutOutOfOrder = this.cutLate + f.outOfOrder;
    this.cutMalformed = this.cutOutOfOrder + f.malformed;
  }

  /** Per-call bookkeeping: starts due incidents and releases held accounts. */
  private advance(nowMs: number): number {
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be a finite epoch-ms number, got ${nowMs}`);
    const now = Math.floor(nowMs);
    if (!this.scheduled) {
      for (let t = 0; t < SCENARIO_TYPES.length; t++) this.nextStartMs[t] = now + this.interarrival(t);
      this.nextStartMin = Math.min(...this.nextStartMs);
      this.scheduled = true;
    }
    if (now >= this.nextStartMin) {
      for (let t = 0; t < SCENARIO_TYPES.length; t++) {
        if (this.nextStartMs[t]! < now - MAX_SCHEDULE_LAG_MS) this.nextStartMs[t] = now;
        while (this.nextStartMs[t]! <= now) {
          this.startIncident(SCENARIO_TYPES[t]!, now);
          this.nextStartMs[t] = this.nextStartMs[t]! + this.interarrival(t);
        }
      }
      this.nextStartMin = Math.min(...this.nextStartMs);
    }
    if (now >= this.nextReleaseMs) this.release(now);
    return now;
  }

  /** Poisson arrivals: rate x accounts incidents per hour. */
  private interarrival(t: number): number {
    const perHour = this.scenarioRates[SCENARIO_TYPES[t]!] * this.population.accounts;
    return perHour > 0 ? this.rng.exponential(HOUR_MS / perHour) : Number.POSITIVE_INFINITY;
  }

  private one(now: number): GeneratedRecord {
    if (this.nextDueMs <= now) return this.scenarioStep(now);
    const r = this.rng.float();
    if (r < this.cutMalformed) {
      if (r < this.cutDuplicate) {
        if (this.prevValue !== "") return this.duplicate();
      } else if (r < this.cutLate) {
        return this.late(now);
      } else if (r < this.cutOutOfOrder) {
        if (this.lastNormalAccount >= 0 && this.lastNormalEventMs - OOO_MIN_BACK_MS >= now - OOO_MAX_AGE_MS) {
          return this.outOfOrder(now);
        }
      } else {
        return this.malformed(now);
      }
    }
    return this.normal(now);
  }

  private normal(now: number): GeneratedRecord {
    const a = this.selectAccount(now);
    const eventMs = now - this.rng.below(this.jitterMs + 1);
    const value = this.buildFor(a, eventMs);
    this.lastNormalAccount = a;
    this.lastNormalEventMs = eventMs;
    return this.valid("normal", a, value, null, now);
  }

  private late(now: number): GeneratedRecord {
    const a = this.selectAccount(now);
    const eventMs = now - this.rng.int(1_000, this.lateMaxMs);
    const value = this.buildFor(a, eventMs);
    const label: LateLabel = { type: "late", transaction_id: this.txId, lateness_ms: now - eventMs };
    return this.valid("late", a, value, label, now);
  }

  /** A new transaction for the account of the last normal record, dated just before that record. */
  private outOfOrder(now: number): GeneratedRecord {
    const a = this.lastNormalAccount;
    const hi = this.lastNormalEventMs - OOO_MIN_BACK_MS;
    const lo = Math.max(now - OOO_MAX_AGE_MS, this.lastNormalEventMs - OOO_MAX_BACK_MS);
    const eventMs = this.rng.int(lo, hi);
    const value = this.buildFor(a, eventMs);
    // A second one would have to be before this one, not before the normal record.
    this.lastNormalAccount = -1;
    const label: OutOfOrderLabel = { type: "out_of_order", transaction_id: this.txId };
    return this.valid("out_of_order", a, value, label, now);
  }

  private duplicate(): GeneratedRecord {
    this.generated.duplicate++;
    if (this.ringCount === 0 || this.rng.chance(0.5)) {
      return this.resend(this.prevKey, this.prevValue, this.prevTxId, this.prevSentAt);
    }
    const i = (this.ringHead + RING_SIZE - 1 - this.rng.below(this.ringCount)) % RING_SIZE;
    return this.resend(this.ringKey[i]!, this.ringValue[i]!, this.ringTxId[i]!, this.ringSentAt[i]!);
  }

  private resend(key: string, value: string, transactionId: string, sentAt: number): GeneratedRecord {
    const label: DuplicateLabel = {
      type: "duplicate",
      transaction_id: transactionId,
      original_sent_at: sentAt,
    };
    return { key, value, transactionId, kind: "duplicate", label };
  }

  /** Remembers a valid record for later duplicates and wraps it. */
  private valid(
    kind: RecordKind,
    account: number,
    value: string,
    label: Label | null,
    now: number,
  ): GeneratedRecord {
    const key = this.population.accountId(account);
    this.prevKey = key;
    this.prevValue = value;
    this.prevTxId = this.txId;
    this.prevSentAt = now;
    if (now - this.ringLastMs >= RING_INTERVAL_MS) {
      const h = this.ringHead;
      this.ringValue[h] = value;
      this.ringKey[h] = key;
      this.ringTxId[h] = this.txId;
      this.ringSentAt[h] = now;
      this.ringHead = (h + 1) % RING_SIZE;
      if (this.ringCount < RING_SIZE) this.ringCount++;
      this.ringLastMs = now;
    }
    this.generated[kind]++;
    return { key, value, transactionId: this.txId, kind, label };
  }

  /**
   * An account by activity that is free and has rested minAccountGapMs. Heavy accounts are
   * capped this way (normal traffic then cannot reach the count rules); when the rate is
   * too high for the population the gap gives way, and the override is counted.
   */
  private selectAccount(now: number): number {
    const pop = this.population;
    const limit = now - this.minAccountGapMs;
    let a = 0;
    for (let t = 0; t < this.cooldownTries; t++) {
      a = pop.sampleAccount(this.rng);
      if (this.lastEventMs[a]! <= limit) {
        if (this.cooldownTries < COOLDOWN_TRIES) this.cooldownTries++;
        return a;
      }
    }
    // Saturated: stop paying for draws that mostly fail (halve), recover one per success.
    this.cooldownOverrides++;
    this.cooldownTries = Math.max(1, this.cooldownTries >> 1);
    for (let t = 0; t < 64 && this.lastEventMs[a] === Number.POSITIVE_INFINITY; t++)
      a = pop.sampleAccount(this.rng);
    return a;
  }

  /** A normal transaction body for account a at eventMs; sets this.txId. */
  private buildFor(a: number, eventMs: number): string {
    const pop = this.population;
    const m = pop.sampleMerchant(this.rng, a);
    const value = this.build(
      a,
      this.pickCard(a),
      this.pickDevice(a),
      m,
      pop.amountMinor(this.rng, a, m),
      eventMs,
    );
    if (eventMs > this.lastEventMs[a]!) this.lastEventMs[a] = eventMs;
    return value;
  }

  private pickCard(a: number): number {
    return this.population.cardsOf(a) === 2 && this.rng.chance(0.2) ? 1 : 0;
  }

  private pickDevice(a: number): number {
    return this.population.devicesOf(a) === 2 && this.rng.chance(0.25) ? 1 : 0;
  }

  private build(
    a: number,
    card: number,
    device: number,
    m: number,
    amountMinor: number,
    eventMs: number,
  ): string {
    const pop = this.population;
    const id = this.rng.uuid();
    this.txId = id;
    let v =
      PREFIX +
      id +
      pop.identityFragment(a, card, device) +
      formatMinor(amountMinor) +
      pop.merchantFragment(m);
    if (pop.isOnline(m)) v += pop.homeFragment(a);
    return v + this.timeTail(eventMs);
  }

  /** RFC 3339 UTC with milliseconds plus the closing quote and brace; one toISOString per second. */
  private timeTail(ms: number): string {
    const sec = Math.floor(ms / 1000);
    if (sec !== this.timeSec) {
      this.timeSec = sec;
      this.timePrefix = new Date(sec * 1000).toISOString().slice(0, 20);
    }
    return this.timePrefix + MS_TAIL[ms - sec * 1000]!;
  }

  // ---- scenarios -------------------------------------------------------------------------

  private startIncident(type: ScenarioType, now: number): string | null {
    const pop = this.population;
    let a = -1;
    // Uniform over accounts, not by activity: the rate is "a fraction of accounts".
    for (let t = 0; t < SCENARIO_ACCOUNT_TRIES; t++) {
      const c = this.rng.below(pop.accounts);
      if (
        this.lastEventMs[c]! <= now - SCENARIO_QUIET_MS &&
        pop.meanAmountMinor(c) <= SCENARIO_MAX_MEAN_MINOR
      ) {
        a = c;
        break;
      }
    }
    if (a < 0) {
      this.skipped[type]++;
      return null;
    }
    this.lastEventMs[a] = Number.POSITIVE_INFINITY;
    const plan = this.plan(type, a, now);
    const id = `scn_${pop.idTag}_${String(++this.scenarioSeq).padStart(7, "0")}`;
    this.running.push({
      id,
      type,
      account: a,
      card: this.pickCard(a),
      device: this.pickDevice(a),
      ...plan,
      txIds: [],
      next: 0,
      startedAt: 0,
      lastEventMs: Number.NEGATIVE_INFINITY,
      releaseAt: 0,
    });
    if (plan.due[0]! < this.nextDueMs) this.nextDueMs = plan.due[0]!;
    this.started[type]++;
    return id;
  }

  private plan(type: ScenarioType, a: number, now: number): Plan {
    const rng = this.rng;
    const pop = this.population;
    const home = pop.cityOf(a);
    const normalAt = (merchants: number[]) => merchants.map((m) => pop.amountMinor(rng, a, m));
    const fewMerchants = (k: number) => Array.from({ length: k }, () => pop.sampleMerchant(rng, a));
    switch (type) {
      case "velocity_burst": {
        // 15-18 in 15-30 s at 1-3 merchants: >= 10 in 60 s from the 10th on, never 6 merchants.
        const due = spread(rng, rng.int(15, 18), now, rng.int(15_000, 30_000));
        const pool = fewMerchants(rng.int(1, 3));
        const merchants = due.map(() => rng.pick(pool));
        return { due, merchants, amounts: normalAt(merchants), trigger: 9, holdMs: SCENARIO_QUIET_MS };
      }
      case "card_testing": {
        // 6-8 probes of 0.50-1.99 at one or two digital-goods merchants, then one 150.00-499.99
        // cash-out: 7-9 transactions (under the velocity rule), below 500.00 (under amount_spike).
        const due = spread(rng, rng.int(6, 8), now, rng.int(8_000, 20_000));
        const probes = Array.from({ length: rng.int(1, 2) }, () =>
          pop.sampleMerchantOf(rng, CATEGORY.digital_goods!, home),
        );
        const merchants = due.map(() => rng.pick(probes));
        const amounts = due.map(() => rng.int(50, 199));
        due.push(due[due.length - 1]! + rng.int(2_000, 6_000));
        merchants.push(
          pop.sampleMerchantOf(rng, rng.chance(0.5) ? CATEGORY.electronics! : CATEGORY.ecommerce!, home),
        );
        amounts.push(rng.int(15_000, 49_999));
        return { due, merchants, amounts, trigger: due.length - 1, holdMs: SCENARIO_QUIET_MS };
      }
      case "geo_velocity": {
        // A card-present purchase at home, then one 10-40 s later in a city >= 2 000 km away.
        const there = rng.pick(farCities(home));
        const cp = [CATEGORY.grocery!, CATEGORY.restaurants!, CATEGORY.fuel!, CATEGORY.fast_food!];
        const m1 = pop.sampleMerchantOf(rng, rng.pick(cp), home);
        const m2 = pop.sampleMerchantOf(
          rng,
          rng.pick([CATEGORY.electronics!, CATEGORY.clothing!, ...cp]),
          there,
        );
        const merchants = [m1, m2];
        const km = haversineKm(
          pop.merchantLat[m1]!,
          pop.merchantLon[m1]!,
          pop.merchantLat[m2]!,
          pop.merchantLon[m2]!,
        );
        // Hold until the next home transaction is slower than the rule's speed, or it would alert too.
        const holdMs = Math.ceil((km / GEO_RELEASE_KMH) * HOUR_MS) + SCENARIO_QUIET_MS;
        return {
          due: [now, now + rng.int(10_000, 40_000)],
          merchants,
          amounts: normalAt(merchants),
          trigger: 1,
          holdMs,
        };
      }
      case "merchant_spread": {
        // 8-9 distinct merchants in 15-35 s: 6 distinct at the 6th, under the velocity rule's 10.
        const due = spread(rng, rng.int(8, 9), now, rng.int(15_000, 35_000));
        const merchants: number[] = [];
        for (let t = 0; merchants.length < due.length && t < 1_000; t++) {
          const m = pop.sampleMerchant(rng, a);
          if (!merchants.includes(m)) merchants.push(m);
        }
        // Unreachable with MIN_MERCHANTS (>= 9 per city plus online ones), but never loop forever.
        for (let m = 0; merchants.length < due.length; m++) {
          if (pop.isOnline(m) && !merchants.includes(m)) merchants.push(m);
        }
        return { due, merchants, amounts: normalAt(merchants), trigger: 5, holdMs: SCENARIO_QUIET_MS };
      }
      case "amount_spike": {
        // 8 ordinary purchases 1.5-3 s apart, then one >= 20x the account mean and >= 1 000.00.
        const due = [now];
        for (let i = 1; i < 8; i++) due.push(due[i - 1]! + rng.int(1_500, 3_000));
        const pool = fewMerchants(rng.int(1, 3));
        const merchants = due.map(() => rng.pick(pool));
        const amounts = normalAt(merchants);
        const priorSum = amounts.reduce((s, x) => s + x, 0);
        const least = Math.ceil(
          Math.max(20 * Math.max(priorSum / amounts.length, pop.meanAmountMinor(a)), 100_000),
        );
        const room = SCENARIO_WINDOW_SUM_MAX_MINOR - priorSum;
        due.push(due[7]! + rng.int(2_000, 5_000));
        const spikeCat = rng.pick([CATEGORY.electronics!, CATEGORY.airlines!, CATEGORY.ecommerce!]);
        merchants.push(pop.sampleMerchantOf(rng, spikeCat, home));
        amounts.push(Math.max(least, Math.min(Math.round(least * rng.uniform(1, 1.5)), room)));
        return { due, merchants, amounts, trigger: 8, holdMs: SCENARIO_QUIET_MS };
      }
    }
  }

  private scenarioStep(now: number): GeneratedRecord {
    let inc = this.running[0]!;
    for (const x of this.running) if (x.due[x.next]! < inc.due[inc.next]!) inc = x;
    const k = inc.next;
    // Normally the planned time; if the caller stalled, compress rather than emit stale (late) times.
    const eventMs = Math.max(inc.due[k]!, now - this.jitterMs, inc.lastEventMs);
    const a = inc.account;
    const value = this.build(a, inc.card, inc.device, inc.merchants[k]!, inc.amounts[k]!, eventMs);
    inc.txIds.push(this.txId);
    if (k === 0) inc.startedAt = eventMs;
    inc.lastEventMs = eventMs;
    inc.next = k + 1;
    let label: ScenarioLabel | null = null;
    if (inc.next === inc.due.length) {
      label = {
        type: "scenario",
        scenario_id: inc.id,
        scenario: inc.type,
        expected_rule: EXPECTED_RULE[inc.type],
        account_id: this.population.accountId(a),
        transaction_ids: inc.txIds,
        trigger_transaction_id: inc.txIds[inc.trigger]!,
        started_at: inc.startedAt,
        completed_at: eventMs,
      };
      this.running.splice(this.running.indexOf(inc), 1);
      inc.releaseAt = eventMs + inc.holdMs;
      this.cooling.push(inc);
      if (inc.releaseAt < this.nextReleaseMs) this.nextReleaseMs = inc.releaseAt;
      this.completed[inc.type]++;
    }
    let due = Number.POSITIVE_INFINITY;
    for (const x of this.running) if (x.due[x.next]! < due) due = x.due[x.next]!;
    this.nextDueMs = due;
    return this.valid("scenario", a, value, label, now);
  }

  private release(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    let w = 0;
    for (const inc of this.cooling) {
      if (inc.releaseAt <= now) {
        this.lastEventMs[inc.account] = inc.lastEventMs;
      } else {
        this.cooling[w++] = inc;
        if (inc.releaseAt < next) next = inc.releaseAt;
      }
    }
    this.cooling.length = w;
    this.nextReleaseMs = next;
  }

  // ---- malformed -------------------------------------------------------------------------

  private malformed(now: number): GeneratedRecord {
    const rng = this.rng;
    const pop = this.population;
    const a = pop.sampleAccount(rng);
    const m = pop.sampleMerchant(rng, a);
    const eventMs = now - rng.below(this.jitterMs + 1);
    const valid = this.build(a, this.pickCard(a), this.pickDevice(a), m, pop.amountMinor(rng, a, m), eventMs);
    const [value, reason, detail] = this.corrupt(MALFORMATIONS[rng.weighted(MALFORMATION_WEIGHTS)]!, valid);
    const key = pop.accountId(a);
    this.generated.malformed++;
    return {
      key,
      value,
      transactionId: null,
      kind: "malformed",
      label: { type: "malformed", reason, detail, key },
    };
  }

  private corrupt(how: Malformation, valid: string): [string, DlqReason, string] {
    const rng = this.rng;
    const tx = JSON.parse(valid) as Record<string, unknown>;
    const amount = tx.amount as string;
    const again = (): string => JSON.stringify(tx);
    switch (how) {
      case "truncated": {
        // Any proper prefix of an object is invalid JSON: the closing brace is the last byte.
        const cut = rng.int(1, valid.length - 2);
        return [valid.slice(0, cut), DlqReasons.badJson, `truncated to ${cut} of ${valid.length} characters`];
      }
      case "not_object":
        return rng.chance(0.5)
          ? [`[${valid}]`, DlqReasons.notObject, "transaction wrapped in a JSON array"]
          : [JSON.stringify(valid), DlqReasons.notObject, "transaction double-encoded as a JSON string"];
      case "missing_field": {
        const field = rng.pick(transactionJsonSchemaV1.required);
        delete tx[field];
        return [again(), DlqReasons.schemaViolation, `required field ${field} missing`];
      }
      case "wrong_type": {
        const field = rng.pick([
          "amount",
          "lat",
          "event_time",
          "merchant_category",
          "schema_version",
          "card_number",
        ]);
        const v = tx[field];
        tx[field] =
          field === "amount"
            ? true
            : field === "lat"
              ? String(v)
              : field === "event_time"
                ? Date.parse(v as string)
                : field === "schema_version"
                  ? "1"
                  : field === "card_number"
                    ? null
                    : Number(v);
        return [
          again(),
          DlqReasons.schemaViolation,
          `${field} has type ${tx[field] === null ? "null" : typeof tx[field]}`,
        ];
      }
      case "luhn": {
        const pan = tx.card_number as string;
        const last = (pan.charCodeAt(pan.length - 1) - 48 + rng.int(1, 9)) % 10;
        tx.card_number = pan.slice(0, -1) + last;
        return [again(), DlqReasons.luhnInvalid, "card_number check digit altered"];
      }
      case "negative":
        tx.amount = `-${amount}`;
        return [again(), DlqReasons.nonPositiveAmount, `amount -${amount}`];
      case "zero":
        tx.amount = rng.chance(0.5) ? "0.00" : 0;
        return [again(), DlqReasons.nonPositiveAmount, `amount ${JSON.stringify(tx.amount)}`];
      case "bad_amount": {
        const bad = rng.pick([`${amount}${rng.int(1, 9)}`, amount.replace(".", ","), `USD ${amount}`]);
        tx.amount = bad;
        return [again(), DlqReasons.badAmount, `amount ${JSON.stringify(bad)}`];
      }
      case "bad_event_time": {
        const t = tx.event_time as string;
        const bad = rng.pick([t.slice(0, -1), t.replace("T", " "), `${t.slice(0, 5)}13${t.slice(7)}`]);
        tx.event_time = bad;
        return [again(), DlqReasons.badEventTime, `event_time ${JSON.stringify(bad)}`];
      }
      case "schema_v2":
        tx.schema_version = 2;
        return [again(), DlqReasons.unsupportedSchemaVersion, "schema_version 2"];
      case "oversized": {
        const padLength = this.maxMessageBytes - valid.length + rng.int(1, 2_048);
        if (this.padding.length < padLength) this.padding = "x".repeat(padLength + 4_096);
        const value = `${valid.slice(0, -1)},"memo":"${this.padding.slice(0, padLength)}"}`;
        return [
          value,
          DlqReasons.oversized,
          `${Buffer.byteLength(value)} bytes, limit ${this.maxMessageBytes}`,
        ];
      }
    }
  }
}

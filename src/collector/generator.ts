/**
 * Pure traffic generator: turns "it is now T" into Kafka-ready records (key, JSON value)
 * plus out-of-band ground-truth labels. No I/O, no timers, no wall clock: the caller passes
 * nowMs, so the same seed and the same sequence of calls give byte-identical output.
 *
 * This module interleaves the kinds of record: normal traffic (here), scenario incidents
 * (scenarios.ts: when they start and what they are), and injected faults (faults.ts:
 * duplicates, malformed records; late and out-of-order times are drawn here because they
 * are normal transactions with another event time). The world they happen in is
 * population.ts.
 *
 * Cost model: a normal record is one uuid, one amount and a concatenation of cached JSON
 * fragments (see Population), about 1 µs. Scenario incidents, faults and malformed records
 * are rare and may allocate freely.
 */

import {
  type Label,
  type LateLabel,
  type OutOfOrderLabel,
  RECORD_KINDS,
  type RecordKind,
  SCENARIO_TYPES,
  type ScenarioType,
} from "../contracts/labels.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../contracts/transaction.ts";
import { ConfigError } from "../core/errors.ts";
import { formatMinor } from "../core/schema.ts";
import { checkInt } from "./checks.ts";
import {
  DEFAULT_FAULT_RATES,
  DEFAULT_LATE_MAX_MS,
  type FaultRates,
  Malformer,
  mergeFaultRates,
  OOO_MAX_AGE_MS,
  OOO_MAX_BACK_MS,
  OOO_MIN_BACK_MS,
  ResendRing,
} from "./faults.ts";
import { Population, type PopulationOptions } from "./population.ts";
import { Rng } from "./random.ts";
import {
  DEFAULT_RULE_COOLDOWN_MS,
  DEFAULT_SCENARIO_RATES,
  findQuietAccount,
  HOUR_MS,
  IncidentTracker,
  mergeScenarioRates,
  planIncident,
  type ScenarioRates,
  ScenarioSchedule,
} from "./scenarios.ts";

export { DEFAULT_FAULT_RATES, DEFAULT_LATE_MAX_MS, type FaultRates } from "./faults.ts";
export {
  DEFAULT_RULE_COOLDOWN_MS,
  DEFAULT_SCENARIO_RATES,
  SCENARIO_QUIET_MS,
  type ScenarioRates,
} from "./scenarios.ts";

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
  /**
   * The processor's rule cooldown (event time): an account takes no incident of a rule until
   * this + SCENARIO_QUIET_MS after its previous incident of that rule ended, so every labelled
   * incident can alert. Default 300 000, the default rules' cooldown.
   */
  ruleCooldownMs?: number;
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

const COOLDOWN_TRIES = 16;

const PREFIX = '{"schema_version":1,"transaction_id":"';
const MS_TAIL: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0") + 'Z"}');

function zeroBy<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

export class TrafficGenerator {
  readonly population: Population;

  private readonly rng: Rng;
  private readonly seed: number | string;
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

  private readonly schedule: ScenarioSchedule;
  private readonly incidents: IncidentTracker;
  /** startIncident bound once: the schedule calls it back when incidents are due. */
  private readonly startDue = (type: ScenarioType, now: number): void => {
    this.startIncident(type, now);
  };
  private readonly resends = new ResendRing();
  private readonly malformer: Malformer;

  private lastNormalAccount = -1;
  private lastNormalEventMs = 0;

  private timeSec = Number.NaN;
  private timePrefix = "";
  /** transaction_id of the last build(); a field so build() can return just the value. */
  private txId = "";

  private readonly generated = zeroBy(RECORD_KINDS);
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
    this.schedule = new ScenarioSchedule(
      mergeScenarioRates({ ...DEFAULT_SCENARIO_RATES }, options.scenarioRates ?? {}),
      this.rng,
      this.population.accounts,
    );
    this.incidents = new IncidentTracker(
      this.population,
      checkInt("ruleCooldownMs", options.ruleCooldownMs ?? DEFAULT_RULE_COOLDOWN_MS, 0, 24 * HOUR_MS),
    );
    this.faultRates = mergeFaultRates({ ...DEFAULT_FAULT_RATES }, options.faultRates ?? {});
    this.lateMaxMs = checkInt("lateMaxMs", options.lateMaxMs ?? DEFAULT_LATE_MAX_MS, 1_001, 3_600_000);
    this.maxMessageBytes = checkInt(
      "maxMessageBytes",
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      1_024,
      64 * 1024 * 1024,
    );
    this.malformer = new Malformer(this.maxMessageBytes);
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
    this.schedule.setRates(rates);
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
      scenarioRates: this.schedule.rates,
      faultRates: { ...this.faultRates },
      lateMaxMs: this.lateMaxMs,
      maxMessageBytes: this.maxMessageBytes,
      jitterMs: this.jitterMs,
      minAccountGapMs: this.minAccountGapMs,
    };
  }

  counters(): GeneratorCounters {
    const inc = this.incidents;
    return {
      generated: { ...this.generated },
      scenariosStarted: { ...inc.started },
      scenariosCompleted: { ...inc.completed },
      scenariosSkipped: { ...inc.skipped },
      cooldownOverrides: this.cooldownOverrides,
      activeScenarios: inc.active,
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
    this.schedule.advance(now, this.startDue);
    if (now >= this.incidents.nextReleaseMs) this.incidents.release(now, this.lastEventMs);
    return now;
  }

  private one(now: number): GeneratedRecord {
    if (this.incidents.nextDueMs <= now) return this.scenarioStep(now);
    const r = this.rng.float();
    if (r < this.cutMalformed) {
      if (r < this.cutDuplicate) {
        if (!this.resends.empty) {
          this.generated.duplicate++;
          return this.resends.resend(this.rng);
        }
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

  private malformed(now: number): GeneratedRecord {
    const rng = this.rng;
    const pop = this.population;
    const a = pop.sampleAccount(rng);
    const m = pop.sampleMerchant(rng, a);
    const eventMs = now - rng.below(this.jitterMs + 1);
    const valid = this.build(a, this.pickCard(a), this.pickDevice(a), m, pop.amountMinor(rng, a, m), eventMs);
    const [value, reason, detail] = this.malformer.corrupt(rng, valid, now);
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

  /** Remembers a valid record for later duplicates and wraps it. */
  private valid(
    kind: RecordKind,
    account: number,
    value: string,
    label: Label | null,
    now: number,
  ): GeneratedRecord {
    const key = this.population.accountId(account);
    this.resends.remember(key, value, this.txId, now);
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
    const a = findQuietAccount(this.rng, this.population, this.lastEventMs, this.incidents, type, now);
    if (a < 0) {
      this.incidents.skipped[type]++;
      return null;
    }
    this.lastEventMs[a] = Number.POSITIVE_INFINITY;
    const plan = planIncident(this.rng, this.population, type, a, now);
    return this.incidents.add(type, a, this.pickCard(a), this.pickDevice(a), plan);
  }

  /** The next transaction of the incident due first. */
  private scenarioStep(now: number): GeneratedRecord {
    const inc = this.incidents.earliest();
    const k = inc.next;
    // Normally the planned time; if the caller stalled, compress rather than emit stale (late) times.
    const eventMs = Math.max(inc.due[k]!, now - this.jitterMs, inc.lastEventMs);
    const a = inc.account;
    const value = this.build(a, inc.card, inc.device, inc.merchants[k]!, inc.amounts[k]!, eventMs);
    const label = this.incidents.emitted(inc, this.txId, eventMs);
    return this.valid("scenario", a, value, label, now);
  }
}

/**
 * Fraud scenarios: when incidents start (Poisson arrivals per type), what each one is (a
 * plan of transactions shaped to trip exactly one rule), and the incidents in flight until
 * their accounts go back to normal traffic. Pure and seeded like the rest of the traffic
 * model; the generator interleaves the planned transactions with normal traffic.
 */
import {
  EXPECTED_RULE,
  type RuleId,
  SCENARIO_TYPES,
  type ScenarioLabel,
  type ScenarioType,
} from "../contracts/labels.ts";
import { DEFAULT_COOLDOWN_MS, haversineKm } from "../core/rules.ts";
import { checkRate } from "./checks.ts";
import type { Population } from "./population.ts";
import type { Rng } from "./random.ts";
import { CATEGORY, farCities } from "./world.ts";

/** Per scenario type: fraction of all accounts that start an incident per hour. */
export type ScenarioRates = Record<ScenarioType, number>;

export const DEFAULT_SCENARIO_RATES: Readonly<ScenarioRates> = {
  velocity_burst: 0.005,
  card_testing: 0.005,
  geo_velocity: 0.005,
  merchant_spread: 0.005,
  amount_spike: 0.005,
};

export const HOUR_MS = 3_600_000;

/**
 * An account must be idle this long (event time) before an incident and stays reserved this
 * long after it: the 60 s rule window + 10 s allowed lateness + margin. Normal traffic then
 * never shares a window with an incident, so the label's trigger is exactly where the rule fires.
 */
export const SCENARIO_QUIET_MS = 75_000;
/**
 * After a rule alerts for an account it stays silent there for its cooldown (event time from
 * the alerting transaction; 300 s for every default rule, docs/rules.md), so a second
 * incident of the same rule on that account inside it is labelled but can never alert. An
 * account therefore takes no incident of a rule until this + SCENARIO_QUIET_MS after its
 * previous incident of that rule ended (IncidentTracker explains the margin). Override it
 * (GeneratorOptions.ruleCooldownMs) to match a rules file with longer cooldowns.
 */
export const DEFAULT_RULE_COOLDOWN_MS = DEFAULT_COOLDOWN_MS;
/**
 * Incidents use accounts whose mean amount is at most 150.00 (about 98% of them), and an
 * amount_spike keeps its window total under SCENARIO_WINDOW_SUM_MAX_MINOR: then no incident
 * also reaches the default amount_sum rule (10 000.00 in 60 s), and each label maps to one rule.
 */
const SCENARIO_MAX_MEAN_MINOR = 15_000;
const SCENARIO_WINDOW_SUM_MAX_MINOR = 950_000;
/** Geo incidents hold the account until the trip home is below the rule's 900 km/h. */
const GEO_RELEASE_KMH = 800;
const SCENARIO_ACCOUNT_TRIES = 32;
/** A scheduler that falls further behind than this drops the backlog rather than bursting it. */
const MAX_SCHEDULE_LAG_MS = 60_000;

export function mergeScenarioRates(base: ScenarioRates, update: Partial<ScenarioRates>): ScenarioRates {
  const out = { ...base };
  for (const t of SCENARIO_TYPES) {
    const v = update[t];
    if (v !== undefined) out[t] = checkRate(`scenarioRates.${t}`, v, 100);
  }
  return out;
}

// ----------------------------------------------------------------------------- starts

/** When the next incident of each type starts: Poisson arrivals at rate × accounts per hour. */
export class ScenarioSchedule {
  #rates: ScenarioRates;
  readonly #rng: Rng;
  readonly #accounts: number;
  readonly #nextStartMs = new Float64Array(SCENARIO_TYPES.length);
  #nextStartMin = Number.POSITIVE_INFINITY;
  #scheduled = false;

  constructor(rates: ScenarioRates, rng: Rng, accounts: number) {
    this.#rates = rates;
    this.#rng = rng;
    this.#accounts = accounts;
  }

  get rates(): ScenarioRates {
    return { ...this.#rates };
  }

  /** Takes effect at the next advance: every type's next start is redrawn from then. */
  setRates(update: Partial<ScenarioRates>): void {
    this.#rates = mergeScenarioRates(this.#rates, update);
    this.#scheduled = false;
  }

  /** Calls start(type, now) for every incident due by `now`, type by type, oldest first. */
  advance(now: number, start: (type: ScenarioType, now: number) => void): void {
    const next = this.#nextStartMs;
    if (!this.#scheduled) {
      for (let t = 0; t < SCENARIO_TYPES.length; t++) next[t] = now + this.#interarrival(t);
      this.#nextStartMin = Math.min(...next);
      this.#scheduled = true;
    }
    if (now < this.#nextStartMin) return;
    for (let t = 0; t < SCENARIO_TYPES.length; t++) {
      if (next[t]! < now - MAX_SCHEDULE_LAG_MS) next[t] = now;
      while (next[t]! <= now) {
        start(SCENARIO_TYPES[t]!, now);
        next[t] = next[t]! + this.#interarrival(t);
      }
    }
    this.#nextStartMin = Math.min(...next);
  }

  #interarrival(t: number): number {
    const perHour = this.#rates[SCENARIO_TYPES[t]!] * this.#accounts;
    return perHour > 0 ? this.#rng.exponential(HOUR_MS / perHour) : Number.POSITIVE_INFINITY;
  }
}

/**
 * An account for an incident of `type`: quiet for SCENARIO_QUIET_MS, with a modest mean
 * amount, and out of the cooldown of its previous incident of the same rule
 * (IncidentTracker.ruleFree). Uniform over accounts, not by activity: the rate is "a
 * fraction of accounts". -1 when a few draws find none.
 */
export function findQuietAccount(
  rng: Rng,
  pop: Population,
  lastEventMs: Float64Array,
  incidents: IncidentTracker,
  type: ScenarioType,
  now: number,
): number {
  for (let t = 0; t < SCENARIO_ACCOUNT_TRIES; t++) {
    const c = rng.below(pop.accounts);
    if (
      lastEventMs[c]! <= now - SCENARIO_QUIET_MS &&
      pop.meanAmountMinor(c) <= SCENARIO_MAX_MEAN_MINOR &&
      incidents.ruleFree(c, type, now)
    ) {
      return c;
    }
  }
  return -1;
}

// ----------------------------------------------------------------------------- plans

/** The transactions of one incident, planned at its start. */
export interface Plan {
  /** Planned emission times (epoch ms), one per transaction. */
  readonly due: number[];
  readonly merchants: number[];
  readonly amounts: number[];
  /** Index of the transaction on which the expected rule fires. */
  readonly trigger: number;
  /** How long the account stays reserved after the last transaction. */
  readonly holdMs: number;
}

/** `count` times from start to start + span, both ends included, sorted. */
function spread(rng: Rng, count: number, start: number, span: number): number[] {
  const t = [start];
  for (let i = 1; i < count - 1; i++) t.push(start + rng.below(span));
  t.push(start + span);
  return t.sort((a, b) => a - b);
}

/** An incident of `type` on account `a` starting at `now`, shaped to trip its rule and no other. */
export function planIncident(rng: Rng, pop: Population, type: ScenarioType, a: number, now: number): Plan {
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

// ----------------------------------------------------------------------------- in flight

export interface Incident extends Plan {
  readonly id: string;
  readonly type: ScenarioType;
  readonly account: number;
  readonly card: number;
  readonly device: number;
  readonly txIds: string[];
  /** Index of the next transaction to emit. */
  next: number;
  startedAt: number;
  lastEventMs: number;
  releaseAt: number;
}

function zeroBy<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** The rules incidents target, each with a small index: (account, rule) pairs become one number. */
const RULES: readonly RuleId[] = [...new Set(SCENARIO_TYPES.map((t) => EXPECTED_RULE[t]))];
const RULE_INDEX: Readonly<Record<ScenarioType, number>> = Object.fromEntries(
  SCENARIO_TYPES.map((t) => [t, RULES.indexOf(EXPECTED_RULE[t])]),
) as Record<ScenarioType, number>;

/**
 * Incidents emitting now, and finished ones whose account is still held out of normal
 * traffic. The earliest due transaction and the earliest release are kept as plain numbers:
 * the generator compares them with the clock on every record.
 */
export class IncidentTracker {
  nextDueMs = Number.POSITIVE_INFINITY;
  nextReleaseMs = Number.POSITIVE_INFINITY;
  readonly started = zeroBy(SCENARIO_TYPES);
  readonly completed = zeroBy(SCENARIO_TYPES);
  /** Incidents not started because no quiet account was found in a few draws. */
  readonly skipped = zeroBy(SCENARIO_TYPES);
  readonly #pop: Population;
  readonly #running: Incident[] = [];
  readonly #cooling: Incident[] = [];
  #seq = 0;
  /**
   * How long after an incident ends its account takes no incident of the same rule: the
   * rule's cooldown plus SCENARIO_QUIET_MS. The cooldown runs from the transaction the rule
   * alerted on, which is the labelled trigger, at or before the incident's end; the next
   * incident's trigger is at or after its start. So ending-to-start spacing puts the two
   * triggers a full cooldown apart, and the margin covers the one way the alert can come
   * later than the trigger: a trigger that reached the processor behind the watermark is
   * reported by the account's next on-time transaction (docs/rules.md, "Late transactions"),
   * which can only complete the pattern while the incident is in its window, i.e. within the
   * window + allowed lateness (+ 5 s) that SCENARIO_QUIET_MS already stands for.
   */
  readonly #ruleGapMs: number;
  /**
   * (account × rules + rule) → event time before which that account takes no incident of
   * that rule. Only incidents of the last ruleGapMs are here (a few hundred at the default
   * rates); insertion order is end order, so expired entries are swept from the front.
   */
  readonly #ruleBusyUntil = new Map<number, number>();

  constructor(pop: Population, ruleCooldownMs: number = DEFAULT_RULE_COOLDOWN_MS) {
    this.#pop = pop;
    this.#ruleGapMs = ruleCooldownMs + SCENARIO_QUIET_MS;
  }

  /** Whether `account` is past the cooldown (+ margin) of its last incident of `type`'s rule at `now`. */
  ruleFree(account: number, type: ScenarioType, now: number): boolean {
    const until = this.#ruleBusyUntil.get(account * RULES.length + RULE_INDEX[type]);
    return until === undefined || until <= now;
  }

  get active(): number {
    return this.#running.length + this.#cooling.length;
  }

  /** Registers a planned incident; returns its scenario_id. */
  add(type: ScenarioType, account: number, card: number, device: number, plan: Plan): string {
    const id = `scn_${this.#pop.idTag}_${String(++this.#seq).padStart(7, "0")}`;
    this.#running.push({
      id,
      type,
      account,
      card,
      device,
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

  /** The running incident whose next transaction is due first. */
  earliest(): Incident {
    let inc = this.#running[0]!;
    for (const x of this.#running) if (x.due[x.next]! < inc.due[inc.next]!) inc = x;
    return inc;
  }

  /**
   * Records that the incident's next transaction went out at eventMs. After its last one the
   * incident cools (its account stays held for holdMs) and its label is returned; null before.
   */
  emitted(inc: Incident, txId: string, eventMs: number): ScenarioLabel | null {
    const k = inc.next;
    inc.txIds.push(txId);
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
        account_id: this.#pop.accountId(inc.account),
        transaction_ids: inc.txIds,
        trigger_transaction_id: inc.txIds[inc.trigger]!,
        started_at: inc.startedAt,
        completed_at: eventMs,
      };
      this.#running.splice(this.#running.indexOf(inc), 1);
      this.#ruleBusy(inc.account, inc.type, eventMs);
      inc.releaseAt = eventMs + inc.holdMs;
      this.#cooling.push(inc);
      if (inc.releaseAt < this.nextReleaseMs) this.nextReleaseMs = inc.releaseAt;
      this.completed[inc.type]++;
    }
    let due = Number.POSITIVE_INFINITY;
    for (const x of this.#running) if (x.due[x.next]! < due) due = x.due[x.next]!;
    this.nextDueMs = due;
    return label;
  }

  /** An incident of `type` on `account` ended at endedMs: its rule is busy there for ruleGapMs. */
  #ruleBusy(account: number, type: ScenarioType, endedMs: number): void {
    // Sweep what expired by now from the oldest end; stop at the first still running.
    for (const [k, until] of this.#ruleBusyUntil) {
      if (until > endedMs) break;
      this.#ruleBusyUntil.delete(k);
    }
    const key = account * RULES.length + RULE_INDEX[type];
    // Deleted first so a renewed entry moves to the back, keeping the map in end order.
    this.#ruleBusyUntil.delete(key);
    this.#ruleBusyUntil.set(key, endedMs + this.#ruleGapMs);
  }

  /** Hands the accounts of incidents that cooled down by `now` back to normal traffic. */
  release(now: number, lastEventMs: Float64Array): void {
    let next = Number.POSITIVE_INFINITY;
    let w = 0;
    for (const inc of this.#cooling) {
      if (inc.releaseAt <= now) {
        lastEventMs[inc.account] = inc.lastEventMs;
      } else {
        this.#cooling[w++] = inc;
        if (inc.releaseAt < next) next = inc.releaseAt;
      }
    }
    this.#cooling.length = w;
    this.nextReleaseMs = next;
  }
}

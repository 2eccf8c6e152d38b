/**
 * Backtest: what one or more rule sets would have raised on recorded traffic, and how that
 * scores against the collector's labels. Pure: the caller reads the log (src/app/backtest.ts)
 * and hands records over in log order per partition.
 *
 * Every record gets the decision the processor gave it live (processor.ts, #compute), built
 * from the same core pieces: decodeTransaction judged at the record's append time (the
 * processor judges at min(now, append time), and a record is never processed before it was
 * appended), the window's dedup (a resend whose original the account's window holds under
 * another offset is dropped), one WindowStore per partition (per-partition watermark, so late
 * records are late exactly when they were live), and evaluate(). Each rule set gets its own
 * stores: cooldowns live in the account state keyed by rule id, so two rule sets sharing an
 * id must not share state. Window, dedup and lateness do not depend on the rules, so the
 * record counts are the same for every rule set.
 *
 * The one thing a replay cannot reproduce is state from before the first record: windows,
 * amount history and cooldowns start empty (docs/rules.md, "Backtest").
 */
import type { ScenarioLabel } from "../contracts/labels.ts";
import { NOT_RECORDED, transactionIdHash } from "./account-state.ts";
import { ConfigError } from "./errors.ts";
import { evaluate, type Rule, type RuleSet } from "./rules.ts";
import { type DecodeOptions, decodeOptionsFrom, decodeTransaction } from "./schema.ts";
import { WindowStore, type WindowStoreOptions } from "./window.ts";

/** Default and upper limit of records one backtest replays. */
export const DEFAULT_BACKTEST_MAX_RECORDS = 1_000_000;
export const MAX_BACKTEST_RECORDS = 5_000_000;
/** Records replayed between two yields to the event loop. */
export const BACKTEST_CHUNK = 5_000;

/** A record as the log recorded it. */
export interface RecordedRecord {
  partition: number;
  offset: bigint | number;
  /** Append time (ms since epoch). */
  timestamp: number;
  value: Uint8Array | string;
}

/** What a backtest keeps of an alert: enough to count and score it, no PII. */
export interface BacktestAlert {
  ruleId: string;
  accountId: string;
  transactionId: string;
}

export interface BacktestCounts {
  /** Records offered and replayed (below the cap). */
  records: number;
  /** Records the processor would dead-letter (failed decode/validation). */
  invalid: number;
  /** Resends dropped by the window's dedup. */
  duplicates: number;
  /** Valid records behind their partition's watermark: never alert. */
  late: number;
  /** Records offered beyond maxRecords, not replayed. */
  skipped: number;
  firstTimestamp: number | null;
  lastTimestamp: number | null;
}

export interface BacktestOptions {
  /** The processor's window store options (windowMs, allowedLatenessMs...). */
  window?: WindowStoreOptions;
  /** The processor's decoder limits. */
  decode?: Pick<DecodeOptions, "maxMessageBytes" | "maxAmountMinor" | "maxFutureSkewMs" | "maxAgeMs">;
  /** Records replayed at most; more are counted as skipped. Default DEFAULT_BACKTEST_MAX_RECORDS. */
  maxRecords?: number;
}

/** Replays records through several rule sets at once. */
export class Backtest {
  readonly ruleSets: readonly RuleSet[];
  readonly maxRecords: number;
  readonly counts: BacktestCounts = {
    records: 0,
    invalid: 0,
    duplicates: 0,
    late: 0,
    skipped: 0,
    firstTimestamp: null,
    lastTimestamp: null,
  };
  /** Per rule set, the alerts raised, in replay order. */
  readonly alerts: BacktestAlert[][];
  /** transaction_ids of the valid, non-duplicate records replayed: what an incident must lie within. */
  readonly replayed = new Set<string>();
  readonly #decode: ReturnType<typeof decodeOptionsFrom>;
  readonly #window: WindowStoreOptions;
  /** Per partition, the last offset replayed. */
  readonly #applied = new Map<number, number>();
  /** Per rule set, per partition. */
  readonly #stores: Map<number, WindowStore>[];

  constructor(ruleSets: readonly RuleSet[], options: BacktestOptions = {}) {
    if (ruleSets.length === 0) throw new ConfigError("backtest", "needs at least one rule set");
    const max = options.maxRecords ?? DEFAULT_BACKTEST_MAX_RECORDS;
    if (!Number.isSafeInteger(max) || max < 1 || max > MAX_BACKTEST_RECORDS) {
      throw new ConfigError("backtest.maxRecords", `must be an integer in 1..${MAX_BACKTEST_RECORDS}`);
    }
    this.ruleSets = ruleSets;
    this.maxRecords = max;
    this.#decode = decodeOptionsFrom(options.decode ?? {});
    // The processor's stores refuse events beyond the decoder's future skew the same way.
    this.#window = { maxFutureSkewMs: this.#decode.maxFutureSkewMs, ...options.window };
    this.alerts = ruleSets.map(() => []);
    this.#stores = ruleSets.map(() => new Map());
  }

  get truncated(): boolean {
    return this.counts.skipped > 0;
  }

  #store(set: number, partition: number): WindowStore {
    const stores = this.#stores[set]!;
    let s = stores.get(partition);
    if (s === undefined) {
      s = new WindowStore(this.#window);
      stores.set(partition, s);
    }
    return s;
  }

  /** Replays one record; false (and counted as skipped) once maxRecords were replayed. */
  push(r: RecordedRecord): boolean {
    const c = this.counts;
    // A record delivered again (a reader's refetch) is applied once, as the processor's
    // AppliedOffsets does: applied twice it would count twice in its window.
    const offset = Number(r.offset);
    if (offset <= (this.#applied.get(r.partition) ?? -1)) return true;
    this.#applied.set(r.partition, offset);
    if (c.records >= this.maxRecords) {
      c.skipped++;
      return false;
    }
    c.records++;
    const at = r.timestamp;
    if (c.firstTimestamp === null || at < c.firstTimestamp) c.firstTimestamp = at;
    if (c.lastTimestamp === null || at > c.lastTimestamp) c.lastTimestamp = at;
    // A recorded run has no separate processing time: the record is judged when it was appended.
    const res = decodeTransaction(r.value, this.#decode, at);
    if (!res.ok) {
      c.invalid++;
      return true;
    }
    const tx = res.tx;
    const idHash = transactionIdHash(tx.transaction_id);
    for (let k = 0; k < this.ruleSets.length; k++) {
      const store = this.#store(k, r.partition);
      const recorded = store.recordedOffset(tx, idHash);
      if (recorded !== NOT_RECORDED && recorded !== offset) {
        // Every rule set's store saw the same records: the decision is the same for all.
        if (k === 0) c.duplicates++;
        continue;
      }
      const state = store.add(tx, at, offset, idHash);
      if (k === 0) {
        if (state.curLate) c.late++;
        this.replayed.add(tx.transaction_id);
      }
      const raised = evaluate(this.ruleSets[k]!, state, tx, at);
      const out = this.alerts[k]!;
      for (let i = 0; i < raised.length; i++) {
        const a = raised[i]!;
        out.push({ ruleId: a.ruleId, accountId: a.accountId, transactionId: a.transactionId });
      }
    }
    return true;
  }
}

/** A yield to the event loop between chunks, so a backtest never holds a server's loop for long. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Replays `records` in chunks of `chunk`, awaiting `pause` between chunks: a long replay
 * shares the process with whatever else it serves (the dashboard, `paystream up`).
 */
export async function replayChunked(
  bt: Backtest,
  records: Iterable<RecordedRecord>,
  chunk = BACKTEST_CHUNK,
  pause: () => Promise<void> = yieldToEventLoop,
): Promise<void> {
  let n = 0;
  for (const r of records) {
    bt.push(r);
    if (++n % chunk === 0) await pause();
  }
}

// ---------------------------------------------------------------------------------------
// Scoring

export interface RuleScore {
  ruleId: string;
  ruleType: Rule["type"];
  shadow: boolean;
  alerts: number;
  accounts: number;
  /** Labelled incidents of the replayed span expecting this rule. */
  incidents: number;
  /** Of those, the incidents this rule alerted on (its account, one of its transactions). */
  detected: number;
  /** detected / incidents; null without incidents for this rule. */
  recall: number | null;
  /** Alerts on a labelled incident's transaction / alerts; null without labels or without alerts. */
  precision: number | null;
}

export interface RuleSetScore {
  totalAlerts: number;
  accounts: number;
  /** Incidents detected by a rule expecting them / incidents expecting a rule of the set. */
  recall: number | null;
  /** Alerts on a labelled incident's transaction / all alerts. */
  precision: number | null;
  rules: RuleScore[];
}

/** One payments.labels value as a scenario label, or undefined (other label kinds, bad JSON). */
export function parseScenarioLabelJson(text: string): ScenarioLabel | undefined {
  let l: Partial<ScenarioLabel> | null;
  try {
    l = JSON.parse(text) as Partial<ScenarioLabel> | null;
  } catch {
    return undefined;
  }
  if (l === null || typeof l !== "object" || l.type !== "scenario") return undefined;
  const str = (v: unknown) => typeof v === "string" && v !== "";
  if (!str(l.scenario_id) || !str(l.expected_rule) || !str(l.account_id)) return undefined;
  if (!Array.isArray(l.transaction_ids) || !l.transaction_ids.every(str)) return undefined;
  return l as ScenarioLabel;
}

/** Incidents whose every transaction was replayed: the ones the span can be scored on. */
export function incidentsWithin(
  labels: Iterable<ScenarioLabel>,
  replayed: ReadonlySet<string>,
): ScenarioLabel[] {
  const seen = new Set<string>();
  const out: ScenarioLabel[] = [];
  for (const l of labels) {
    if (seen.has(l.scenario_id)) continue;
    seen.add(l.scenario_id);
    if (l.transaction_ids.length > 0 && l.transaction_ids.every((id) => replayed.has(id))) out.push(l);
  }
  return out;
}

/**
 * An incident expects a rule when the rule has its expected rule id, or is of the type that
 * id names (the default rules are named after their types): a renamed or second rule of the
 * same type, a shadow copy for instance, is scored on the same incidents.
 */
export function expects(incident: ScenarioLabel, rule: Rule): boolean {
  return incident.expected_rule === rule.id || incident.expected_rule === rule.type;
}

function ratio(n: number, d: number): number | null {
  return d === 0 ? null : n / d;
}

/**
 * Scores one rule set's alerts. `incidents` are the labelled incidents of the span
 * (incidentsWithin); `labelled` false means no labels were found, and every precision is
 * null rather than 0 (nothing says the alerts were wrong).
 */
export function scoreRuleSet(
  ruleSet: RuleSet,
  alerts: readonly BacktestAlert[],
  incidents: readonly ScenarioLabel[],
  labelled: boolean,
): RuleSetScore {
  // account \0 transaction -> the incidents holding that transaction
  const byTx = new Map<string, ScenarioLabel[]>();
  for (const inc of incidents) {
    for (const id of inc.transaction_ids) {
      const k = `${inc.account_id}\u0000${id}`;
      const list = byTx.get(k);
      if (list) list.push(inc);
      else byTx.set(k, [inc]);
    }
  }
  const rules = ruleSet.compiled.map((c) => c.rule);
  const perRule = new Map<
    string,
    { accounts: Set<string>; alerts: number; onIncident: number; detected: Set<string> }
  >();
  for (const r of rules)
    perRule.set(r.id, { accounts: new Set(), alerts: 0, onIncident: 0, detected: new Set() });
  const accounts = new Set<string>();
  let onIncident = 0;
  const detectedAny = new Set<string>();
  const ruleById = new Map(rules.map((r) => [r.id, r]));
  for (const a of alerts) {
    accounts.add(a.accountId);
    const p = perRule.get(a.ruleId);
    const rule = ruleById.get(a.ruleId);
    if (p === undefined || rule === undefined) continue;
    p.alerts++;
    p.accounts.add(a.accountId);
    const hit = byTx.get(`${a.accountId}\u0000${a.transactionId}`);
    if (hit === undefined) continue;
    p.onIncident++;
    onIncident++;
    for (const inc of hit) {
      if (!expects(inc, rule)) continue;
      p.detected.add(inc.scenario_id);
      detectedAny.add(inc.scenario_id);
    }
  }
  const scores: RuleScore[] = rules.map((rule) => {
    const p = perRule.get(rule.id)!;
    const expected = incidents.filter((inc) => expects(inc, rule)).length;
    return {
      ruleId: rule.id,
      ruleType: rule.type,
      shadow: rule.shadow,
      alerts: p.alerts,
      accounts: p.accounts.size,
      incidents: expected,
      detected: p.detected.size,
      recall: labelled ? ratio(p.detected.size, expected) : null,
      precision: labelled ? ratio(p.onIncident, p.alerts) : null,
    };
  });
  const expectedAny = incidents.filter((inc) => rules.some((r) => expects(inc, r))).length;
  return {
    totalAlerts: alerts.length,
    accounts: accounts.size,
    recall: labelled ? ratio(detectedAny.size, expectedAny) : null,
    precision: labelled ? ratio(onIncident, alerts.length) : null,
    rules: scores,
  };
}

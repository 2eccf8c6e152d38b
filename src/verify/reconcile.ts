/**
 * `paystream verify`, the pure half: tallies of what was read and the comparisons between
 * them, ending in one report (a table of checks and a verdict). No I/O here: sources.ts reads
 * Kafka, Redis and the warehouse and feeds these structures, so every rule of the
 * reconciliation is unit-tested without servers.
 *
 * The ground truth is the input topic itself (what was produced):
 *   U  unique valid transaction_ids        → each must be in the warehouse exactly once
 *   D  resends of an id already seen       → must not add a row (covered by "exactly once")
 *   M  invalid records, by (partition, offset) and reason → each must be in the DLQ
 * and, from the labels topic, the scenario incidents of this run (their transactions are in U)
 *   → exactly one alert per (rule, account, incident) on the alerts topic, in Redis and in the
 *     warehouse.
 */
import type { Label, ScenarioLabel } from "../contracts/labels.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../contracts/transaction.ts";
import { alertId } from "../core/alert.ts";
import { decodeTransaction } from "../core/schema.ts";

/** Rules whose labelled incidents are checked by default: every scenario the collector injects. */
export const DEFAULT_CHECKED_RULES: readonly string[] = [
  "velocity_count",
  "card_testing",
  "geo_velocity",
  "merchant_spread",
  "amount_spike",
];

export const DEFAULT_MAX_EXAMPLES = 20;

/** OK / FAIL: a check with an expectation. INFO: a figure. WARN: the check is weaker than it looks. */
export type Status = "OK" | "FAIL" | "WARN" | "INFO";

export interface CheckRow {
  /** input | warehouse | dlq | labels | alerts | pipeline */
  section: string;
  check: string;
  /** null for figures that have no expectation (INFO). */
  expected: number | null;
  actual: number;
  status: Status;
  note?: string;
}

/** The offsets of one partition as verify saw them: [start, end) was read. */
export interface PartitionRange {
  partition: number;
  /** Log start offset when the read began (records below it were deleted by retention). */
  start: bigint;
  /** End offset listed before reading: every record below it was read. */
  end: bigint;
}

function bump<K>(m: Map<K, number>, k: K, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

function sourceKey(partition: number | string, offset: bigint | string): string {
  return `${partition}:${offset}`;
}

function pushExample<T>(list: T[], item: T, max: number): void {
  if (list.length < max) list.push(item);
}

// ----------------------------------------------------------------------------- input (U, D, M)

export class InputTally {
  readonly maxMessageBytes: number;
  /** Records read (valid + invalid). */
  records = 0;
  /** U: unique valid transaction_ids, in first-seen order. */
  readonly unique = new Set<string>();
  /** D: extra copies per resent transaction_id. */
  readonly resends = new Map<string, number>();
  /** Records that repeated an id already seen (sum of `resends`). */
  resendRecords = 0;
  /** M: invalid records, "partition:offset" → reason. */
  readonly invalid = new Map<string, string>();
  readonly invalidByReason = new Map<string, number>();
  /** What was read, per partition (set by the reader). */
  ranges: PartitionRange[] = [];

  constructor(maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Decodes one input record exactly as the processor does and files it under U, D or M. */
  /** Returns the transaction_id when it joined U (first sighting), else undefined. */
  add(partition: number, offset: bigint, value: Uint8Array): string | undefined {
    const res = decodeTransaction(value, this.maxMessageBytes);
    if (res.ok) return this.addValid(res.tx.transaction_id) ? res.tx.transaction_id : undefined;
    this.addInvalid(partition, offset, res.reason);
    return undefined;
  }

  /** True when the id is new to U; false for a resend. */
  addValid(transactionId: string): boolean {
    this.records++;
    const before = this.unique.size;
    this.unique.add(transactionId);
    if (this.unique.size > before) return true;
    bump(this.resends, transactionId);
    this.resendRecords++;
    return false;
  }

  addInvalid(partition: number, offset: bigint, reason: string): void {
    this.records++;
    this.invalid.set(sourceKey(partition, offset), reason);
    bump(this.invalidByReason, reason);
  }

  /** Where in this read (partition, offset) falls: before the log start, inside, or after the end. */
  locate(partition: number, offset: bigint): "inside" | "before" | "after" | "unknown" {
    const r = this.ranges.find((x) => x.partition === partition);
    if (!r) return "unknown";
    if (offset < r.start) return "before";
    if (offset >= r.end) return "after";
    return "inside";
  }
}

// ----------------------------------------------------------------------------- warehouse rows

export interface RowCountResult {
  expected: number;
  present: number;
  missing: number;
  /** ids not stored because the warehouse refused them; dead-lettered (see settle). */
  refused: number;
  /** ids stored more than once (only possible where the key is not enforced). */
  duplicated: number;
  /** rows beyond the first, summed over duplicated ids. */
  extraRows: number;
  missingExamples: string[];
  duplicateExamples: { id: string; rows: number }[];
}

/** Folds per-chunk row counts (from Warehouse.countByKey) into present / missing / duplicated. */
export class RowCountTally {
  readonly #max: number;
  readonly result: RowCountResult = {
    expected: 0,
    present: 0,
    missing: 0,
    refused: 0,
    duplicated: 0,
    extraRows: 0,
    missingExamples: [],
    duplicateExamples: [],
  };

  constructor(maxExamples: number = DEFAULT_MAX_EXAMPLES) {
    this.#max = maxExamples;
  }

  /** Every missing id (a clean run has none), so ones the warehouse refused can be excused. */
  readonly #missing: string[] = [];

  addChunk(ids: readonly string[], counts: ReadonlyMap<string, number>): void {
    const r = this.result;
    for (const id of ids) {
      r.expected++;
      const n = counts.get(id) ?? 0;
      if (n === 0) {
        r.missing++;
        this.#missing.push(id);
        pushExample(r.missingExamples, id, this.#max);
        continue;
      }
      r.present++;
      if (n > 1) {
        r.duplicated++;
        r.extraRows += n - 1;
        pushExample(r.duplicateExamples, { id, rows: n }, this.#max);
      }
    }
  }

  /**
   * Settles the missing ids: those the processor dead-lettered because the warehouse refused
   * them are not lost (they are in the DLQ, with the reason, for an operator to act on) and
   * are counted apart; the rest are missing. Call once, after the last chunk.
   */
  settle(refusedByWarehouse: ReadonlySet<string>): void {
    if (refusedByWarehouse.size === 0) return;
    const r = this.result;
    r.missingExamples = [];
    for (const id of this.#missing) {
      if (refusedByWarehouse.has(id)) {
        r.missing--;
        r.refused++;
      } else pushExample(r.missingExamples, id, this.#max);
    }
  }
}

// ----------------------------------------------------------------------------- DLQ

interface DlqEntry {
  reasons: Set<string>;
  copies: number;
}

/** DLQ records whose source_topic is the input topic, by (source_partition, source_offset). */
export class DlqTally {
  readonly inputTopic: string;
  records = 0;
  /** DLQ records of other input topics (other runs or pipelines): ignored. */
  otherTopics = 0;
  /** Records of the input topic without usable source_partition / source_offset headers. */
  unattributed = 0;
  readonly entries = new Map<string, DlqEntry>();
  /** transaction_ids of valid rows the warehouse refused for good (reason warehouse_rejected). */
  readonly refusedTransactions = new Set<string>();
  /** alert_ids of alerts the warehouse refused for good. */
  readonly refusedAlerts = new Set<string>();

  constructor(inputTopic: string) {
    this.inputTopic = inputTopic;
  }

  /** One DLQ record's headers (as the processor writes them, see docs/processor.md). */
  add(headers: ReadonlyMap<string, string>): void {
    this.records++;
    if (headers.get("source_topic") !== this.inputTopic) {
      this.otherTopics++;
      return;
    }
    const p = headers.get("source_partition");
    const o = headers.get("source_offset");
    if (p === undefined || o === undefined || !/^\d+$/.test(p) || !/^\d+$/.test(o)) {
      this.unattributed++;
      return;
    }
    const reason = headers.get("reason") ?? "";
    if (reason === "warehouse_rejected") {
      // A valid record the warehouse would not take: judged with the rows, not with M.
      const tx = headers.get("transaction_id");
      const alert = headers.get("alert_id");
      if (tx) this.refusedTransactions.add(tx);
      else if (alert) this.refusedAlerts.add(alert);
      else this.unattributed++;
      return;
    }
    const key = sourceKey(p, BigInt(o));
    const e = this.entries.get(key);
    if (e) {
      e.copies++;
      e.reasons.add(reason);
    } else {
      this.entries.set(key, { reasons: new Set([reason]), copies: 1 });
    }
  }
}

export interface DlqResult {
  /** Per reason: invalid input records (M), and how many of them are in the DLQ with that reason. */
  byReason: { reason: string; expected: number; found: number }[];
  /** Invalid input records with no DLQ entry at all. */
  missing: number;
  /** Invalid input records whose DLQ entry gives another reason. */
  wrongReason: number;
  /** DLQ entries naming an input record that is valid (or not a record verify read). */
  unexpected: number;
  /** DLQ records beyond the first for the same source record (a replay re-sent them). */
  resends: number;
  /** DLQ entries for offsets past the end snapshot (produced after verify listed the offsets). */
  afterSnapshot: number;
  /** DLQ entries for offsets below the log start (their input record was deleted by retention). */
  beforeStart: number;
  otherTopics: number;
  unattributed: number;
  missingExamples: string[];
  wrongReasonExamples: string[];
  unexpectedExamples: string[];
}

export function reconcileDlq(
  input: InputTally,
  dlq: DlqTally,
  maxExamples = DEFAULT_MAX_EXAMPLES,
): DlqResult {
  const found = new Map<string, number>();
  const r: DlqResult = {
    byReason: [],
    missing: 0,
    wrongReason: 0,
    unexpected: 0,
    resends: 0,
    afterSnapshot: 0,
    beforeStart: 0,
    otherTopics: dlq.otherTopics,
    unattributed: dlq.unattributed,
    missingExamples: [],
    wrongReasonExamples: [],
    unexpectedExamples: [],
  };
  for (const [key, reason] of input.invalid) {
    const e = dlq.entries.get(key);
    if (!e) {
      r.missing++;
      pushExample(r.missingExamples, `${key} ${reason}`, maxExamples);
    } else if (e.reasons.has(reason)) {
      bump(found, reason);
    } else {
      r.wrongReason++;
      pushExample(
        r.wrongReasonExamples,
        `${key} expected ${reason}, DLQ says ${[...e.reasons].join("|")}`,
        maxExamples,
      );
    }
  }
  for (const [key, e] of dlq.entries) {
    r.resends += e.copies - 1;
    if (input.invalid.has(key)) continue;
    const [p, o] = key.split(":") as [string, string];
    const where = input.locate(Number(p), BigInt(o));
    if (where === "after") r.afterSnapshot++;
    else if (where === "before") r.beforeStart++;
    else {
      r.unexpected++;
      pushExample(r.unexpectedExamples, `${key} ${[...e.reasons].join("|")}`, maxExamples);
    }
  }
  const reasons = new Set([...input.invalidByReason.keys(), ...found.keys()]);
  for (const reason of [...reasons].sort()) {
    r.byReason.push({
      reason,
      expected: input.invalidByReason.get(reason) ?? 0,
      found: found.get(reason) ?? 0,
    });
  }
  return r;
}

// ----------------------------------------------------------------------------- labels and alerts

/** The fields of an alert record (payments.alerts JSON, see alertToJson) that verify uses. */
export interface AlertRecord {
  alert_id: string;
  rule_id: string;
  account_id: string;
  transaction_id: string;
}

function isString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0;
}

/** Parses one alerts-topic value; undefined for anything that is not an alert JSON. */
export function parseAlertRecord(text: string): AlertRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const a = v as Partial<AlertRecord> | null;
  if (!a || !isString(a.alert_id) || !isString(a.rule_id) || !isString(a.account_id)) return undefined;
  if (!isString(a.transaction_id)) return undefined;
  return {
    alert_id: a.alert_id,
    rule_id: a.rule_id,
    account_id: a.account_id,
    transaction_id: a.transaction_id,
  };
}

/** Parses one labels-topic value; only scenario labels matter to verify (others: undefined). */
export function parseScenarioLabel(text: string): ScenarioLabel | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const l = v as Partial<Label> | null;
  if (l?.type !== "scenario") return undefined;
  const s = l as Partial<ScenarioLabel>;
  if (!isString(s.scenario_id) || !isString(s.expected_rule) || !isString(s.account_id)) return undefined;
  if (!Array.isArray(s.transaction_ids) || !s.transaction_ids.every(isString)) return undefined;
  return s as ScenarioLabel;
}

export interface Incident {
  label: ScenarioLabel;
  /** The alert ids the expected rule would give on each of the incident's transactions. */
  candidateAlertIds: string[];
}

export interface IncidentSelection {
  /** Incidents of this run whose rule is checked: every transaction of theirs is in U. */
  incidents: Incident[];
  /** Incidents of this run with only some of their transactions in U (WARN, not checked). */
  partial: ScenarioLabel[];
  /** Incidents of this run whose expected rule is not in the checked set. */
  uncheckedRule: number;
  /** Scenario labels with none of their transactions in U: another run's. */
  foreign: number;
  /** Scenario labels read more than once (same scenario_id). */
  labelResends: number;
}

/** Picks the scenario labels that belong to this input (their transactions are in U). */
export function selectIncidents(
  labels: Iterable<ScenarioLabel>,
  unique: ReadonlySet<string>,
  rules: ReadonlySet<string>,
): IncidentSelection {
  const seen = new Set<string>();
  const out: IncidentSelection = {
    incidents: [],
    partial: [],
    uncheckedRule: 0,
    foreign: 0,
    labelResends: 0,
  };
  for (const l of labels) {
    if (seen.has(l.scenario_id)) {
      out.labelResends++;
      continue;
    }
    seen.add(l.scenario_id);
    let inU = 0;
    for (const id of l.transaction_ids) if (unique.has(id)) inU++;
    if (inU === 0) {
      out.foreign++;
      continue;
    }
    if (!rules.has(l.expected_rule)) {
      out.uncheckedRule++;
      continue;
    }
    if (inU < l.transaction_ids.length) {
      out.partial.push(l);
      continue;
    }
    out.incidents.push({
      label: l,
      candidateAlertIds: l.transaction_ids.map((tx) => alertId(l.expected_rule, l.account_id, tx)),
    });
  }
  return out;
}

/**
 * The alert ids whose presence verify looks up in Redis and the warehouse: every candidate id
 * of every incident, and every alert on the topic raised by a transaction of this input.
 */
export function alertIdsToLookUp(
  incidents: readonly Incident[],
  topicAlerts: readonly AlertRecord[],
  unique: ReadonlySet<string>,
): string[] {
  const ids = new Set<string>();
  for (const i of incidents) for (const id of i.candidateAlertIds) ids.add(id);
  for (const a of topicAlerts) if (unique.has(a.transaction_id)) ids.add(a.alert_id);
  return [...ids];
}

export interface IncidentProblem {
  scenario_id: string;
  rule: string;
  account_id: string;
  /** Distinct alert ids of this incident found in each store. */
  topic: number;
  redis: number;
  warehouse: number;
  problem: "missing" | "doubled" | "missing+doubled";
}

export interface AlertResult {
  byRule: { rule: string; incidents: number; ok: number; missing: number; doubled: number }[];
  problems: IncidentProblem[];
  /** Problems found (problems[] holds at most maxExamples). */
  problemCount: number;
  /** Distinct alert ids on the topic raised by transactions of this input. */
  runAlerts: number;
  runAlertsMissingRedis: number;
  runAlertsMissingWarehouse: number;
  /** Alert ids stored more than once in the warehouse (only possible where keys are not enforced). */
  warehouseDuplicates: number;
  /** Records on the alerts topic beyond the first per alert id (replays re-sent them). */
  resends: number;
  /** Alerts of this run not attributed to a checked incident (false positives or unlabelled). */
  unattributed: number;
  missingRedisExamples: string[];
  missingWarehouseExamples: string[];
}

/**
 * Per incident: the distinct alert ids of its expected rule, on its account, triggered by one
 * of its transactions — on the topic, in Redis and in the warehouse. Exactly one in each is
 * clean; none in a store is "missing", more than one is "doubled" (a replay that fired the
 * rule on another transaction of the same incident).
 */
export function reconcileAlerts(
  sel: IncidentSelection,
  topicAlerts: readonly AlertRecord[],
  unique: ReadonlySet<string>,
  redisPresent: ReadonlySet<string>,
  warehouseCounts: ReadonlyMap<string, number>,
  maxExamples = DEFAULT_MAX_EXAMPLES,
): AlertResult {
  const r: AlertResult = {
    byRule: [],
    problems: [],
    problemCount: 0,
    runAlerts: 0,
    runAlertsMissingRedis: 0,
    runAlertsMissingWarehouse: 0,
    warehouseDuplicates: 0,
    resends: 0,
    unattributed: 0,
    missingRedisExamples: [],
    missingWarehouseExamples: [],
  };

  // The alerts of this run on the topic, distinct by id.
  const runAlerts = new Map<string, AlertRecord>();
  let runRecords = 0;
  for (const a of topicAlerts) {
    if (!unique.has(a.transaction_id)) continue;
    runRecords++;
    if (!runAlerts.has(a.alert_id)) runAlerts.set(a.alert_id, a);
  }
  r.runAlerts = runAlerts.size;
  r.resends = runRecords - runAlerts.size;
  for (const id of runAlerts.keys()) {
    if (!redisPresent.has(id)) {
      r.runAlertsMissingRedis++;
      pushExample(r.missingRedisExamples, id, maxExamples);
    }
    const n = warehouseCounts.get(id) ?? 0;
    if (n === 0) {
      r.runAlertsMissingWarehouse++;
      pushExample(r.missingWarehouseExamples, id, maxExamples);
    }
  }
  for (const n of warehouseCounts.values()) if (n > 1) r.warehouseDuplicates++;

  // Topic alerts by (rule, account, transaction), to attribute them to incidents.
  const byTrigger = new Map<string, Set<string>>();
  const attributed = new Set<string>();
  for (const a of runAlerts.values()) {
    const k = `${a.rule_id}\u0000${a.account_id}\u0000${a.transaction_id}`;
    const s = byTrigger.get(k);
    if (s) s.add(a.alert_id);
    else byTrigger.set(k, new Set([a.alert_id]));
  }

  const perRule = new Map<
    string,
    { rule: string; incidents: number; ok: number; missing: number; doubled: number }
  >();
  for (const inc of sel.incidents) {
    const l = inc.label;
    const row = perRule.get(l.expected_rule) ?? {
      rule: l.expected_rule,
      incidents: 0,
      ok: 0,
      missing: 0,
      doubled: 0,
    };
    perRule.set(l.expected_rule, row);
    row.incidents++;

    const onTopic = new Set<string>();
    for (const tx of l.transaction_ids) {
      const s = byTrigger.get(`${l.expected_rule}\u0000${l.account_id}\u0000${tx}`);
      if (s) for (const id of s) onTopic.add(id);
    }
    for (const id of onTopic) attributed.add(id);
    const ids = new Set([...inc.candidateAlertIds, ...onTopic]);
    let inRedis = 0;
    let inWarehouse = 0;
    let warehouseRows = 0;
    for (const id of ids) {
      if (redisPresent.has(id)) inRedis++;
      const n = warehouseCounts.get(id) ?? 0;
      if (n > 0) inWarehouse++;
      warehouseRows += n;
    }
    const missing = onTopic.size === 0 || inRedis === 0 || inWarehouse === 0;
    const doubled = onTopic.size > 1 || inRedis > 1 || inWarehouse > 1 || warehouseRows > inWarehouse;
    if (!missing && !doubled) {
      row.ok++;
      continue;
    }
    if (missing) row.missing++;
    if (doubled) row.doubled++;
    r.problemCount++;
    pushExample(
      r.problems,
      {
        scenario_id: l.scenario_id,
        rule: l.expected_rule,
        account_id: l.account_id,
        topic: onTopic.size,
        redis: inRedis,
        warehouse: inWarehouse,
        problem: missing && doubled ? "missing+doubled" : missing ? "missing" : "doubled",
      },
      maxExamples,
    );
  }
  r.byRule = [...perRule.values()].sort((a, b) => a.rule.localeCompare(b.rule));
  r.unattributed = runAlerts.size - attributed.size;
  return r;
}

// ----------------------------------------------------------------------------- report

export interface TopicReadFacts {
  topic: string;
  exists: boolean;
  partitions: number;
  records: number;
}

export interface GroupLag {
  group: string;
  /** Records between the group's committed offsets and the end snapshot; undefined: no commits. */
  lag: number | undefined;
}

export interface ReportInputs {
  input: InputTally;
  inputRead: TopicReadFacts;
  warehouse: RowCountResult;
  dlq: DlqResult;
  dlqRead: TopicReadFacts;
  labelsRead: TopicReadFacts;
  alertsRead: TopicReadFacts;
  incidents: IncidentSelection;
  alerts: AlertResult;
  rules: readonly string[];
  groupLag?: GroupLag;
}

export interface VerifyReport {
  /** True when no check failed. */
  clean: boolean;
  /** 0 clean, 1 a loss, duplicate or alert problem was found. */
  exitCode: 0 | 1;
  verdict: string;
  rows: CheckRow[];
  summary: {
    topic: string;
    partitions: number;
    records: number;
    uniqueTransactions: number;
    resendRecords: number;
    invalidRecords: number;
    missingRows: number;
    duplicatedRows: number;
    dlqMissing: number;
    dlqResends: number;
    incidents: number;
    incidentProblems: number;
    alertResends: number;
  };
  /** Ids behind failing checks, at most maxExamples each. */
  examples: {
    missingRows: string[];
    duplicateRows: { id: string; rows: number }[];
    dlqMissing: string[];
    dlqWrongReason: string[];
    dlqUnexpected: string[];
    incidentProblems: IncidentProblem[];
    alertsMissingRedis: string[];
    alertsMissingWarehouse: string[];
    partialIncidents: string[];
  };
}

function expectEq(section: string, check: string, expected: number, actual: number, note?: string): CheckRow {
  return {
    section,
    check,
    expected,
    actual,
    status: expected === actual ? "OK" : "FAIL",
    ...(note ? { note } : {}),
  };
}

function info(section: string, check: string, actual: number, note?: string): CheckRow {
  return { section, check, expected: null, actual, status: "INFO", ...(note ? { note } : {}) };
}

function warnIf(section: string, check: string, actual: number, note: string): CheckRow {
  return {
    section,
    check,
    expected: 0,
    actual,
    status: actual === 0 ? "OK" : "WARN",
    ...(actual === 0 ? {} : { note }),
  };
}

export function buildReport(x: ReportInputs, maxExamples = DEFAULT_MAX_EXAMPLES): VerifyReport {
  const rows: CheckRow[] = [];
  const u = x.input.unique.size;
  const m = x.input.invalid.size;
  const retained = x.input.ranges.reduce((n, r) => n + Number(r.end - r.start), 0);
  const deleted = x.input.ranges.reduce((n, r) => n + Number(r.start), 0);

  rows.push(
    info(
      "input",
      "records read",
      x.input.records,
      `${x.inputRead.partitions} partitions, ${retained} offsets in the end snapshot`,
    ),
  );
  rows.push(info("input", "unique valid transactions (U)", u));
  rows.push(
    info("input", "resends of an id (D)", x.input.resendRecords, `${x.input.resends.size} ids resent`),
  );
  rows.push(info("input", "invalid records (M)", m));
  if (deleted > 0) {
    rows.push(
      warnIf(
        "input",
        "records deleted before the read",
        deleted,
        "log start > 0 (retention): their outputs are not checked",
      ),
    );
  }
  if (x.groupLag) {
    const g = x.groupLag;
    if (g.lag === undefined) {
      rows.push(info("pipeline", `group ${g.group} lag`, 0, "no committed offsets on the input topic"));
    } else {
      rows.push(
        warnIf(
          "pipeline",
          `group ${g.group} lag`,
          g.lag,
          "records not yet committed by the processors: missing outputs may still be in flight",
        ),
      );
    }
  }

  const w = x.warehouse;
  rows.push(expectEq("warehouse", "transactions stored (one per U)", u - w.refused, w.present));
  rows.push(expectEq("warehouse", "missing rows", 0, w.missing));
  rows.push(
    warnIf(
      "warehouse",
      "rows refused by the warehouse (in the DLQ)",
      w.refused,
      "not lost: dead-lettered with reason warehouse_rejected; fix the warehouse, then replay them",
    ),
  );
  rows.push(
    expectEq(
      "warehouse",
      "duplicate rows",
      0,
      w.extraRows,
      w.duplicated > 0 ? `${w.duplicated} ids stored more than once` : undefined,
    ),
  );

  const d = x.dlq;
  if (!x.dlqRead.exists)
    rows.push({
      section: "dlq",
      check: `topic ${x.dlqRead.topic}`,
      expected: null,
      actual: 0,
      status: m > 0 ? "WARN" : "INFO",
      note: "topic does not exist",
    });
  for (const br of d.byReason) rows.push(expectEq("dlq", `reason ${br.reason}`, br.expected, br.found));
  rows.push(expectEq("dlq", "invalid records missing from the DLQ", 0, d.missing));
  rows.push(expectEq("dlq", "entries with another reason", 0, d.wrongReason));
  rows.push(expectEq("dlq", "entries for records that are not invalid", 0, d.unexpected));
  rows.push(
    info("dlq", "DLQ re-sends", d.resends, "same source record dead-lettered again by a replay: harmless"),
  );
  if (d.afterSnapshot > 0)
    rows.push(
      info("dlq", "entries past the end snapshot", d.afterSnapshot, "input produced after verify began"),
    );
  if (d.beforeStart > 0)
    rows.push(info("dlq", "entries for deleted input records", d.beforeStart, "below the log start"));
  if (d.unattributed > 0) rows.push(info("dlq", "entries without source headers", d.unattributed));

  const sel = x.incidents;
  const ruleNote = `rules: ${x.rules.join(", ")}`;
  if (!x.labelsRead.exists) {
    rows.push({
      section: "labels",
      check: `topic ${x.labelsRead.topic}`,
      expected: null,
      actual: 0,
      status: "WARN",
      note: "topic does not exist: alert expectations not checked",
    });
  }
  rows.push(info("labels", "scenario incidents checked", sel.incidents.length, ruleNote));
  if (sel.uncheckedRule > 0) rows.push(info("labels", "incidents of unchecked rules", sel.uncheckedRule));
  rows.push(
    warnIf(
      "labels",
      "incidents only partly in the input",
      sel.partial.length,
      "labelled transactions missing from the input topic: not checked",
    ),
  );
  if (sel.foreign > 0) rows.push(info("labels", "labels of other runs (ignored)", sel.foreign));

  const a = x.alerts;
  const byRule = new Map(a.byRule.map((br) => [br.rule, br]));
  for (const rule of x.rules) {
    if (!byRule.has(rule)) byRule.set(rule, { rule, incidents: 0, ok: 0, missing: 0, doubled: 0 });
  }
  for (const br of byRule.values()) {
    const parts: string[] = [];
    if (br.missing > 0) parts.push(`${br.missing} missing`);
    if (br.doubled > 0) parts.push(`${br.doubled} doubled`);
    rows.push(
      expectEq(
        "alerts",
        `one ${br.rule} alert per incident`,
        br.incidents,
        br.ok,
        parts.join(", ") || undefined,
      ),
    );
  }
  if (!x.alertsRead.exists) {
    rows.push({
      section: "alerts",
      check: `topic ${x.alertsRead.topic}`,
      expected: null,
      actual: 0,
      status: "WARN",
      note: "topic does not exist",
    });
  }
  rows.push(
    info(
      "alerts",
      "alerts of this run on the topic",
      a.runAlerts,
      `${a.unattributed} not tied to a checked incident`,
    ),
  );
  rows.push(expectEq("alerts", "alerts missing in Redis", 0, a.runAlertsMissingRedis));
  rows.push(expectEq("alerts", "alerts missing in the warehouse", 0, a.runAlertsMissingWarehouse));
  rows.push(expectEq("alerts", "alerts stored twice in the warehouse", 0, a.warehouseDuplicates));
  rows.push(
    info("alerts", "alert re-sends", a.resends, "same alert_id on the topic again after a replay: harmless"),
  );

  const clean = !rows.some((r) => r.status === "FAIL");
  const problems: string[] = [];
  if (w.missing) problems.push(`${w.missing} missing rows`);
  if (w.extraRows) problems.push(`${w.extraRows} duplicate rows`);
  if (d.missing) problems.push(`${d.missing} invalid records missing from the DLQ`);
  if (d.wrongReason) problems.push(`${d.wrongReason} DLQ entries with another reason`);
  if (d.unexpected) problems.push(`${d.unexpected} unexpected DLQ entries`);
  if (a.problemCount) problems.push(`${a.problemCount} incidents without exactly one alert`);
  if (a.runAlertsMissingRedis) problems.push(`${a.runAlertsMissingRedis} alerts missing in Redis`);
  if (a.runAlertsMissingWarehouse)
    problems.push(`${a.runAlertsMissingWarehouse} alerts missing in the warehouse`);
  if (a.warehouseDuplicates) problems.push(`${a.warehouseDuplicates} alerts stored twice`);
  const warnings = rows.filter((r) => r.status === "WARN").length;
  const verdict = clean
    ? `CLEAN: ${u} transactions stored once each, ${m} invalid records dead-lettered, ` +
      `${sel.incidents.length} incidents with exactly one alert` +
      (warnings > 0 ? ` (${warnings} warning${warnings > 1 ? "s" : ""})` : "")
    : `FAILED: ${problems.join(", ")}`;

  return {
    clean,
    exitCode: clean ? 0 : 1,
    verdict,
    rows,
    summary: {
      topic: x.inputRead.topic,
      partitions: x.inputRead.partitions,
      records: x.input.records,
      uniqueTransactions: u,
      resendRecords: x.input.resendRecords,
      invalidRecords: m,
      missingRows: w.missing,
      duplicatedRows: w.extraRows,
      dlqMissing: d.missing,
      dlqResends: d.resends,
      incidents: sel.incidents.length,
      incidentProblems: a.problemCount,
      alertResends: a.resends,
    },
    examples: {
      missingRows: w.missingExamples,
      duplicateRows: w.duplicateExamples,
      dlqMissing: d.missingExamples,
      dlqWrongReason: d.wrongReasonExamples,
      dlqUnexpected: d.unexpectedExamples,
      incidentProblems: a.problems,
      alertsMissingRedis: a.missingRedisExamples,
      alertsMissingWarehouse: a.missingWarehouseExamples,
      partialIncidents: sel.partial.slice(0, maxExamples).map((l) => l.scenario_id),
    },
  };
}

// ----------------------------------------------------------------------------- rendering

/** The report as a fixed-width table, then examples of what failed, then the verdict. */
export function renderTable(report: VerifyReport): string {
  const head = ["CHECK", "EXPECTED", "ACTUAL", "STATUS"];
  const cells = report.rows.map((r) => [
    `${r.section}: ${r.check}`,
    r.expected === null ? "-" : String(r.expected),
    String(r.actual),
    r.status,
    r.note ?? "",
  ]);
  const w0 = Math.max(head[0]!.length, ...cells.map((c) => c[0]!.length));
  const w1 = Math.max(head[1]!.length, ...cells.map((c) => c[1]!.length));
  const w2 = Math.max(head[2]!.length, ...cells.map((c) => c[2]!.length));
  const line = (c: string[]) =>
    `${c[0]!.padEnd(w0)}  ${c[1]!.padStart(w1)}  ${c[2]!.padStart(w2)}  ${c[3]!.padEnd(6)}${c[4] ? `  ${c[4]}` : ""}`.trimEnd();
  const out = [line([...head, "NOTE"]), ...cells.map(line)];

  const e = report.examples;
  const ex: string[] = [];
  const list = (title: string, items: readonly string[]) => {
    if (items.length > 0) ex.push(`${title}: ${items.join(" ")}`);
  };
  list("missing rows (transaction_id)", e.missingRows);
  list(
    "duplicate rows",
    e.duplicateRows.map((d) => `${d.id}×${d.rows}`),
  );
  list("not in the DLQ (partition:offset reason)", e.dlqMissing);
  list("DLQ with another reason", e.dlqWrongReason);
  list("unexpected DLQ entries", e.dlqUnexpected);
  for (const p of e.incidentProblems) {
    ex.push(
      `incident ${p.scenario_id} ${p.rule} on ${p.account_id}: ${p.problem} (alert ids on topic ${p.topic}, Redis ${p.redis}, warehouse ${p.warehouse})`,
    );
  }
  list("alerts missing in Redis (alert_id)", e.alertsMissingRedis);
  list("alerts missing in the warehouse (alert_id)", e.alertsMissingWarehouse);
  list("incidents only partly in the input", e.partialIncidents);
  if (ex.length > 0) out.push("", ...ex);
  out.push("", `verdict: ${report.verdict}`);
  return out.join("\n");
}

/**
 * Alerts in three stores against the incidents of this run. The alerts topic says which
 * alerts the processors raised; Redis and the warehouse must each hold every one of them
 * once; and every checked incident must have exactly one alert of its expected rule. Alerts
 * are "of this run" when the transaction that raised them is in U.
 */
import type { Incident, IncidentSelection } from "./incidents.ts";
import { DEFAULT_MAX_EXAMPLES, isNonEmptyString, parseJson, pushExample } from "./tally.ts";

/** The fields of an alert record (payments.alerts JSON, see alertToJson) that verify uses. */
export interface AlertRecord {
  alert_id: string;
  rule_id: string;
  account_id: string;
  transaction_id: string;
}

/** Parses one alerts-topic value; undefined for anything that is not an alert JSON. */
export function parseAlertRecord(text: string): AlertRecord | undefined {
  const a = parseJson(text) as Partial<AlertRecord> | null | undefined;
  if (!a || !isNonEmptyString(a.alert_id) || !isNonEmptyString(a.rule_id)) return undefined;
  if (!isNonEmptyString(a.account_id) || !isNonEmptyString(a.transaction_id)) return undefined;
  return {
    alert_id: a.alert_id,
    rule_id: a.rule_id,
    account_id: a.account_id,
    transaction_id: a.transaction_id,
  };
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

export interface RuleOutcome {
  rule: string;
  incidents: number;
  ok: number;
  missing: number;
  doubled: number;
}

export interface AlertResult {
  byRule: RuleOutcome[];
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

/** Where an alert id is found: the two stores verify looks up. */
interface Stores {
  redisPresent: ReadonlySet<string>;
  warehouseCounts: ReadonlyMap<string, number>;
}

/** The alerts of this run on the topic, distinct by id, and how many records carried them. */
function runAlertsOf(
  topicAlerts: readonly AlertRecord[],
  unique: ReadonlySet<string>,
): { alerts: Map<string, AlertRecord>; records: number } {
  const alerts = new Map<string, AlertRecord>();
  let records = 0;
  for (const a of topicAlerts) {
    if (!unique.has(a.transaction_id)) continue;
    records++;
    if (!alerts.has(a.alert_id)) alerts.set(a.alert_id, a);
  }
  return { alerts, records };
}

/** Every alert of this run must be in Redis and in the warehouse, once. */
function checkStores(
  runAlerts: ReadonlyMap<string, AlertRecord>,
  s: Stores,
  r: AlertResult,
  max: number,
): void {
  for (const id of runAlerts.keys()) {
    if (!s.redisPresent.has(id)) {
      r.runAlertsMissingRedis++;
      pushExample(r.missingRedisExamples, id, max);
    }
    if ((s.warehouseCounts.get(id) ?? 0) === 0) {
      r.runAlertsMissingWarehouse++;
      pushExample(r.missingWarehouseExamples, id, max);
    }
  }
  for (const n of s.warehouseCounts.values()) if (n > 1) r.warehouseDuplicates++;
}

function triggerKey(rule: string, account: string, transaction: string): string {
  return `${rule}\u0000${account}\u0000${transaction}`;
}

/** Topic alerts by (rule, account, transaction), to attribute them to incidents. */
function indexByTrigger(runAlerts: ReadonlyMap<string, AlertRecord>): Map<string, Set<string>> {
  const byTrigger = new Map<string, Set<string>>();
  for (const a of runAlerts.values()) {
    const k = triggerKey(a.rule_id, a.account_id, a.transaction_id);
    const s = byTrigger.get(k);
    if (s) s.add(a.alert_id);
    else byTrigger.set(k, new Set([a.alert_id]));
  }
  return byTrigger;
}

interface IncidentFinding {
  /** Alert ids of the incident's rule, account and transactions on the topic. */
  onTopic: Set<string>;
  inRedis: number;
  inWarehouse: number;
  missing: boolean;
  doubled: boolean;
}

/**
 * One incident in the three stores. Its alert ids are the candidates (known in advance)
 * plus whatever the topic attributes to it; a store with none is "missing", more than one
 * (or one stored twice) is "doubled".
 */
function judgeIncident(
  inc: Incident,
  byTrigger: ReadonlyMap<string, Set<string>>,
  s: Stores,
): IncidentFinding {
  const l = inc.label;
  const onTopic = new Set<string>();
  for (const tx of l.transaction_ids) {
    const ids = byTrigger.get(triggerKey(l.expected_rule, l.account_id, tx));
    if (ids) for (const id of ids) onTopic.add(id);
  }
  let inRedis = 0;
  let inWarehouse = 0;
  let warehouseRows = 0;
  for (const id of new Set([...inc.candidateAlertIds, ...onTopic])) {
    if (s.redisPresent.has(id)) inRedis++;
    const n = s.warehouseCounts.get(id) ?? 0;
    if (n > 0) inWarehouse++;
    warehouseRows += n;
  }
  return {
    onTopic,
    inRedis,
    inWarehouse,
    missing: onTopic.size === 0 || inRedis === 0 || inWarehouse === 0,
    doubled: onTopic.size > 1 || inRedis > 1 || inWarehouse > 1 || warehouseRows > inWarehouse,
  };
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
  const stores: Stores = { redisPresent, warehouseCounts };
  const run = runAlertsOf(topicAlerts, unique);
  r.runAlerts = run.alerts.size;
  r.resends = run.records - run.alerts.size;
  checkStores(run.alerts, stores, r, maxExamples);

  const byTrigger = indexByTrigger(run.alerts);
  const attributed = new Set<string>();
  const perRule = new Map<string, RuleOutcome>();
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
    const f = judgeIncident(inc, byTrigger, stores);
    for (const id of f.onTopic) attributed.add(id);
    if (!f.missing && !f.doubled) {
      row.ok++;
      continue;
    }
    if (f.missing) row.missing++;
    if (f.doubled) row.doubled++;
    r.problemCount++;
    pushExample(
      r.problems,
      {
        scenario_id: l.scenario_id,
        rule: l.expected_rule,
        account_id: l.account_id,
        topic: f.onTopic.size,
        redis: f.inRedis,
        warehouse: f.inWarehouse,
        problem: f.missing && f.doubled ? "missing+doubled" : f.missing ? "missing" : "doubled",
      },
      maxExamples,
    );
  }
  r.byRule = [...perRule.values()].sort((a, b) => a.rule.localeCompare(b.rule));
  r.unattributed = run.alerts.size - attributed.size;
  return r;
}

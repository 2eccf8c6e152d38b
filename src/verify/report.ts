/**
 * The verify report: the results of every comparison as one table of checks (OK / FAIL
 * with an expectation, WARN where a check is weaker than it looks, INFO for figures), a
 * summary, the examples behind failing checks, and a one-line verdict. One section of rows
 * per source, in the order a reader follows the data: input, pipeline, warehouse, DLQ,
 * labels, alerts.
 */
import type { AlertResult, IncidentProblem, RuleOutcome } from "./alerts.ts";
import type { DlqResult } from "./dlq.ts";
import type { IncidentSelection } from "./incidents.ts";
import type { InputTally, RowCountResult } from "./rows.ts";
import { DEFAULT_MAX_EXAMPLES } from "./tally.ts";

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

// ----------------------------------------------------------------------------- row kinds

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

/** A topic verify needed and did not find: a figure of 0 with a note. */
function missingTopic(section: string, topic: string, status: Status, note: string): CheckRow {
  return { section, check: `topic ${topic}`, expected: null, actual: 0, status, note };
}

// ----------------------------------------------------------------------------- sections

function inputRows(x: ReportInputs): CheckRow[] {
  const rows: CheckRow[] = [];
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
  rows.push(info("input", "unique valid transactions (U)", x.input.unique.size));
  rows.push(
    info("input", "resends of an id (D)", x.input.resendRecords, `${x.input.resends.size} ids resent`),
  );
  rows.push(info("input", "invalid records (M)", x.input.invalid.size));
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
  return rows;
}

function pipelineRows(g: GroupLag | undefined): CheckRow[] {
  if (!g) return [];
  if (g.lag === undefined) {
    return [info("pipeline", `group ${g.group} lag`, 0, "no committed offsets on the input topic")];
  }
  return [
    warnIf(
      "pipeline",
      `group ${g.group} lag`,
      g.lag,
      "records not yet committed by the processors: missing outputs may still be in flight",
    ),
  ];
}

function warehouseRows(w: RowCountResult, unique: number): CheckRow[] {
  return [
    expectEq("warehouse", "transactions stored (one per U)", unique - w.refused, w.present),
    expectEq("warehouse", "missing rows", 0, w.missing),
    warnIf(
      "warehouse",
      "rows refused by the warehouse (in the DLQ)",
      w.refused,
      "not lost: dead-lettered with reason warehouse_rejected; fix the warehouse, then replay them",
    ),
    expectEq(
      "warehouse",
      "duplicate rows",
      0,
      w.extraRows,
      w.duplicated > 0 ? `${w.duplicated} ids stored more than once` : undefined,
    ),
  ];
}

function dlqRows(d: DlqResult, read: TopicReadFacts, invalid: number): CheckRow[] {
  const rows: CheckRow[] = [];
  if (!read.exists)
    rows.push(missingTopic("dlq", read.topic, invalid > 0 ? "WARN" : "INFO", "topic does not exist"));
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
  return rows;
}

function labelRows(sel: IncidentSelection, read: TopicReadFacts, rules: readonly string[]): CheckRow[] {
  const rows: CheckRow[] = [];
  if (!read.exists) {
    rows.push(
      missingTopic("labels", read.topic, "WARN", "topic does not exist: alert expectations not checked"),
    );
  }
  rows.push(info("labels", "scenario incidents checked", sel.incidents.length, `rules: ${rules.join(", ")}`));
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
  return rows;
}

function alertRows(a: AlertResult, read: TopicReadFacts, rules: readonly string[]): CheckRow[] {
  const rows: CheckRow[] = [];
  // Every checked rule gets its row, with 0 incidents if the run had none of it.
  const byRule = new Map<string, RuleOutcome>(a.byRule.map((br) => [br.rule, br]));
  for (const rule of rules) {
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
  if (!read.exists) rows.push(missingTopic("alerts", read.topic, "WARN", "topic does not exist"));
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
  return rows;
}

// ----------------------------------------------------------------------------- verdict

/** The failures in words, in the order of the table. */
function problemsOf(w: RowCountResult, d: DlqResult, a: AlertResult): string[] {
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
  return problems;
}

function verdictOf(x: ReportInputs, rows: readonly CheckRow[], clean: boolean): string {
  if (!clean) return `FAILED: ${problemsOf(x.warehouse, x.dlq, x.alerts).join(", ")}`;
  const warnings = rows.filter((r) => r.status === "WARN").length;
  return (
    `CLEAN: ${x.input.unique.size} transactions stored once each, ${x.input.invalid.size} invalid records dead-lettered, ` +
    `${x.incidents.incidents.length} incidents with exactly one alert` +
    (warnings > 0 ? ` (${warnings} warning${warnings > 1 ? "s" : ""})` : "")
  );
}

// ----------------------------------------------------------------------------- report

export function buildReport(x: ReportInputs, maxExamples = DEFAULT_MAX_EXAMPLES): VerifyReport {
  const u = x.input.unique.size;
  const m = x.input.invalid.size;
  const { warehouse: w, dlq: d, alerts: a, incidents: sel } = x;
  const rows = [
    ...inputRows(x),
    ...pipelineRows(x.groupLag),
    ...warehouseRows(w, u),
    ...dlqRows(d, x.dlqRead, m),
    ...labelRows(sel, x.labelsRead, x.rules),
    ...alertRows(a, x.alertsRead, x.rules),
  ];
  const clean = !rows.some((r) => r.status === "FAIL");
  return {
    clean,
    exitCode: clean ? 0 : 1,
    verdict: verdictOf(x, rows, clean),
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

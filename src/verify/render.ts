/**
 * The verify report for a terminal: a fixed-width table of the checks, then the ids behind
 * what failed, then the verdict. (`--json` prints the report object itself.)
 */
import type { VerifyReport } from "./report.ts";

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

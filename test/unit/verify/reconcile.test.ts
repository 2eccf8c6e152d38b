/**
 * The reconciliation rules of `paystream verify`, without servers: what counts as U, D and M,
 * how warehouse counts, DLQ entries and alerts in three stores are compared, and the report.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ScenarioLabel } from "../../../src/contracts/labels.ts";
import { alertId } from "../../../src/core/alert.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import {
  type AlertRecord,
  alertIdsToLookUp,
  parseAlertRecord,
  reconcileAlerts,
} from "../../../src/verify/alerts.ts";
import { DlqTally, reconcileDlq } from "../../../src/verify/dlq.ts";
import { parseScenarioLabel, selectIncidents } from "../../../src/verify/incidents.ts";
import { renderTable } from "../../../src/verify/render.ts";
import { buildReport, type ReportInputs } from "../../../src/verify/report.ts";
import { InputTally, RowCountTally } from "../../../src/verify/rows.ts";
import { T0, txJson as wireJson } from "../../helpers/fixtures.ts";

function txJson(id: string, over: Record<string, unknown> = {}): Buffer {
  return Buffer.from(wireJson({ transaction_id: id, ...over }));
}

/** Kafka timestamp of the test records: appended a second after their event_time (T0 + 123 ms). */
const TS = T0 + 1_000;
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();

function headers(h: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(h));
}

function scenario(
  id: string,
  rule: string,
  account: string,
  txs: string[],
  trigger = txs.at(-1)!,
): ScenarioLabel {
  return {
    type: "scenario",
    scenario_id: id,
    scenario: rule === "velocity_count" ? "velocity_burst" : (rule as ScenarioLabel["scenario"]),
    expected_rule: rule as ScenarioLabel["expected_rule"],
    account_id: account,
    transaction_ids: txs,
    trigger_transaction_id: trigger,
    started_at: 1,
    completed_at: 2,
  };
}

function alertRec(rule: string, account: string, tx: string, id = alertId(rule, account, tx)): AlertRecord {
  return { alert_id: id, rule_id: rule, account_id: account, transaction_id: tx };
}

describe("InputTally", () => {
  it("files records under U, D and M exactly as the processor decodes them", () => {
    const t = new InputTally();
    t.add(0, 0n, txJson("t1"), TS);
    t.add(0, 1n, txJson("t2"), TS);
    t.add(1, 0n, txJson("t1"), TS); // a resend on another partition
    t.add(0, 2n, txJson("t1"), TS); // and another
    t.add(1, 1n, Buffer.from('{"schema_version":1,'), TS);
    t.add(1, 2n, txJson("t3", { amount: "-1.00" }), TS);
    t.add(2, 7n, txJson("t4", { card_number: "4111111111111112" }), TS);
    t.add(2, 8n, Buffer.alloc(0), TS); // a tombstone: the processor dead-letters it as bad_json
    assert.equal(t.records, 8);
    assert.deepEqual([...t.unique], ["t1", "t2"]);
    assert.equal(t.resendRecords, 2);
    assert.deepEqual([...t.resends], [["t1", 2]]);
    assert.deepEqual(
      [...t.invalid],
      [
        ["1:1", "bad_json"],
        ["1:2", "non_positive_amount"],
        ["2:7", "luhn_invalid"],
        ["2:8", "bad_json"],
      ],
    );
    assert.equal(t.invalidByReason.get("bad_json"), 2);
  });

  it("uses the processor's size limit: records above it are oversized", () => {
    const t = new InputTally(256);
    t.add(0, 0n, txJson("t1", { city: "x".repeat(300) }), TS);
    assert.deepEqual([...t.invalid], [["0:0", "oversized"]]);
  });

  it("decodes with the record's timestamp as processing time: too far ahead or behind it is M, not U", () => {
    const t = new InputTally();
    t.add(0, 0n, txJson("on-time"), TS);
    t.add(0, 1n, txJson("ahead", { event_time: iso(T0 + 60 * MIN) }), T0);
    t.add(0, 2n, txJson("at-skew", { event_time: iso(T0 + 5 * MIN) }), T0); // the limit itself is accepted
    // The same event time is fine for a record appended 55 min later: it is relative to the timestamp.
    t.add(0, 3n, txJson("appended-later", { event_time: iso(T0 + 60 * MIN) }), T0 + 55 * MIN);
    t.add(0, 4n, txJson("old", { event_time: iso(T0 - 8 * DAY) }), T0);
    t.add(0, 5n, txJson("at-age", { event_time: iso(T0 - 7 * DAY) }), T0);
    t.add(0, 6n, txJson("huge", { amount: "1000000000.01" }), TS);
    assert.deepEqual([...t.unique], ["on-time", "at-skew", "appended-later", "at-age"]);
    assert.deepEqual(
      [...t.invalid],
      [
        ["0:1", "event_time_in_future"],
        ["0:4", "event_time_too_old"],
        ["0:6", "amount_out_of_range"],
      ],
    );
  });

  it("takes the processor's limits when given, and refuses one that would disable a check", () => {
    const t = new InputTally({ maxFutureSkewMs: 2 * 60 * MIN, maxAgeMs: 30 * DAY, maxAmountMinor: 1e12 });
    t.add(0, 0n, txJson("ahead", { event_time: iso(T0 + 60 * MIN) }), T0);
    t.add(0, 1n, txJson("old", { event_time: iso(T0 - 8 * DAY) }), T0);
    t.add(0, 2n, txJson("huge", { amount: "1000000000.01" }), TS);
    assert.deepEqual([...t.unique], ["ahead", "old", "huge"]);
    assert.throws(() => new InputTally({ maxAgeMs: -1 }), ConfigError);
    assert.throws(() => new InputTally(0), ConfigError);
  });

  it("locates an offset against the ranges read", () => {
    const t = new InputTally();
    t.ranges = [{ partition: 0, start: 10n, end: 20n }];
    assert.equal(t.locate(0, 9n), "before");
    assert.equal(t.locate(0, 10n), "inside");
    assert.equal(t.locate(0, 19n), "inside");
    assert.equal(t.locate(0, 20n), "after");
    assert.equal(t.locate(5, 0n), "unknown");
  });
});

describe("RowCountTally", () => {
  it("counts present, missing and duplicated ids across chunks, examples capped", () => {
    const t = new RowCountTally(2);
    t.addChunk(
      ["a", "b", "c"],
      new Map([
        ["a", 1],
        ["c", 3],
      ]),
    );
    t.addChunk(["d", "e", "f"], new Map([["e", 1]]));
    const r = t.result;
    assert.equal(r.expected, 6);
    assert.equal(r.present, 3);
    assert.equal(r.missing, 3);
    assert.deepEqual(r.missingExamples, ["b", "d"]);
    assert.equal(r.duplicated, 1);
    assert.equal(r.extraRows, 2);
    assert.deepEqual(r.duplicateExamples, [{ id: "c", rows: 3 }]);
  });

  it("ignores counts for ids it was not asked about (rows of other runs)", () => {
    const t = new RowCountTally();
    t.addChunk(
      ["a"],
      new Map([
        ["a", 1],
        ["zzz", 1],
      ]),
    );
    assert.equal(t.result.present, 1);
    assert.equal(t.result.expected, 1);
  });

  it("settles ids the warehouse refused (dead-lettered) apart from missing ones", () => {
    const t = new RowCountTally();
    t.addChunk(["a", "b", "c", "d"], new Map([["a", 1]]));
    const dlq = new DlqTally("in");
    dlq.add(
      headers({
        source_topic: "in",
        source_partition: "0",
        source_offset: "7",
        reason: "warehouse_rejected",
        transaction_id: "c",
      }),
    );
    t.settle(dlq.refusedTransactions);
    assert.equal(t.result.missing, 2);
    assert.equal(t.result.refused, 1);
    assert.deepEqual(t.result.missingExamples, ["b", "d"]);
    // Not an entry for M: a refused row is judged with the rows, never as "unexpected".
    assert.equal(dlq.entries.size, 0);
  });
});

describe("reconcileDlq", () => {
  const input = () => {
    const t = new InputTally();
    t.addInvalid(0, 5n, "bad_json");
    t.addInvalid(0, 6n, "bad_json");
    t.addInvalid(1, 3n, "luhn_invalid");
    t.addValid("ok-1");
    t.ranges = [
      { partition: 0, start: 2n, end: 10n },
      { partition: 1, start: 0n, end: 10n },
    ];
    return t;
  };
  const entry = (p: number, o: number, reason: string, topic = "in") =>
    headers({ source_topic: topic, source_partition: String(p), source_offset: String(o), reason });

  it("matches each invalid record by (partition, offset) and reason; a re-send is not a failure", () => {
    const dlq = new DlqTally("in");
    dlq.add(entry(0, 5, "bad_json"));
    dlq.add(entry(0, 6, "bad_json"));
    dlq.add(entry(0, 6, "bad_json")); // replayed
    dlq.add(entry(1, 3, "luhn_invalid"));
    dlq.add(entry(1, 3, "luhn_invalid", "other-run")); // another input topic: ignored
    const r = reconcileDlq(input(), dlq);
    assert.deepEqual(r.byReason, [
      { reason: "bad_json", expected: 2, found: 2 },
      { reason: "luhn_invalid", expected: 1, found: 1 },
    ]);
    assert.equal(r.missing, 0);
    assert.equal(r.resends, 1);
    assert.equal(r.otherTopics, 1);
    assert.equal(r.unexpected, 0);
  });

  it("reports missing entries, wrong reasons, entries for valid records, and outside the snapshot", () => {
    const dlq = new DlqTally("in");
    dlq.add(entry(0, 6, "schema_violation")); // wrong reason
    dlq.add(entry(1, 4, "bad_json")); // offset 1:4 is not an invalid record
    dlq.add(entry(1, 12, "bad_json")); // past the end snapshot
    dlq.add(entry(0, 1, "bad_json")); // below the log start
    dlq.add(headers({ source_topic: "in", reason: "bad_json" })); // no source offset
    const r = reconcileDlq(input(), dlq);
    assert.equal(r.missing, 2);
    assert.deepEqual(r.missingExamples, ["0:5 bad_json", "1:3 luhn_invalid"]);
    assert.equal(r.wrongReason, 1);
    assert.match(r.wrongReasonExamples[0]!, /^0:6 expected bad_json, DLQ says schema_violation$/);
    assert.equal(r.unexpected, 1);
    assert.deepEqual(r.unexpectedExamples, ["1:4 bad_json"]);
    assert.equal(r.afterSnapshot, 1);
    assert.equal(r.beforeStart, 1);
    assert.equal(r.unattributed, 1);
    assert.deepEqual(r.byReason, [
      { reason: "bad_json", expected: 2, found: 0 },
      { reason: "luhn_invalid", expected: 1, found: 0 },
    ]);
  });
});

describe("labels and alerts", () => {
  const U = new Set(["v1", "v2", "v3", "c1", "c2", "g1", "g2", "n1", "x1"]);
  const labels = [
    scenario("s-vel", "velocity_count", "acc-v", ["v1", "v2", "v3"], "v2"),
    scenario("s-card", "card_testing", "acc-c", ["c1", "c2"]),
    scenario("s-geo", "geo_velocity", "acc-g", ["g1", "g2"]),
    scenario("s-geo", "geo_velocity", "acc-g", ["g1", "g2"]), // the label re-sent
    scenario("s-other", "velocity_count", "acc-o", ["o1", "o2"]), // another run
    scenario("s-part", "merchant_spread", "acc-p", ["x1", "x2"]), // only partly in U
    scenario("s-sum", "amount_sum", "acc-s", ["n1"]), // rule not checked
  ];
  const rules = new Set(["velocity_count", "card_testing", "geo_velocity", "merchant_spread"]);

  it("parses alert records and scenario labels defensively", () => {
    assert.deepEqual(
      parseAlertRecord(
        JSON.stringify({
          alert_id: "a",
          rule_id: "r",
          account_id: "acc",
          transaction_id: "t",
          severity: "high",
        }),
      ),
      { alert_id: "a", rule_id: "r", account_id: "acc", transaction_id: "t" },
    );
    assert.equal(parseAlertRecord("{"), undefined);
    assert.equal(parseAlertRecord('{"alert_id":"a"}'), undefined);
    assert.deepEqual(parseScenarioLabel(JSON.stringify(labels[0])), labels[0]);
    assert.equal(parseScenarioLabel('{"type":"duplicate","transaction_id":"x"}'), undefined);
    assert.equal(parseScenarioLabel('{"type":"scenario","scenario_id":"s"}'), undefined);
    assert.equal(parseScenarioLabel("null"), undefined);
  });

  it("selects the incidents of this run: all their transactions in U, rule checked, once each", () => {
    const sel = selectIncidents(labels, U, rules);
    assert.deepEqual(
      sel.incidents.map((i) => i.label.scenario_id),
      ["s-vel", "s-card", "s-geo"],
    );
    assert.equal(sel.labelResends, 1);
    assert.equal(sel.foreign, 1);
    assert.deepEqual(
      sel.partial.map((l) => l.scenario_id),
      ["s-part"],
    );
    assert.equal(sel.uncheckedRule, 1);
    assert.deepEqual(sel.incidents[0]!.candidateAlertIds, [
      alertId("velocity_count", "acc-v", "v1"),
      alertId("velocity_count", "acc-v", "v2"),
      alertId("velocity_count", "acc-v", "v3"),
    ]);
  });

  const clean = () => {
    const sel = selectIncidents(labels, U, rules);
    const topic = [
      alertRec("velocity_count", "acc-v", "v2"),
      alertRec("card_testing", "acc-c", "c2"),
      alertRec("geo_velocity", "acc-g", "g2"),
      alertRec("amount_spike", "acc-x", "n1"), // a false positive: not tied to an incident
      alertRec("velocity_count", "acc-o", "o2"), // another run's alert
    ];
    const ids = alertIdsToLookUp(sel.incidents, topic, U);
    return { sel, topic, ids };
  };

  it("looks up every candidate id and every alert of this run, nothing of other runs", () => {
    const { ids } = clean();
    assert.equal(ids.length, 3 + 2 + 2 + 1);
    assert.ok(!ids.includes(alertId("velocity_count", "acc-o", "o2")));
  });

  it("is clean with one alert per incident in every store; re-sends and extra alerts are not failures", () => {
    const { sel, topic, ids } = clean();
    const present = new Set(topic.slice(0, 4).map((a) => a.alert_id));
    const counts = new Map([...present].map((id) => [id, 1]));
    const r = reconcileAlerts(sel, [...topic, topic[0]!], U, present, counts);
    assert.equal(r.problemCount, 0);
    assert.deepEqual(
      r.byRule.map((b) => [b.rule, b.incidents, b.ok]),
      [
        ["card_testing", 1, 1],
        ["geo_velocity", 1, 1],
        ["velocity_count", 1, 1],
      ],
    );
    assert.equal(r.runAlerts, 4);
    assert.equal(r.resends, 1);
    assert.equal(r.unattributed, 1);
    assert.equal(r.runAlertsMissingRedis, 0);
    assert.equal(r.runAlertsMissingWarehouse, 0);
    assert.ok(ids.length > 0);
  });

  it("reports an alert missing in Redis, and an incident alerted twice (a replay fired on another transaction)", () => {
    const { sel, topic } = clean();
    const second = alertRec("velocity_count", "acc-v", "v3"); // same incident, another trigger
    const all = [...topic, second];
    const present = new Set(all.map((a) => a.alert_id));
    present.delete(alertId("card_testing", "acc-c", "c2"));
    const counts = new Map(all.map((a) => [a.alert_id, 1]));
    const r = reconcileAlerts(sel, all, U, present, counts);
    assert.equal(r.problemCount, 2);
    assert.deepEqual(r.problems, [
      {
        scenario_id: "s-vel",
        rule: "velocity_count",
        account_id: "acc-v",
        topic: 2,
        redis: 2,
        warehouse: 2,
        problem: "doubled",
      },
      {
        scenario_id: "s-card",
        rule: "card_testing",
        account_id: "acc-c",
        topic: 1,
        redis: 0,
        warehouse: 1,
        problem: "missing",
      },
    ]);
    assert.deepEqual(r.missingRedisExamples, [alertId("card_testing", "acc-c", "c2")]);
  });

  it("finds an alert in the stores even when the topic lost it, and counts warehouse duplicates", () => {
    const { sel } = clean();
    const id = alertId("geo_velocity", "acc-g", "g2");
    const r = reconcileAlerts(sel, [], U, new Set([id]), new Map([[id, 2]]));
    const geo = r.byRule.find((b) => b.rule === "geo_velocity")!;
    assert.deepEqual(geo, { rule: "geo_velocity", incidents: 1, ok: 0, missing: 1, doubled: 1 });
    assert.equal(r.warehouseDuplicates, 1);
    assert.equal(r.problems.find((p) => p.scenario_id === "s-geo")?.problem, "missing+doubled");
  });
});

describe("buildReport and renderTable", () => {
  function inputs(over: Partial<ReportInputs> = {}): ReportInputs {
    const input = new InputTally();
    input.addValid("a");
    input.addValid("b");
    input.addValid("a");
    input.addInvalid(0, 3n, "bad_json");
    input.ranges = [{ partition: 0, start: 0n, end: 4n }];
    const rows = new RowCountTally();
    rows.addChunk(
      ["a", "b"],
      new Map([
        ["a", 1],
        ["b", 1],
      ]),
    );
    const dlq = new DlqTally("in");
    dlq.add(headers({ source_topic: "in", source_partition: "0", source_offset: "3", reason: "bad_json" }));
    const sel = selectIncidents([], input.unique, new Set(["velocity_count"]));
    const read = (topic: string) => ({ topic, exists: true, partitions: 1, records: 0 });
    return {
      input,
      inputRead: { ...read("in"), records: 4 },
      warehouse: rows.result,
      dlq: reconcileDlq(input, dlq),
      dlqRead: read("dlq"),
      labelsRead: read("labels"),
      alertsRead: read("alerts"),
      incidents: sel,
      alerts: reconcileAlerts(sel, [], input.unique, new Set(), new Map()),
      rules: ["velocity_count"],
      ...over,
    };
  }

  it("a clean run: exit 0, every expectation OK, a row per checked rule even with no incident", () => {
    const r = buildReport(inputs());
    assert.equal(r.clean, true);
    assert.equal(r.exitCode, 0);
    assert.ok(r.rows.every((row) => row.status !== "FAIL"));
    const vel = r.rows.find((row) => row.check === "one velocity_count alert per incident")!;
    assert.equal(vel.status, "OK");
    assert.equal(r.summary.uniqueTransactions, 2);
    assert.equal(r.summary.resendRecords, 1);
    assert.match(r.verdict, /^CLEAN: 2 transactions stored once each, 1 invalid records dead-lettered/);
    const table = renderTable(r);
    const lines = table.split("\n");
    assert.match(lines[0]!, /^CHECK\s+EXPECTED\s+ACTUAL\s+STATUS\s+NOTE$/);
    assert.match(table, /warehouse: missing rows\s+0\s+0\s+OK/);
    assert.match(table, /dlq: reason bad_json\s+1\s+1\s+OK/);
    assert.equal(lines.at(-1), `verdict: ${r.verdict}`);
  });

  it("a missing row fails: exit 1, the row FAIL, its id listed", () => {
    const x = inputs();
    const rows = new RowCountTally();
    rows.addChunk(["a", "b"], new Map([["a", 1]]));
    const r = buildReport({ ...x, warehouse: rows.result });
    assert.equal(r.clean, false);
    assert.equal(r.exitCode, 1);
    assert.equal(r.rows.find((row) => row.check === "missing rows")?.status, "FAIL");
    assert.deepEqual(r.examples.missingRows, ["b"]);
    assert.equal(r.verdict, "FAILED: 1 missing rows");
    assert.match(renderTable(r), /missing rows \(transaction_id\): b/);
  });

  it("warnings (group lag, partial incidents) do not fail the run", () => {
    const r = buildReport(inputs({ groupLag: { group: "g", lag: 5 } }));
    assert.equal(r.clean, true);
    assert.equal(r.rows.find((row) => row.check === "group g lag")?.status, "WARN");
    assert.match(r.verdict, /\(1 warning\)$/);
  });
});

/**
 * Backtests on the real broker: labelled generated traffic on fresh topics, one processor
 * with the default rules run to the end of it, and the live run's recall per rule computed
 * the way `paystream verify` computes it (selectIncidents + reconcileAlerts over the alerts
 * topic, Redis and the warehouse). A backtest of the same rule set over the whole topic —
 * through runBacktest on the Kafka TopicReader, `bin/paystream rules backtest --json`, and the
 * dashboard's POST /api/rules/backtest — reports exactly that recall and the live run's alert
 * counts (same decode, dedup, window and rule code, same per-partition order), and a candidate
 * with a stricter velocity threshold reports fewer velocity alerts and nothing else changed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createAdmin } from "../../src/adapters/kafka/client.ts";
import { KafkaTopicReader } from "../../src/adapters/kafka/reader.ts";
import { RedisAlertReader } from "../../src/adapters/redis/alerts.ts";
import { type BacktestReport, runBacktest } from "../../src/app/backtest.ts";
import { openRulesLog } from "../../src/app/rules-log.ts";
import type { GeneratedRecord } from "../../src/collector/generator.ts";
import type { ScenarioLabel } from "../../src/contracts/labels.ts";
import { parseRules } from "../../src/core/rules.ts";
import {
  type AlertRecord,
  alertIdsToLookUp,
  DEFAULT_CHECKED_RULES,
  InputTally,
  parseAlertRecord,
  parseScenarioLabel,
  reconcileAlerts,
  selectIncidents,
} from "../../src/verify/reconcile.ts";
import { defaultRules, defaultRulesDoc } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  produceLabels,
  produceTraffic,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { freePort, runPaystream, type Service, startService, waitUntil } from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const TOKEN = "backtest-dashboard-token-0123456789abcdef";
/** Covers the whole run: every record was appended within the last few minutes. */
const LAST_MINUTES = 60;

/** What the live run did per rule, as verify sees it. */
interface LiveRule {
  incidents: number;
  detected: number;
  /** Distinct alert ids of this rule on the alerts topic. */
  alerts: number;
}

type RuleRow = BacktestReport["candidate"]["rules"][number];

/** The default rules with velocity_count's threshold raised. */
function stricterDoc(threshold: number): { version: number; rules: Record<string, unknown>[] } {
  const doc = defaultRulesDoc() as { version: number; rules: Record<string, unknown>[] };
  return {
    ...doc,
    rules: doc.rules.map((r) => (r.id === "velocity_count" ? { ...r, threshold } : r)),
  };
}

const runCli = (args: string[]) => runPaystream(["rules", "backtest", ...args]);

function row(result: BacktestReport["candidate"], ruleId: string): RuleRow {
  const r = result.rules.find((x) => x.rule_id === ruleId);
  assert.ok(r, `rule ${ruleId} in the report`);
  return r;
}

describe("rules backtest on recorded traffic (real Kafka, Redis, DuckDB)", () => {
  let topics: TestTopics;
  const rulesTopic = uniqueName("it-backtest-rules");
  let proc: TestProcessor | undefined;
  let sent: GeneratedRecord[];
  let dir: string;
  const live = new Map<string, LiveRule>();
  let liveTotals: { records: number; invalid: number; duplicates: number; late: number; alerts: number };
  const seed = (Date.now() % 1_000_000) + 11;
  const reader = new KafkaTopicReader({ brokers: services.kafka, clientId: "paystream-it-backtest" });

  /** The live run's recall per rule, on verify's code path. */
  async function scoreLiveRun(p: TestProcessor): Promise<void> {
    const input = new InputTally();
    const labels: ScenarioLabel[] = [];
    const topicAlerts: AlertRecord[] = [];
    const readOpts = { timeoutMs: 60_000 };
    const [inputRead] = await Promise.all([
      reader.readToEnd(
        topics.input,
        (m) => input.add(m.partition, m.offset, m.value, Number(m.timestamp)),
        readOpts,
      ),
      reader.readToEnd(
        topics.labels,
        (m) => {
          const l = parseScenarioLabel(m.value.toString("utf8"));
          if (l) labels.push(l);
        },
        readOpts,
      ),
      reader.readToEnd(
        topics.alerts,
        (m) => {
          const a = parseAlertRecord(m.value.toString("utf8"));
          if (a) topicAlerts.push(a);
        },
        readOpts,
      ),
    ]);
    assert.equal(inputRead.records, sent.length);
    const sel = selectIncidents(labels, input.unique, new Set(DEFAULT_CHECKED_RULES));
    assert.equal(sel.partial.length, 0, "every incident is whole in the input");
    const ids = alertIdsToLookUp(sel.incidents, topicAlerts, input.unique);
    const [inRedis, inWarehouse] = await Promise.all([
      new RedisAlertReader(p.redis).existing(ids),
      p.warehouse.countByKey("fraud_alerts", ids),
    ]);
    const result = reconcileAlerts(sel, topicAlerts, input.unique, inRedis, inWarehouse);
    assert.equal(result.runAlertsMissingRedis, 0);
    assert.equal(result.runAlertsMissingWarehouse, 0);
    const distinct = new Map<string, Set<string>>();
    for (const a of topicAlerts) {
      const s = distinct.get(a.rule_id) ?? new Set<string>();
      s.add(a.alert_id);
      distinct.set(a.rule_id, s);
    }
    for (const r of defaultRules().compiled) {
      const outcome = result.byRule.find((x) => x.rule === r.rule.id);
      live.set(r.rule.id, {
        incidents: outcome?.incidents ?? 0,
        detected: outcome ? outcome.incidents - outcome.missing : 0,
        alerts: distinct.get(r.rule.id)?.size ?? 0,
      });
    }
  }

  /** Per rule of the default set: the backtest's recall, incidents, detected and alerts are the live run's. */
  function assertSameAsLive(result: BacktestReport["candidate"], where: string): void {
    for (const [ruleId, l] of live) {
      const r = row(result, ruleId);
      const what = `${where}: ${ruleId}`;
      assert.equal(r.incidents, l.incidents, `${what} incidents`);
      assert.equal(r.detected, l.detected, `${what} detected`);
      assert.equal(r.recall, l.incidents === 0 ? null : l.detected / l.incidents, `${what} recall`);
      assert.equal(r.alerts, l.alerts, `${what} alerts`);
    }
    assert.equal(result.total_alerts, liveTotals.alerts, `${where}: total alerts`);
  }

  function assertSpanIsTheRun(report: BacktestReport, where: string): void {
    assert.equal(report.span.records, liveTotals.records, `${where}: records replayed`);
    assert.equal(report.span.truncated, false);
    assert.equal(report.span.invalid, liveTotals.invalid, `${where}: invalid`);
    assert.equal(report.span.duplicates, liveTotals.duplicates, `${where}: resends dropped`);
    assert.equal(report.span.late, liveTotals.late, `${where}: late`);
    assert.equal(report.labelled, true);
  }

  /** The stricter candidate next to the default rules: fewer velocity alerts, every other rule as live. */
  function assertStricter(report: BacktestReport, where: string): void {
    const cand = report.candidate;
    const cur = report.current;
    assert.ok(cur, `${where}: the current version is reported next to the candidate`);
    assert.equal(cur.version, 1);
    assertSameAsLive(cur, `${where} (current)`);
    const strict = row(cand, "velocity_count");
    assert.ok(
      strict.alerts < row(cur, "velocity_count").alerts,
      `${where}: ${strict.alerts} velocity alerts with threshold 40 < ${row(cur, "velocity_count").alerts} with 10`,
    );
    assert.ok(strict.detected <= row(cur, "velocity_count").detected);
    for (const r of cur.rules) {
      if (r.rule_id === "velocity_count") continue;
      assert.equal(row(cand, r.rule_id).alerts, r.alerts, `${where}: ${r.rule_id} unchanged`);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ps-backtest-"));
    topics = await createTestTopics("it-backtest", 4);
    sent = await produceTraffic(topics.input, {
      seed,
      accounts: 20_000,
      merchants: 2_000,
      seconds: 90,
      ratePerSecond: 300,
      scenarioRates: {
        velocity_burst: 0.01,
        card_testing: 0.01,
        geo_velocity: 0.01,
        merchant_spread: 0.01,
        amount_spike: 0.01,
      },
      faultRates: { duplicate: 0.01, late: 0.005, outOfOrder: 0.005, malformed: 0.005 },
    });
    await produceLabels(topics.labels, sent);
    proc = await startTestProcessor(topics, defaultRules(), {
      groupId: uniqueName("it-backtest-proc"),
      warehouseUrl: `duckdb:${join(dir, "wh.duckdb")}`,
      dir,
    });
    const p = proc;
    await waitFor(
      () => p.processor.totals.records >= sent.length,
      120_000,
      `all ${sent.length} records processed`,
    );
    await p.processor.drain();
    const t = p.processor.totals;
    liveTotals = {
      records: t.records,
      invalid: t.invalid,
      duplicates: t.duplicates,
      late: t.late,
      alerts: t.alerts,
    };
    await scoreLiveRun(p);
    // The default rules as published version 1: the "current" a backtest compares with.
    const log = await openRulesLog({
      brokers: services.kafka,
      clientId: "paystream-it-backtest",
      topic: rulesTopic,
    });
    try {
      await log.publish({ document: defaultRulesDoc(), author: "it", source: "cli" });
    } finally {
      await log.close();
    }
  });

  after(async () => {
    await proc?.close();
    if (topics) await deleteTopics(topics);
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics: [rulesTopic] }).catch(() => {});
    await admin.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`the live run had incidents of every checked rule and found them (seed ${seed})`, (t) => {
    t.diagnostic(`live run: ${JSON.stringify({ ...liveTotals, rules: Object.fromEntries(live) })}`);
    for (const rule of DEFAULT_CHECKED_RULES) {
      const l = live.get(rule);
      assert.ok(l && l.incidents >= 3, `${rule}: enough incidents (${l?.incidents})`);
      assert.ok(l.detected > 0, `${rule}: detected some`);
    }
    assert.ok(liveTotals.late > 0 && liveTotals.duplicates > 0, "late records and resends to replay");
  });

  it("runBacktest on the Kafka reader reports the live run's recall and alerts per rule, exactly", async () => {
    const report = await runBacktest({
      reader,
      topics: { transactions: topics.input, labels: topics.labels },
      candidate: { ruleSet: defaultRules(), version: 1 },
      lastMs: LAST_MINUTES * 60_000,
    });
    assertSpanIsTheRun(report, "runBacktest");
    assert.equal(report.candidate.version, 1);
    assert.equal(report.current, null);
    assertSameAsLive(report.candidate, "runBacktest");
  });

  it("runBacktest: a stricter velocity threshold reports fewer velocity alerts than the current rules", async () => {
    const report = await runBacktest({
      reader,
      topics: { transactions: topics.input, labels: topics.labels },
      candidate: { ruleSet: parseRules(stricterDoc(40)), version: null },
      current: { ruleSet: defaultRules(), version: 1 },
      lastMs: LAST_MINUTES * 60_000,
    });
    assertSpanIsTheRun(report, "runBacktest stricter");
    assert.equal(report.candidate.version, null);
    assertStricter(report, "runBacktest stricter");
  });

  describe("`paystream rules backtest --json`", () => {
    const onTopics = () => [
      "--kafka",
      services.kafka.join(","),
      "--topic",
      topics.input,
      "--labels-topic",
      topics.labels,
      "--rules-topic",
      rulesTopic,
      "--last",
      `${LAST_MINUTES}m`,
      "--json",
    ];

    it("replays the current version and reports the live run's recall per rule", async () => {
      const res = await runCli(onTopics());
      assert.equal(res.code, 0, res.stderr);
      const report = JSON.parse(res.stdout) as BacktestReport;
      assertSpanIsTheRun(report, "CLI");
      assert.equal(report.candidate.version, 1);
      assert.equal(report.current, null, "the candidate is the current version");
      assertSameAsLive(report.candidate, "CLI");
    });

    it("--version of the current version reports it alone", async () => {
      const res = await runCli([...onTopics(), "--version", "1"]);
      assert.equal(res.code, 0, res.stderr);
      const report = JSON.parse(res.stdout) as BacktestReport;
      assert.equal(report.candidate.version, 1);
      assert.equal(report.current, null);
      assertSameAsLive(report.candidate, "CLI --version 1");
    });

    it("a stricter --file candidate reports fewer velocity alerts next to the current version", async () => {
      const file = join(dir, "stricter.json");
      writeFileSync(file, JSON.stringify(stricterDoc(40)));
      const res = await runCli([...onTopics(), "--file", file]);
      assert.equal(res.code, 0, res.stderr);
      const report = JSON.parse(res.stdout) as BacktestReport;
      assertSpanIsTheRun(report, "CLI stricter");
      assert.equal(report.candidate.version, null);
      assertStricter(report, "CLI stricter");
    });

    it("refuses an invalid candidate with its field error before reading anything (exit 1)", async () => {
      const file = join(dir, "invalid.json");
      writeFileSync(file, JSON.stringify(stricterDoc(0)));
      const res = await runCli([...onTopics(), "--file", file]);
      assert.equal(res.code, 1, res.stdout + res.stderr);
      assert.match(res.stderr, /rule "velocity_count": field "threshold" must be/);
      assert.equal(res.stdout, "");
    });
  });

  describe("POST /api/rules/backtest on `paystream dashboard`", () => {
    let dashboard: Service;
    let base: string;
    const post = (body: unknown, token?: string) =>
      fetch(`${base}/api/rules/backtest`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });

    before(async () => {
      const port = freePort();
      base = `http://127.0.0.1:${port}`;
      dashboard = startService(
        "dashboard",
        [
          "dashboard",
          "--kafka",
          services.kafka.join(","),
          "--rules-topic",
          rulesTopic,
          "--topic",
          topics.input,
          "--labels-topic",
          topics.labels,
          "--redis",
          services.redis,
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
        ],
        port,
        { PAYSTREAM_DASHBOARD_TOKEN: TOKEN },
      );
      await waitUntil(
        () => dashboard.output().includes("paystream dashboard on") || dashboard.child.exitCode !== null,
        30_000,
        "dashboard listening",
      );
      assert.equal(dashboard.child.exitCode, null, dashboard.output());
    });

    after(async () => {
      if (dashboard && dashboard.child.exitCode === null) {
        dashboard.child.kill("SIGTERM");
        await dashboard.exited;
      }
    });

    it("needs the token (401 without)", async () => {
      const res = await post({ last_minutes: LAST_MINUTES });
      assert.equal(res.status, 401);
    });

    it("replays the dashboard's topics: the current version's recall per rule is the live run's", async () => {
      const res = await post({ last_minutes: LAST_MINUTES }, TOKEN);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const report = JSON.parse(text) as BacktestReport;
      assertSpanIsTheRun(report, "API");
      assert.equal(report.candidate.version, 1);
      assert.equal(report.current, null);
      assertSameAsLive(report.candidate, "API");
    });

    it("a stricter document reports fewer velocity alerts next to the current version", async () => {
      const res = await post({ last_minutes: LAST_MINUTES, document: stricterDoc(40) }, TOKEN);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const report = JSON.parse(text) as BacktestReport;
      assert.equal(report.candidate.version, null);
      assertStricter(report, "API stricter");
    });

    it("takes a published version as the candidate (the current one: no comparison); 404 unknown, 400 both", async () => {
      const res = await post({ last_minutes: LAST_MINUTES, version: 1 }, TOKEN);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const report = JSON.parse(text) as BacktestReport;
      assert.equal(report.candidate.version, 1);
      assert.equal(report.current, null);
      assertSameAsLive(report.candidate, "API version 1");
      assert.equal((await post({ last_minutes: LAST_MINUTES, version: 99 }, TOKEN)).status, 404);
      const both = await post({ last_minutes: LAST_MINUTES, version: 1, document: stricterDoc(40) }, TOKEN);
      assert.equal(both.status, 400);
    });

    it("answers 422 with the parser's field errors for an invalid document", async () => {
      const res = await post({ last_minutes: LAST_MINUTES, document: stricterDoc(0) }, TOKEN);
      assert.equal(res.status, 422);
      const body = (await res.json()) as { errors: string[] };
      assert.ok(
        body.errors.some((e) => /rule "velocity_count": field "threshold" must be/.test(e)),
        JSON.stringify(body),
      );
    });
  });
});

/**
 * `paystream verify` against a real run: labelled collector traffic on the real broker, a real
 * processor writing to Redis and a DuckDB warehouse, then verify — as a function and as the
 * `bin/paystream verify` command — on a clean run, after harmless re-sends (DLQ and alerts),
 * and after deleting warehouse rows and a Redis alert hash. Also countByKey on the real
 * PostgreSQL and DuckDB.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { createAdmin, createProducer } from "../../src/adapters/kafka/client.ts";
import { openWarehouse } from "../../src/adapters/warehouse/index.ts";
import type { InspectableWarehouse } from "../../src/adapters/warehouse/schema.ts";
import { type VerifyOptions, verify } from "../../src/app/verify.ts";
import type { GeneratedRecord } from "../../src/collector/generator.ts";
import type { Alert } from "../../src/contracts/alert.ts";
import type { Label, ScenarioLabel } from "../../src/contracts/labels.ts";
import { AlertKeys } from "../../src/contracts/redis.ts";
import type { TransactionRow } from "../../src/contracts/rows.ts";
import { alertId } from "../../src/core/alert.ts";
import { renderTable } from "../../src/verify/reconcile.ts";
import { defaultRules } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  produceLabels,
  produceTraffic,
  readTopic,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { runPaystream } from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const rules = defaultRules();

const runCli = (args: string[]) => runPaystream(["verify", ...args]);

describe("paystream verify on a real run (Kafka, Redis, DuckDB)", () => {
  let topics: TestTopics;
  let labelsTopic: string;
  let proc: TestProcessor | undefined;
  let sent: GeneratedRecord[];
  let labels: Label[];
  let dir: string;
  let whPath: string;
  const group = uniqueName("it-verify-proc");
  const seed = (Date.now() % 1_000_000) + 7;

  const options = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({
    brokers: services.kafka,
    topic: topics.input,
    labelsTopic,
    dlqTopic: topics.dlq,
    alertsTopic: topics.alerts,
    redisUrl: services.redis,
    warehouseUrl: `duckdb:${whPath}`,
    timeoutMs: 60_000,
    group,
    ...over,
  });
  const cliArgs = () => [
    "--kafka",
    services.kafka.join(","),
    "--topic",
    topics.input,
    "--labels-topic",
    labelsTopic,
    "--dlq-topic",
    topics.dlq,
    "--alerts-topic",
    topics.alerts,
    "--redis",
    services.redis,
    "--warehouse",
    `duckdb:${whPath}`,
    "--group",
    group,
    "--timeout",
    "60s",
  ];

  const uniqueSent = () =>
    new Set(sent.filter((r) => r.kind !== "malformed" && r.transactionId).map((r) => r.transactionId!));
  const scenarios = () => labels.filter((l): l is ScenarioLabel => l.type === "scenario");

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ps-verify-"));
    whPath = join(dir, "wh.duckdb");
    topics = await createTestTopics("it-verify", 4);
    labelsTopic = uniqueName("it-verify-labels");
    const admin = createAdmin(conn);
    await admin.createTopics({ topics: [{ topic: labelsTopic, partitions: 2, replicas: 1 }] });
    await admin.close();
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
    labels = await produceLabels(labelsTopic, sent);
    proc = await startTestProcessor(topics, rules, { groupId: group, warehouseUrl: `duckdb:${whPath}`, dir });
    const p = proc;
    await waitFor(
      () => p.processor.totals.records >= sent.length,
      120_000,
      `all ${sent.length} records processed`,
    );
    await p.processor.drain();
  });

  after(async () => {
    await proc?.close();
    if (topics) await deleteTopics(topics);
    if (labelsTopic) {
      const admin = createAdmin(conn);
      await admin.deleteTopics({ topics: [labelsTopic] }).catch(() => {});
      await admin.close();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`(a) a clean run is clean (seed ${seed})`, async () => {
    const p = proc!;
    const run = await verify(options({ warehouse: p.warehouse, redis: p.redis }));
    const r = run.report;
    assert.equal(r.clean, true, renderTable(r));
    assert.equal(r.exitCode, 0);
    const s = r.summary;
    assert.equal(s.records, sent.length);
    assert.equal(s.uniqueTransactions, uniqueSent().size);
    assert.equal(s.invalidRecords, sent.filter((x) => x.kind === "malformed").length);
    assert.equal(s.resendRecords, sent.filter((x) => x.kind === "duplicate").length);
    assert.equal(s.missingRows, 0);
    assert.equal(s.duplicatedRows, 0);
    assert.equal(s.dlqMissing, 0);
    assert.equal(s.dlqResends, 0);
    assert.equal(s.incidents, scenarios().length);
    assert.ok(s.incidents >= 10, `enough labelled incidents to check (${s.incidents})`);
    assert.equal(s.incidentProblems, 0);
    assert.equal(s.alertResends, 0);
    // The processor has committed everything: its group is not behind.
    const lag = r.rows.find((row) => row.check === `group ${group} lag`);
    assert.equal(lag?.status, "OK");
    assert.equal(lag?.actual, 0);
    // Every scenario type had its incidents checked.
    for (const rule of [
      "velocity_count",
      "card_testing",
      "geo_velocity",
      "merchant_spread",
      "amount_spike",
    ]) {
      const row = r.rows.find((x) => x.check === `one ${rule} alert per incident`)!;
      assert.equal(row.status, "OK", rule);
      assert.ok(row.expected! > 0, `${rule}: incidents checked`);
    }
  });

  it("(c) a DLQ record and an alert re-sent by a replay are reported as re-sends, still clean", async () => {
    const p = proc!;
    const [dlqRec] = await readTopic(topics.dlq, 1);
    const [alertRec] = await readTopic(topics.alerts, 1);
    assert.ok(dlqRec && alertRec);
    const producer = createProducer(conn);
    await producer.send({
      messages: [
        {
          topic: topics.dlq,
          ...(dlqRec.key === undefined ? {} : { key: dlqRec.key }),
          value: dlqRec.value,
          headers: Object.fromEntries(dlqRec.headers),
        },
        {
          topic: topics.alerts,
          ...(alertRec.key === undefined ? {} : { key: alertRec.key }),
          value: alertRec.value,
          headers: Object.fromEntries(alertRec.headers),
        },
      ],
    });
    await producer.close();
    const r = (await verify(options({ warehouse: p.warehouse, redis: p.redis }))).report;
    assert.equal(r.clean, true, renderTable(r));
    assert.equal(r.summary.dlqResends, 1);
    assert.equal(r.summary.alertResends, 1);
    assert.equal(r.rows.find((x) => x.check === "DLQ re-sends")?.status, "INFO");
  });

  it("the command exits 0 and prints the table on a clean run", async () => {
    // DuckDB allows one process per file: the run is over, release it.
    await proc!.close();
    proc = undefined;
    const res = await runCli(cliArgs());
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const lines = res.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^CHECK\s+EXPECTED\s+ACTUAL\s+STATUS\s+NOTE$/);
    assert.match(
      res.stdout,
      new RegExp(
        `warehouse: transactions stored \\(one per U\\)\\s+${uniqueSent().size}\\s+${uniqueSent().size}\\s+OK`,
      ),
    );
    assert.match(res.stdout, /warehouse: missing rows\s+0\s+0\s+OK/);
    assert.match(res.stdout, /dlq: DLQ re-sends\s+-\s+1\s+INFO/);
    assert.doesNotMatch(res.stdout, /\bFAIL\b/);
    assert.match(lines.at(-1)!, /^verdict: CLEAN: /);
    assert.match(res.stderr, /verify: reading /, "progress goes to stderr");
  });

  it("(b) deleted warehouse rows and a deleted Redis alert hash are reported exactly: exit 1", async () => {
    // An incident's alert (its trigger's id) loses its Redis hash.
    const inc = scenarios().find((l) => l.expected_rule === "card_testing") ?? scenarios()[0]!;
    const lostAlert = alertId(inc.expected_rule, inc.account_id, inc.trigger_transaction_id);
    const { connectRedis } = await import("../../src/adapters/redis/client.ts");
    const redis = await connectRedis({ url: services.redis });
    try {
      assert.equal(await redis.del(AlertKeys.alert(lostAlert)), 1, "the incident's alert hash existed");
    } finally {
      redis.destroy();
    }
    // Five transactions lose their warehouse row: a resent one, an incident's, three ordinary.
    const resent = sent.find((r) => r.kind === "duplicate")!.transactionId!;
    const normal = sent.filter((r) => r.kind === "normal").map((r) => r.transactionId!);
    const lostRows = [
      ...new Set([resent, inc.transaction_ids[0]!, normal[0]!, normal[100]!, normal.at(-1)!]),
    ];
    const db = await DuckDBInstance.create(whPath);
    const c = await db.connect();
    await c.run(
      `DELETE FROM transactions WHERE transaction_id IN (${lostRows.map((id) => `'${id}'`).join(",")})`,
    );
    c.closeSync();
    db.closeSync();

    const r = (await verify(options())).report;
    assert.equal(r.clean, false);
    assert.equal(r.exitCode, 1);
    assert.deepEqual([...r.examples.missingRows].sort(), [...lostRows].sort());
    assert.equal(r.summary.missingRows, lostRows.length);
    assert.equal(r.summary.duplicatedRows, 0);
    assert.deepEqual(r.examples.alertsMissingRedis, [lostAlert]);
    assert.deepEqual(r.examples.incidentProblems, [
      {
        scenario_id: inc.scenario_id,
        rule: inc.expected_rule,
        account_id: inc.account_id,
        topic: 1,
        redis: 0,
        warehouse: 1,
        problem: "missing",
      },
    ]);
    assert.deepEqual(
      r.rows.filter((x) => x.status === "FAIL").map((x) => x.check),
      [
        "transactions stored (one per U)",
        "missing rows",
        `one ${inc.expected_rule} alert per incident`,
        "alerts missing in Redis",
      ],
    );
    assert.equal(r.summary.dlqResends, 1, "still only a re-send on the DLQ side");

    const res = await runCli([...cliArgs(), "--json"]);
    assert.equal(res.code, 1, res.stderr);
    const json = JSON.parse(res.stdout) as {
      clean: boolean;
      exitCode: number;
      summary: { missingRows: number };
    };
    assert.equal(json.clean, false);
    assert.equal(json.exitCode, 1);
    assert.equal(json.summary.missingRows, lostRows.length);
  });

  it("usage and config errors exit 2", async () => {
    const unknownFlag = await runCli(["--no-such-flag"]);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /--no-such-flag/);
    const noFile = await runCli([...cliArgs(), "--warehouse", `duckdb:${join(dir, "absent.duckdb")}`]);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /no DuckDB file/);
    const noTopic = await runCli([...cliArgs(), "--topic", uniqueName("absent")]);
    assert.equal(noTopic.code, 2);
    assert.match(noTopic.stderr, /does not exist/);
  });
});

describe("countByKey on the real PostgreSQL and DuckDB", () => {
  const T = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
  const txRow = (i: number): TransactionRow => ({
    transaction_id: `ck-${i}`,
    account_id: "acct-1",
    schema_version: 1,
    card_bin: "411111",
    card_last4: "1111",
    card_token: "c",
    name_token: "n",
    email_token: "e",
    ip_token: "i",
    device_token: "d",
    amount: "1.00",
    amount_minor: 100,
    currency: "EUR",
    merchant_id: "m",
    merchant_category: "5411",
    country: "FR",
    city: "Paris",
    lat: 1,
    lon: 1,
    event_time: new Date(T).toISOString(),
    event_time_ms: T,
    kafka_partition: 0,
    kafka_offset: String(i),
    processed_at_ms: T,
    is_late: false,
  });
  const alert = (tx: string): Alert => ({
    alertId: alertId("velocity_count", "acct-1", tx),
    ruleId: "velocity_count",
    ruleType: "velocity_count",
    severity: "high",
    accountId: "acct-1",
    transactionId: tx,
    eventTimeMs: T,
    detectedAtMs: T,
    figures: { count: 10 },
  });

  async function exercise(wh: InspectableWarehouse): Promise<void> {
    const rows = Array.from({ length: 25_000 }, (_, i) => txRow(i));
    for (let i = 0; i < rows.length; i += 5000) await wh.writeTransactions(rows.slice(i, i + 5000));
    await wh.writeAlerts([alert("ck-1"), alert("ck-2")]);
    // Stored ids, absent ids and an id with a quote, in more keys than one query takes.
    const asked = [
      ...rows.map((r) => r.transaction_id),
      "absent-1",
      "it's-absent",
      ...rows.slice(0, 3).map((r) => r.transaction_id),
    ];
    const counts = await wh.countByKey("transactions", asked);
    assert.equal(counts.size, 25_000);
    assert.ok([...counts.values()].every((n) => n === 1));
    assert.equal(counts.has("absent-1"), false);
    const ac = await wh.countByKey("fraud_alerts", [alert("ck-1").alertId, alert("ck-3").alertId]);
    assert.deepEqual([...ac], [[alert("ck-1").alertId, 1]]);
    assert.equal((await wh.countByKey("transactions", [])).size, 0);
  }

  it("PostgreSQL", async () => {
    const schema = uniqueName("verify_ck").replace(/[^a-z0-9_]/g, "_");
    const wh = await openWarehouse(services.postgres, { schema });
    try {
      await exercise(wh);
    } finally {
      await wh.close();
      const pg = await import("pg");
      const client = new pg.default.Client({ connectionString: services.postgres });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });

  it("DuckDB", async () => {
    const d = mkdtempSync(join(tmpdir(), "ps-verify-ck-"));
    const wh = await openWarehouse(`duckdb:${join(d, "ck.duckdb")}`);
    try {
      await exercise(wh);
    } finally {
      await wh.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});

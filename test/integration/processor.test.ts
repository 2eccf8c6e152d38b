/**
 * The processor end to end on the real broker and Redis, fed by the collector's generator
 * with labelled ground truth: scenarios → alerts, duplicates → dropped, malformed → DLQ,
 * and no raw PAN in any output.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { GeneratedRecord } from "../../src/collector/generator.ts";
import type { Label, ScenarioLabel } from "../../src/contracts/labels.ts";
import { AlertKeys } from "../../src/contracts/redis.ts";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { parseRules } from "../../src/core/rules.ts";
import { watchRules } from "../../src/processor/rules-file.ts";
import {
  defaultRules as loadDefaultRules,
  defaultRulesDoc as loadDefaultRulesDoc,
  txJson,
} from "../helpers/fixtures.ts";
import {
  createTestTopics,
  deleteTopics,
  produceTraffic,
  readTopic,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";

const defaultRulesDoc = loadDefaultRulesDoc();
const defaultRules = loadDefaultRules();

interface AlertJson {
  alert_id: string;
  rule_id: string;
  account_id: string;
  transaction_id: string;
  masked_card: { bin: string; last4: string; token: string } | null;
}

describe("processor on real Kafka + Redis with labelled collector traffic", () => {
  let topics: TestTopics;
  let proc: TestProcessor;
  let sent: GeneratedRecord[];
  const seed = Date.now() % 1_000_000;
  const labels: Label[] = [];
  let alerts: AlertJson[];

  before(async () => {
    topics = await createTestTopics("it-proc");
    sent = await produceTraffic(topics.input, {
      seed,
      accounts: 20_000,
      merchants: 2_000,
      seconds: 150,
      ratePerSecond: 400,
      // ~8 incidents per type in 150 s of event time over 20K accounts.
      scenarioRates: {
        velocity_burst: 0.01,
        card_testing: 0.01,
        geo_velocity: 0.01,
        merchant_spread: 0.01,
        amount_spike: 0.01,
      },
      faultRates: { duplicate: 0.01, late: 0.005, outOfOrder: 0.005, malformed: 0.005 },
    });
    for (const r of sent) if (r.label) labels.push(r.label);
    proc = await startTestProcessor(topics, defaultRules);
    await waitFor(
      () => proc.processor.totals.records >= sent.length,
      120_000,
      `all ${sent.length} records processed`,
    );
    await proc.processor.drain();
    const alertRecords = await readTopic(topics.alerts, proc.processor.totals.alerts);
    alerts = alertRecords.map((r) => JSON.parse(r.value) as AlertJson);
  });

  after(async () => {
    await proc?.close();
    if (topics) await deleteTopics(topics);
  });

  it(`processes every record exactly once (seed ${seed})`, () => {
    const t = proc.processor.totals;
    assert.equal(t.records, sent.length);
    const malformed = sent.filter((r) => r.kind === "malformed").length;
    const dups = sent.filter((r) => r.kind === "duplicate").length;
    assert.equal(t.invalid, malformed, "invalid = malformed sent");
    // Dedup lives in the windows (docs/processor.md, "Dedup"): a resend is dropped for sure
    // while its event time is less than window + lateness (70 s) behind the newest event seen
    // (69 s here: a partition's newest trails the stream's by a fraction of a second). The
    // collector also resends records over a minute old; those are too late for any window,
    // may be written again, and the warehouse key keeps one row (the next test).
    let newest = Number.NEGATIVE_INFINITY;
    let mustDrop = 0;
    for (const r of sent) {
      if (r.kind === "malformed") continue;
      const t = Date.parse((JSON.parse(r.value) as { event_time: string }).event_time);
      if (r.kind === "duplicate" && newest - t < 69_000) mustDrop++;
      if (t > newest) newest = t;
    }
    assert.ok(mustDrop >= dups * 0.9, `most resends are recent (${mustDrop} of ${dups})`);
    assert.ok(
      t.duplicates >= mustDrop && t.duplicates <= dups,
      `duplicates dropped ${t.duplicates}: every recent resend (${mustDrop}), at most all ${dups}`,
    );
    assert.equal(t.ok + t.duplicates, sent.length - malformed);
  });

  it("every injected velocity, card-testing and geo scenario raises its alert exactly once, on its trigger", () => {
    const scenarios = labels.filter((l): l is ScenarioLabel => l.type === "scenario");
    const must = scenarios.filter((s) =>
      ["velocity_count", "card_testing", "geo_velocity"].includes(s.expected_rule),
    );
    assert.ok(must.length >= 6, `enough scenarios injected (${must.length})`);
    for (const s of must) {
      const mine = alerts.filter((a) => a.account_id === s.account_id && a.rule_id === s.expected_rule);
      assert.equal(
        mine.length,
        1,
        `${s.scenario} ${s.scenario_id} on ${s.account_id}: one ${s.expected_rule} alert`,
      );
      assert.equal(
        mine[0]!.transaction_id,
        s.trigger_transaction_id,
        `${s.scenario_id} fires on its trigger`,
      );
    }
  });

  it("merchant-spread and amount-spike scenarios raise their alerts too", () => {
    for (const s of labels.filter((l): l is ScenarioLabel => l.type === "scenario")) {
      if (s.expected_rule !== "merchant_spread" && s.expected_rule !== "amount_spike") continue;
      const mine = alerts.filter((a) => a.account_id === s.account_id && a.rule_id === s.expected_rule);
      assert.equal(mine.length, 1, `${s.scenario} ${s.scenario_id}: one ${s.expected_rule} alert`);
    }
  });

  it("alerts are in Redis (hash, stream, active accounts) with their masked card", async () => {
    assert.ok(alerts.length > 0);
    for (const a of alerts) {
      const h = await proc.redis.hGetAll(AlertKeys.alert(a.alert_id));
      assert.equal(h.rule_id, a.rule_id);
      assert.equal(h.account_id, a.account_id);
      assert.ok(a.masked_card && a.masked_card.bin.length === 6 && a.masked_card.token.length > 0);
      assert.notEqual(await proc.redis.zScore(AlertKeys.activeAccounts, a.account_id), null);
    }
  });

  it("no duplicate reaches the warehouse and every unique transaction is there once", async () => {
    const unique = new Set(
      sent.filter((r) => r.transactionId && r.kind !== "malformed").map((r) => r.transactionId!),
    );
    const wh = proc.warehouse;
    assert.equal(await wh.countTransactions(), unique.size);
    assert.deepEqual(await wh.duplicateTransactionIds(), []);
    assert.equal(await wh.countAlerts(), alerts.length);
  });

  it("every malformed event lands in the DLQ with its reason and no raw PAN", async () => {
    const expected = labels.filter((l) => l.type === "malformed");
    const dlq = await readTopic(topics.dlq, expected.length);
    assert.equal(dlq.length, expected.length);
    const byReason = (xs: string[]) =>
      xs.reduce((m, r) => m.set(r, (m.get(r) ?? 0) + 1), new Map<string, number>());
    assert.deepEqual(
      byReason(dlq.map((r) => r.headers.get("reason") ?? "")),
      byReason(expected.map((l) => (l.type === "malformed" ? l.reason : ""))),
    );
    for (const r of dlq) {
      assert.ok(r.headers.get("source_offset"), "DLQ record names its source offset");
      assert.deepEqual(findLuhnDigitRuns(r.value), [], "no Luhn-valid digit run in a DLQ value");
    }
  });

  it("no output carries a raw card number", async () => {
    const alertRecords = await readTopic(topics.alerts, alerts.length);
    for (const r of alertRecords) assert.deepEqual(findLuhnDigitRuns(r.value), []);
    for (const a of alerts.slice(0, 200)) {
      const h = await proc.redis.hGetAll(AlertKeys.alert(a.alert_id));
      assert.deepEqual(findLuhnDigitRuns(JSON.stringify(h)), []);
    }
  });
});

describe("rules reload without restart", () => {
  let topics: TestTopics;
  let proc: TestProcessor;

  after(async () => {
    await proc?.close();
    if (topics) await deleteTopics(topics);
  });

  it("a changed rules file takes effect on the running processor and keeps window state", async () => {
    topics = await createTestTopics("it-reload", 2);
    const noVelocity = structuredClone(defaultRulesDoc) as { rules: { id: string; enabled: boolean }[] };
    for (const r of noVelocity.rules) r.enabled = r.id !== "velocity_count" ? r.enabled : false;
    proc = await startTestProcessor(topics, parseRules(noVelocity));
    const file = join(proc.dir, "rules.yaml");
    writeFileSync(file, JSON.stringify(noVelocity));
    const watcher = watchRules({
      path: file,
      maxWindowMs: 60_000,
      onLoad: (r) => proc.processor.setRules(r),
      onError: (err) => assert.fail(err),
    });
    try {
      const burst = async (account: string, startMs: number, n: number) => {
        const { createProducer } = await import("../../src/adapters/kafka/client.ts");
        const { conn } = await import("../helpers/pipeline.ts");
        const producer = createProducer(conn);
        const messages = [];
        for (let i = 0; i < n; i++) {
          messages.push({
            topic: topics.input,
            key: account,
            value: txJson({
              transaction_id: `${account}-${startMs}-${i}`,
              account_id: account,
              amount: "5.00",
              currency: "EUR",
              event_time: new Date(startMs + i * 1000).toISOString(),
            }),
          });
        }
        await producer.send({ messages });
        await producer.close();
      };
      const t0 = Date.now() - 30_000;
      await burst("acct-reload", t0, 12);
      await waitFor(() => proc.processor.totals.records >= 12, 30_000, "first burst processed");
      await proc.processor.drain();
      assert.equal(proc.processor.totals.alerts, 0, "velocity disabled: no alert");

      writeFileSync(file, readFileSync("config/rules.default.yaml", "utf8"));
      await waitFor(
        () => proc.processor.rules.compiled.some((c) => c.id === "velocity_count"),
        10_000,
        "rules reloaded from the file",
      );
      // One more transaction: the window still holds the first 12, so the 13th crosses the threshold.
      await burst("acct-reload", t0 + 12_000, 1);
      await waitFor(() => proc.processor.totals.records >= 13, 30_000, "second burst processed");
      await proc.processor.drain();
      assert.equal(
        proc.processor.alertsByRule.get("velocity_count"),
        1,
        "velocity alert after reload, state kept",
      );
    } finally {
      watcher.close();
    }
  });
});

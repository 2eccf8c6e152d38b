/**
 * Cases end to end on the real broker and Redis, DuckDB as the warehouse: one incident that
 * trips several rules is one case; a burst after the gap is a second case; a status set
 * through the API survives a restart and a full replay (a new consumer group re-reads the
 * topic and raises the same alerts again); the status change reaches fraud_cases through the
 * processor's status sync (without the analyst's note); fraud_cases holds one row per case;
 * precision follows the resolution.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { KafkaSink, KafkaSource } from "../../src/adapters/kafka/log.ts";
import { RedisAlertStore } from "../../src/adapters/redis/alerts.ts";
import { CaseKeys, RedisCaseStore } from "../../src/adapters/redis/cases.ts";
import { connectRedis, type Redis } from "../../src/adapters/redis/client.ts";
import { DuckDbWarehouse } from "../../src/adapters/warehouse/duckdb.ts";
import { alertId } from "../../src/core/alert.ts";
import { scrubText } from "../../src/core/pii-scrub.ts";
import { registerCasesApi } from "../../src/dashboard/cases-api.ts";
import { createLogger } from "../../src/lib/log.ts";
import { createProcessorMetrics } from "../../src/processor/metrics.ts";
import { Processor } from "../../src/processor/processor.ts";
import { defaultRules, testMasker, testRegistry, txJson, waitFor } from "../helpers/fixtures.ts";
import { conn, createTestTopics, deleteTopics, type TestTopics } from "../helpers/pipeline.ts";
import { services, uniqueName } from "../helpers/services.ts";

const MIN = 60_000;
/** What an analyst pastes into a note: the card, the customer's email, the IP it came from. */
const RAW_NOTE = "customer confirmed: card 4111 1111 1111 1111, mail jane.doe@example.com, from 203.0.113.7";
const STORED_NOTE = scrubText(RAW_NOTE).text;

describe("cases end to end", () => {
  let topics: TestTopics;
  let redis: Redis;
  let wh: DuckDbWarehouse;
  const dir = mkdtempSync(join(tmpdir(), "ps-cases-"));
  const account = uniqueName("case-acct");
  const cases = () => new RedisCaseStore(redis, { gapMs: MIN });
  const sinks: KafkaSink[] = [];

  before(async () => {
    topics = await createTestTopics("cases", 1);
    redis = await connectRedis({ url: services.redis });
    wh = await DuckDbWarehouse.open(join(dir, "wh.duckdb"));
  });
  after(async () => {
    for (const s of sinks) await s.close();
    await wh.close();
    redis.destroy();
    await deleteTopics(topics);
    rmSync(dir, { recursive: true, force: true });
  });

  async function startProcessor(groupId: string): Promise<Processor> {
    const p = new Processor(
      {
        source: new KafkaSource(conn, { topic: topics.input, groupId }),
        sink: sinks[sinks.push(new KafkaSink(conn)) - 1]!,
        alertStore: new RedisAlertStore(redis),
        caseStore: cases(),
        warehouse: wh,
        masker: testMasker(),
        metrics: createProcessorMetrics(testRegistry("cases")),
        log: createLogger("it", "warn"),
      },
      // A short sync interval only shortens the wait below; 5 s would do as well.
      { rules: defaultRules(), dlqTopic: topics.dlq, alertsTopic: topics.alerts, caseSyncIntervalMs: 200 },
    );
    await p.start();
    return p;
  }

  /** Ten 1,200.00 payments to ten merchants within 9 s: velocity, amount sum and merchant spread. */
  function burst(startMs: number, tag: string) {
    return Array.from({ length: 10 }, (_, i) => ({
      topic: topics.input,
      key: account,
      value: txJson({
        transaction_id: `${account}-${tag}-${i}`,
        account_id: account,
        amount: "1200.00",
        merchant_id: `m-${tag}-${i}`,
        event_time: new Date(startMs + i * 1000).toISOString(),
      }),
    }));
  }

  it("groups an incident's rule hits into one case, keeps status across a restart and a replay", async () => {
    const t0 = Date.now() - 30 * MIN;
    const sink = new KafkaSink(conn);
    // The second burst comes after every rule's 5 min cooldown, so it raises alerts again.
    await sink.send([...burst(t0, "a"), ...burst(t0 + 10 * MIN, "b")]);
    await sink.close();

    let p = await startProcessor(uniqueName("cases-g1"));
    const store = cases();
    // Through the alert → case index, not list(): list() pages over every case in the shared
    // Redis, where other suites leave tens of thousands of open cases ahead of these.
    const ruleIds = defaultRules().compiled.map((c) => c.id);
    const alertKeys = ["a", "b"].flatMap((tag) =>
      Array.from({ length: 10 }, (_, i) => `${account}-${tag}-${i}`).flatMap((tx) =>
        ruleIds.map((rule) => CaseKeys.alert(alertId(rule, account, tx))),
      ),
    );
    const ofAccount = async () => {
      const ids = new Set((await redis.mGet(alertKeys)).filter((id): id is string => id !== null));
      const found = await Promise.all([...ids].map((id) => store.get(id)));
      return found.filter((c) => c !== undefined);
    };
    await waitFor(
      async () => (await ofAccount()).length === 2 && p.totals.records === 20,
      60_000,
      "two cases filed",
    );
    await p.drain();
    const [first, second] = (await ofAccount()).sort((a, b) => a.firstSeenMs - b.firstSeenMs);
    assert.ok(first && second);
    for (const c of [first, second]) {
      for (const rule of ["velocity_count", "amount_sum", "merchant_spread"]) {
        assert.ok(c.ruleIds.includes(rule), `${c.caseId} has ${rule}: ${c.ruleIds.join(", ")}`);
      }
      assert.equal(c.severity, "high");
      assert.equal(new Set(c.hits.map((h) => h.alertId)).size, c.hits.length);
    }
    assert.ok(first.lastSeenMs < second.firstSeenMs);
    const alertsByCase = [first.hits.length, second.hits.length];

    // The analyst resolves the first case through the API.
    const app = Fastify();
    registerCasesApi(app, { caseStore: store });
    const res = await app.inject({
      method: "POST",
      url: `/api/cases/${first.caseId}`,
      payload: { status: "resolved_fraud", note: RAW_NOTE },
    });
    assert.equal(res.statusCode, 200, res.body);
    const bad = await app.inject({
      method: "POST",
      url: `/api/cases/${first.caseId}`,
      payload: { status: "acknowledged" },
    });
    assert.equal(bad.statusCode, 400);

    // The processor's status sync copies the change into fraud_cases.
    const resolvedAt = Date.parse((res.json() as { history: { at: string }[] }).history[0]!.at);
    const synced = async () => {
      const row = await wh.getCase(first.caseId);
      return row?.status === "resolved_fraud" ? row : undefined;
    };
    await waitFor(async () => (await synced()) !== undefined, 60_000, "the status change in fraud_cases");
    const assertSynced = async (when: string) => {
      const row = await synced();
      assert.ok(row, `${when}: fraud_cases says resolved_fraud`);
      assert.equal(row.status_by, "demo", when);
      assert.equal(row.status_at, resolvedAt, when);
      assert.equal(row.hit_count, alertsByCase[0], when);
      assert.deepEqual(
        JSON.parse(String(row.status_history)),
        [{ status: "resolved_fraud", by: "demo", at: new Date(resolvedAt).toISOString() }],
        when,
      );
      assert.doesNotMatch(JSON.stringify(row), /customer confirmed/, `${when}: no note in the warehouse`);
    };
    await assertSynced("after the sync");

    // Restart on a new group: everything is read and every alert raised again.
    await p.close();
    p = await startProcessor(uniqueName("cases-g2"));
    await waitFor(async () => p.totals.records === 20, 60_000, "the replay processed");
    await p.drain();
    await p.close();

    const after = (await ofAccount()).sort((a, b) => a.firstSeenMs - b.firstSeenMs);
    assert.deepEqual(
      after.map((c) => [c.caseId, c.hits.length, c.status]),
      [
        [first.caseId, alertsByCase[0], "resolved_fraud"],
        [second.caseId, alertsByCase[1], "open"],
      ],
    );
    const got = await app.inject({ method: "GET", url: `/api/cases/${first.caseId}` });
    const json = got.json() as { history: { status: string; by: string; at: string; note?: string }[] };
    assert.deepEqual(json.history, [
      {
        status: "resolved_fraud",
        by: "demo",
        at: json.history[0]?.at,
        note: STORED_NOTE,
      },
    ]);
    assert.doesNotMatch(STORED_NOTE, /jane\.doe@example\.com|4111 1111 1111 1111|203\.0\.113\.7/);
    assert.match(STORED_NOTE, /^customer confirmed/);

    // One warehouse row per case, with every hit.
    const counts = await wh.countByKey("fraud_cases", [first.caseId, second.caseId]);
    assert.deepEqual([...counts.values()], [1, 1]);
    assert.equal((await wh.getCase(first.caseId))?.hit_count, alertsByCase[0]);
    await assertSynced("after the restart and replay");
    assert.equal((await wh.getCase(second.caseId))?.status, "open");

    // Precision: the resolved case counts once as fraud for each rule it hit.
    const precision = (await app.inject({ method: "GET", url: "/api/cases/precision" })).json() as {
      rules: { rule_id: string; fraud: number; precision: number | null }[];
    };
    for (const rule of first.ruleIds) {
      const r = precision.rules.find((x) => x.rule_id === rule);
      assert.ok(r && r.fraud >= 1 && r.precision !== null, rule);
    }
    await app.close();
  });
});

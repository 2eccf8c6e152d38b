/**
 * Issue #11's acceptance for live rules, on the real broker, Redis and PostgreSQL: three
 * processor replicas (separate processes, one group, this test's own topics and rules log)
 * and the rules API on the real dashboard server. A rule change published through the API
 * reaches every replica without a restart and changes which alerts fire, over window state
 * kept from before the change; an invalid version is refused and nothing changes; a shadow
 * rule raises no live alert but is counted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProducer } from "../../src/adapters/kafka/client.ts";
import { RedisAlertReader } from "../../src/adapters/redis/alerts.ts";
import { connectRedis, type Redis } from "../../src/adapters/redis/client.ts";
import { connectPostgres, type PgPool } from "../../src/adapters/warehouse/postgres.ts";
import { openRulesLog } from "../../src/app/rules-log.ts";
import type { RulesLog } from "../../src/contracts/rules-log.ts";
import { mountDashboard } from "../../src/dashboard/server.ts";
import { createServiceHttp, resolveAccess } from "../../src/lib/http.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import { txJson } from "../helpers/fixtures.ts";
import { conn, createTestTopics, deleteTopics, readTopic, type TestTopics } from "../helpers/pipeline.ts";
import {
  freshDatabase,
  getJson,
  type Service,
  startProcessor,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const TOKEN = "rules-live-test-token-0123456789";
const suffix = Math.random().toString(36).slice(2, 8);
const VELOCITY = `velocity_${suffix}`;
// The shadow rule needs 7 transactions in the window, so it can only fire on the 7th, which is
// sent after the publish: a rebalance that replays the first six under the new rules (and so
// would prime a rule that fires on any of them with a cooldown) cannot change what it raises.
const SHADOW = `shadow_velocity_${suffix}`;

const fileDoc = {
  version: 1,
  rules: [{ id: VELOCITY, type: "velocity_count", threshold: 10 }],
};

interface Status {
  rulesVersion: number | null;
  totals: { records: number };
  shadowAlertsByRule: Record<string, number>;
}

describe("live rules on three replicas", () => {
  let topics: TestTopics;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let dir: string;
  let rulesTopic: string;
  const procs: Service[] = [];
  let rulesLog: RulesLog;
  let redis: Redis;
  let pool: PgPool;
  let app: ReturnType<typeof createServiceHttp>;
  let base: string;

  before(async () => {
    topics = await createTestTopics("it-rules-live", 6);
    rulesTopic = uniqueName("it-rules-live-log");
    db = await freshDatabase();
    dir = mkdtempSync(join(tmpdir(), "ps-rules-live-"));
    const file = join(dir, "rules.json");
    writeFileSync(file, JSON.stringify(fileDoc));
    const group = uniqueName("it-rules-live-group");
    for (let i = 0; i < 3; i++) {
      procs.push(startProcessor(topics, group, db.url, ["--rules", file, "--rules-topic", rulesTopic]));
    }
    await Promise.all(procs.map((p) => waitReady(p, 90_000)));

    rulesLog = await openRulesLog({ brokers: services.kafka, clientId: "it-rules-live", topic: rulesTopic });
    redis = await connectRedis({ url: services.redis, onError: () => {} });
    pool = await connectPostgres(db.url);
    app = createServiceHttp({
      registry: createRegistry("rules-live-test", false),
      access: resolveAccess({
        what: "dashboard",
        credentialHint: "--auth-token",
        token: TOKEN,
        bindHost: "127.0.0.1",
        protectedReads: ["/api/"],
      }),
    });
    mountDashboard(app, {
      sources: { collector: undefined, processors: [], alerts: new RedisAlertReader(redis, services.redis) },
      rulesLog,
      maxWindowMs: 60_000,
      intervalMs: 60_000,
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const p of procs) p.child.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.exited));
    await app?.close();
    await rulesLog?.close();
    redis?.destroy();
    await pool?.end();
    await db?.drop();
    if (topics) await deleteTopics(topics);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const statuses = async () => Promise.all(procs.map((p) => getJson<Status>(p.port, "/status")));
  const allOn = async (version: number) =>
    (await statuses()).every((s) => s.status === 200 && s.body?.rulesVersion === version);

  const send = async (account: string, fromIndex: number, n: number, startMs: number) => {
    const producer = createProducer(conn);
    const messages = [];
    for (let i = fromIndex; i < fromIndex + n; i++) {
      messages.push({
        topic: topics.input,
        key: account,
        value: txJson({
          transaction_id: `${account}-${i}`,
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
  const processed = async () => (await statuses()).reduce((n, s) => n + (s.body?.totals.records ?? 0), 0);

  it("publishes through the API to every replica, refuses an invalid version, keeps window state, and keeps shadow alerts off the live outputs", async () => {
    // Every replica started on the file, published once as version 1.
    await waitUntil(() => allOn(1), 30_000, "all three replicas on version 1");
    const listed = await api("GET", "/api/rules");
    assert.equal(listed.status, 200);
    assert.equal(listed.body.current.version, 1);
    assert.equal(listed.body.current.source, "file");
    assert.deepEqual(listed.body.current.document, fileDoc);
    assert.equal((await api("GET", "/api/rules", undefined, null)).status, 401, "reads need credentials");

    // Six transactions on one account: under the threshold of 10, nothing fires.
    const account = `acct-live-${suffix}`;
    const t0 = Date.now() - 30_000;
    await send(account, 0, 6, t0);
    await waitUntil(async () => (await processed()) >= 6, 30_000, "first six processed");

    // Refused: no credentials, then an invalid document (the parser's field error); nothing changes.
    const lowered = {
      version: 1,
      rules: [
        { id: VELOCITY, type: "velocity_count", threshold: 8 },
        { id: SHADOW, type: "velocity_count", threshold: 7, shadow: true },
      ],
    };
    assert.equal((await api("POST", "/api/rules", { document: lowered }, null)).status, 401);
    const invalid = await api("POST", "/api/rules", {
      document: { version: 1, rules: [{ id: VELOCITY, type: "velocity_count", threshold: 0 }] },
    });
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.body.errors, [
      `rule "${VELOCITY}": field "threshold" must be a positive integer <= 10000`,
    ]);
    const tooWide = await api("POST", "/api/rules/validate", {
      document: { version: 1, rules: [{ id: VELOCITY, type: "velocity_count", windowMs: 120_000 }] },
    });
    assert.equal(tooWide.status, 422);
    assert.match(tooWide.body.errors[0], /field "windowMs"/);
    assert.equal((await api("GET", "/api/rules")).body.current.version, 1, "still version 1");
    assert.equal((await rulesLog.history()).length, 1, "nothing was published");

    // Lower the threshold to 8 and add a shadow rule.
    const published = await api("POST", "/api/rules", { document: lowered, comment: "tighter" });
    assert.equal(published.status, 201, JSON.stringify(published.body));
    assert.equal(published.body.version.version, 2);
    assert.equal(published.body.version.source, "api");
    assert.equal(published.body.version.author, "token");
    assert.equal(published.body.version.comment, "tighter");
    const same = await api("POST", "/api/rules", { document: lowered });
    assert.equal(same.status, 200);
    assert.equal(same.body.unchanged, true);
    await waitUntil(() => allOn(2), 30_000, "all three replicas on version 2");

    // Two more: the window still holds the first six, so the 8th crosses the new threshold.
    await send(account, 6, 2, t0);
    await waitUntil(async () => (await processed()) >= 8, 30_000, "all eight processed");
    const [live] = await readTopic(topics.alerts, 1, 30_000);
    assert.ok(live, "a live alert on the alerts topic");
    const alert = JSON.parse(live.value);
    // Alerts of one account share a partition, in order: a shadow alert on this topic would come first.
    assert.equal(alert.rule_id, VELOCITY);
    assert.equal(alert.rule_set_version, 2);
    assert.equal(alert.shadow, false);
    assert.equal(alert.transaction_id, `${account}-7`);
    assert.equal(alert.figures.count, 8);

    // The shadow rule fired on the 7th transaction: counted and stored as a shadow alert only.
    let shadowArea: unknown;
    await waitUntil(
      async () => {
        shadowArea = (await api("GET", "/api/rules/shadow")).body;
        return (shadowArea as { by_rule?: Record<string, number> })?.by_rule?.[SHADOW] === 1;
      },
      30_000,
      "the shadow alert in the shadow area",
    ).catch(async (err: Error) => {
      // What was there instead, and what each replica counted: a count of 0 and one of 2 have
      // different causes.
      const counts = (await statuses()).map((s) => s.body?.shadowAlertsByRule ?? s.status);
      throw new Error(
        `${err.message}; last /api/rules/shadow: ${JSON.stringify(shadowArea)}; replicas counted ${JSON.stringify(counts)}`,
      );
    });
    const shadow = await api("GET", "/api/rules/shadow?limit=10");
    const shadowAlert = shadow.body.latest.find((a: { rule_id: string }) => a.rule_id === SHADOW);
    assert.ok(shadowAlert, "listed among the latest shadow alerts");
    assert.equal(shadowAlert.shadow, true);
    assert.equal(shadowAlert.rule_set_version, 2);
    assert.equal(shadowAlert.transaction_id, `${account}-6`);
    assert.equal((await api("GET", "/api/rules")).body.shadow.by_rule[SHADOW], 1);
    const counted = (await statuses()).reduce((n, s) => n + (s.body?.shadowAlertsByRule[SHADOW] ?? 0), 0);
    assert.equal(counted, 1, "counted by the replica that raised it");
    const metrics = await Promise.all(
      procs.map((p) => fetch(`http://127.0.0.1:${p.port}/metrics`).then((r) => r.text())),
    );
    const series = metrics.flatMap((m) =>
      m
        .split("\n")
        .filter((l) => l.startsWith("paystream_shadow_alerts_total{") && l.includes(`rule="${SHADOW}"`)),
    );
    assert.deepEqual(
      series.map((l) => Number(l.split(" ").at(-1))),
      [1],
    );
    assert.ok(
      metrics.every((m) => !m.includes(`paystream_alerts_total{rule="${SHADOW}"`)),
      "not in the live alert counter",
    );
    assert.ok(metrics.every((m) => /^paystream_rules_version(\{[^}]*\})? 2$/m.test(m)));

    // Not on any live output: the Redis live store, the warehouse.
    const reader = new RedisAlertReader(redis);
    assert.deepEqual([...(await reader.existing([shadowAlert.alert_id, alert.alert_id]))], [alert.alert_id]);
    await waitUntil(
      async () =>
        (await pool.query("select 1 from fraud_alerts where alert_id = $1", [alert.alert_id])).rowCount === 1,
      30_000,
      "the live alert in the warehouse",
    );
    const rows = await pool.query("select count(*)::int as n from fraud_alerts where rule_id = $1", [SHADOW]);
    assert.equal(rows.rows[0].n, 0);

    // History, diff and rollback through the API.
    const history = (await api("GET", "/api/rules")).body.history as { version: number }[];
    assert.deepEqual(
      history.map((v) => v.version),
      [2, 1],
    );
    const diff = await api("GET", "/api/rules/diff?from=1&to=2");
    assert.deepEqual(diff.body, {
      from: 1,
      to: 2,
      changes: [
        {
          rule_id: SHADOW,
          kind: "added",
          fields: [
            { field: "id", from: null, to: SHADOW },
            { field: "type", from: null, to: "velocity_count" },
            { field: "threshold", from: null, to: 7 },
            { field: "shadow", from: null, to: true },
          ],
        },
        { rule_id: VELOCITY, kind: "changed", fields: [{ field: "threshold", from: 10, to: 8 }] },
      ],
    });
    assert.equal((await api("POST", "/api/rules/rollback", { version: 9 })).status, 404);
    const rolled = await api("POST", "/api/rules/rollback", { version: 1, comment: "back" });
    assert.equal(rolled.status, 201);
    assert.equal(rolled.body.version.version, 3);
    assert.equal(rolled.body.version.rollback_of, 1);
    assert.deepEqual(rolled.body.version.document, fileDoc);
    await waitUntil(() => allOn(3), 30_000, "all three replicas on version 3");
  });
});

/**
 * The collector service on the real broker: the control API, live rate changes, and ground
 * truth that matches what was produced exactly.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAdmin, createProducer, waitForLeaders } from "../../src/adapters/kafka/client.ts";
import { KafkaSink } from "../../src/adapters/kafka/log.ts";
import type { CollectorConfig } from "../../src/collector/config.ts";
import { type RunningCollector, startCollector } from "../../src/collector/service.ts";
import type { Label } from "../../src/contracts/labels.ts";
import { decodeTransaction } from "../../src/core/schema.ts";
import { createLogger } from "../../src/lib/log.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  readTopic,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { COLLECTOR_TOKEN, freePort, startService } from "../helpers/processes.ts";
import { uniqueName } from "../helpers/services.ts";

function config(over: Partial<CollectorConfig> = {}): CollectorConfig {
  return {
    brokers: conn.brokers,
    topic: "unused",
    labelsTopic: "unused",
    rate: 0,
    maxRate: 200_000,
    seed: Date.now() % 100_000,
    accounts: 20_000,
    merchants: 1000,
    scenarioRate: 0.05,
    faults: { duplicate: 0.02, late: 0.01, outOfOrder: 0.01, malformed: 0.02 },
    lateMaxMs: 30_000,
    http: { host: "127.0.0.1", port: 0, token: "test-token-0123456789" },
    batchSize: 500,
    lingerMs: 5,
    maxInFlight: 8,
    compression: "none",
    labelsFile: undefined,
    durationMs: 0,
    count: 0,
    ...over,
  };
}

describe("collector on the real broker", () => {
  let topics: TestTopics;
  let running: RunningCollector;
  let sink: KafkaSink;
  const auth = { authorization: "Bearer test-token-0123456789", "content-type": "application/json" };

  before(async () => {
    topics = await createTestTopics("it-coll", 6);
    sink = new KafkaSink(conn, createProducer(conn));
    running = await startCollector(
      config({ topic: topics.input, labelsTopic: topics.alerts }),
      sink,
      createLogger("it", "warn"),
      { registry: createRegistry("it", false) },
    );
  });

  after(async () => {
    await running?.stop();
    await sink?.close();
    if (topics) await deleteTopics(topics);
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
    fetch(`${running.url}${path}`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  it("rejects bad rate input with a 4xx and a reason, and leaves the rate unchanged", async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ messages_per_second: -1 }, 400, /messages_per_second must be >= 0/],
      [{ messages_per_second: 1.5 }, 400, /must be integer/],
      [{ messages_per_second: "100" }, 400, /must be integer/],
      [{ messages_per_second: 200_001 }, 400, /must be <= 200000/],
      [{}, 400, /missing field messages_per_second/],
      [{ messages_per_second: 5, extra: 1 }, 400, /unknown field extra/],
      ["{not json", 400, /JSON/i],
    ];
    for (const [body, status, reason] of cases) {
      const res = await post("/config/rate", body);
      assert.equal(res.status, status, JSON.stringify(body));
      const json = (await res.json()) as { reason: string };
      assert.match(json.reason, reason, JSON.stringify(body));
    }
    const noAuth = await post(
      "/config/rate",
      { messages_per_second: 10 },
      { "content-type": "application/json" },
    );
    assert.equal(noAuth.status, 401);
    const cfg = (await (await fetch(`${running.url}/config`)).json()) as { messages_per_second: number };
    assert.equal(cfg.messages_per_second, 0);
    const badPut = await fetch(`${running.url}/config`, {
      method: "PUT",
      headers: auth,
      body: JSON.stringify({ fault_rates: { duplicate: 2 } }),
    });
    assert.equal(badPut.status, 400);
    const unknown = await post("/scenarios/nope", {});
    assert.equal(unknown.status, 404);
  });

  it("a rate change over HTTP takes effect and is tracked", async () => {
    const res = await post("/config/rate", { messages_per_second: 4000 });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { messages_per_second: 4000, previous: 0 });
    // How fast a change takes effect is a benchmark figure (bench/collector.bench.ts); here:
    // records start flowing, then flow at about the new rate.
    await waitFor(() => running.collector.totals.produced > 0, 10_000, "first acknowledged records");
    // Past the first produce round trips (a new producer and topic), whose backlog is then
    // acknowledged at once: measure the steady flow after them.
    await new Promise((r) => setTimeout(r, 1500));
    const from = running.collector.totals.produced;
    await new Promise((r) => setTimeout(r, 3000));
    const produced = running.collector.totals.produced - from;
    // 3 s at 4000/s: a broad band, since exact accuracy is a benchmark's job.
    assert.ok(produced > 6_000 && produced < 17_000, `produced ${produced} in 3 s`);
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    assert.match(metrics, /paystream_collector_target_rate\S* 4000/);
    const stop = await post("/config/rate", { messages_per_second: 0 });
    assert.equal(stop.status, 200);
  });

  it("produced counts by outcome match the labels exactly, and malformed records are what they claim", async () => {
    // Stop generating (whatever the test before did), then wait until the last in-flight
    // requests are acknowledged.
    assert.equal((await post("/config/rate", { messages_per_second: 0 })).status, 200);
    let last = -1;
    await waitFor(
      async () => {
        const now = running.collector.totals.produced;
        const stable = now === last;
        last = now;
        await new Promise((r) => setTimeout(r, 300));
        return stable;
      },
      10_000,
      "in-flight produce requests acknowledged",
    );
    const totals = running.collector.totals;
    const records = await readTopic(topics.input, totals.produced, 30_000);
    assert.equal(records.length, totals.produced, "every produced record is in the topic");
    const labelRecords = await readTopic(
      topics.alerts,
      Object.values(totals.labels).reduce((a, b) => a + b, 0),
    );
    const labels = labelRecords.map((r) => JSON.parse(r.value) as Label);

    const count = (t: Label["type"]) => labels.filter((l) => l.type === t).length;
    for (const kind of ["duplicate", "late", "out_of_order", "malformed"] as const) {
      assert.equal(count(kind), totals.byKind[kind] ?? 0, `${kind}: labels = produced`);
    }
    assert.ok((totals.byKind.malformed ?? 0) > 0, "some malformed records at a 2% rate");

    // Each malformed label's reason is exactly what decoding reports, counted per reason.
    const malformedReasons = new Map<string, number>();
    const validIds = new Set<string>();
    for (const r of records) {
      const d = decodeTransaction(Buffer.from(r.value), {}, r.timestamp);
      if (d.ok) validIds.add(d.tx.transaction_id);
      else malformedReasons.set(d.reason, (malformedReasons.get(d.reason) ?? 0) + 1);
    }
    const labelled = new Map<string, number>();
    for (const l of labels)
      if (l.type === "malformed") labelled.set(l.reason, (labelled.get(l.reason) ?? 0) + 1);
    assert.deepEqual(malformedReasons, labelled);
    // Every duplicate label names a transaction that was produced more than once.
    for (const l of labels) {
      if (l.type === "duplicate")
        assert.ok(
          validIds.has(l.transaction_id),
          `${JSON.stringify(l)} / ${records
            .filter((r) => r.value.includes(l.transaction_id))
            .map((r) => r.value.slice(0, 300))
            .join(" | ")}`,
        );
    }
  });
});

describe("`paystream collector` when Kafka refuses its records for good", () => {
  const topic = uniqueName("it-coll-small");
  const labels = uniqueName("it-coll-small-labels");

  before(async () => {
    const admin = createAdmin(conn);
    try {
      // Every transaction (~500 bytes) is larger than this topic takes: MESSAGE_TOO_LARGE,
      // which no retry can fix.
      await admin.createTopics({
        topics: [{ topic, partitions: 1, replicas: 1 }],
        configs: [{ name: "max.message.bytes", value: "200" }],
      });
      await admin.createTopics({ topics: [{ topic: labels, partitions: 1, replicas: 1 }] });
      await waitForLeaders(admin, [topic, labels]);
    } finally {
      await admin.close();
    }
  });

  after(async () => {
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics: [topic, labels] }).catch(() => {});
    await admin.close();
  });

  it("stops instead of retrying forever: exits non-zero, names the error code, counts the records as unsent", {
    timeout: 90_000,
  }, async () => {
    const port = freePort();
    const s = startService(
      "collector",
      [
        "collector",
        "--kafka",
        conn.brokers.join(","),
        "--topic",
        topic,
        "--labels-topic",
        labels,
        "--rate",
        "200",
        "--port",
        String(port),
      ],
      port,
      { PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN },
    );
    const timer = setTimeout(() => s.child.kill("SIGKILL"), 80_000);
    const code = await s.exited;
    clearTimeout(timer);
    const out = s.output();
    assert.equal(code, 1, out.slice(-3000));
    assert.match(out, /PS_KAFKA_REJECTED/);
    assert.match(out, /stopping the collector/);
    const totals = JSON.parse(out.split("\n").find((l) => l.startsWith('{"produced"'))!) as {
      produced: number;
      unsent: number;
    };
    assert.equal(totals.produced, 0);
    assert.ok(totals.unsent > 0, `unsent ${totals.unsent}`);
  });
});

/**
 * Failure behaviour on real servers, with processors as child processes: kill -9 during a
 * 20K tx/s run, replicas joining and leaving, Redis / PostgreSQL / Kafka outages. Every
 * scenario ends the same way: the warehouse holds each unique transaction exactly once, and
 * `paystream verify` (rows, DLQ, alerts per labelled incident) exits 0.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { openWarehouse } from "../../src/adapters/warehouse/index.ts";
import { decodeTransaction } from "../../src/core/schema.ts";
import { createTestTopics, deleteTopics, readTopic } from "../helpers/pipeline.ts";
import {
  freshDatabase,
  getJson,
  kill9,
  type PipelineRun,
  type ProcessorStatus,
  runVerify,
  serviceCtl,
  startCollector,
  startProcessor,
  stopGracefully,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { uniqueName } from "../helpers/services.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Run = PipelineRun;

async function newRun(prefix: string, partitions = 12): Promise<Run> {
  // A test before may have failed with a service stopped: every test starts with all up.
  for (const name of ["kafka", "redis", "postgres"] as const) serviceCtl("start-one", name);
  return {
    topics: await createTestTopics(prefix, partitions),
    db: await freshDatabase(),
    group: uniqueName(`${prefix}-group`),
    seed: Date.now() % 1_000_000,
    procs: [],
  };
}

async function cleanup(run: Run | undefined): Promise<void> {
  if (!run) return;
  for (const p of run.procs) if (p.child.exitCode === null) await kill9(p);
  await run.db.drop();
  await deleteTopics(run.topics);
}

/** Group lag per partition, measured from the broker: end offsets minus committed offsets. */
async function partitionLags(topic: string, group: string): Promise<bigint[]> {
  const { Consumer } = await import("@platformatic/kafka");
  const { services } = await import("../helpers/services.ts");
  // OffsetFetch and ListOffsets only: this client never joins the group.
  const c = new Consumer({ clientId: "it-lag", bootstrapBrokers: services.kafka, groupId: group });
  try {
    const ends = (await c.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const partitions = ends.map((_, i) => i);
    const committed = (await c.listCommittedOffsets({ topics: [{ topic, partitions }] })).get(topic) ?? [];
    return ends.map((end, i) => {
      const c0 = committed[i] ?? -1n;
      return end - (c0 < 0n ? 0n : c0);
    });
  } finally {
    await c.close();
  }
}

const groupLag = async (topic: string, group: string): Promise<bigint> =>
  (await partitionLags(topic, group)).reduce((a, b) => a + b, 0n);

/**
 * Waits until the group has committed everything in the topic. A deadline, not a timing
 * check: after 5 kill -9s with 10-minute recovery replays, draining 500K records on two cores
 * shared with the broker, Redis and PostgreSQL took over 120 s once in CI (right after the
 * 3-broker failover test); a processor that is stuck still fails here, and the failure shows
 * the lag per partition and what each live processor reported, so a stall can be told from
 * slowness.
 */
async function waitCaughtUp(run: Run, timeoutMs = 300_000): Promise<void> {
  try {
    await waitUntil(
      async () => (await groupLag(run.topics.input, run.group)) === 0n,
      timeoutMs,
      "group lag 0",
    );
  } catch (err) {
    const lags = await partitionLags(run.topics.input, run.group).catch((e: Error) => e.message);
    const live = run.procs.filter((p) => p.name === "processor" && p.child.exitCode === null);
    const reports = await Promise.all(
      live.map(async (p) => {
        const status = await getJson<unknown>(p.port, "/status").catch((e: Error) => e.message);
        return `processor :${p.port} /status ${JSON.stringify(status)}\nlast output:\n${p.output().slice(-3000)}`;
      }),
    );
    throw new Error(
      `${(err as Error).message}; lag per partition ${Array.isArray(lags) ? lags.join(",") : lags}\n${reports.join("\n")}`,
    );
  }
}

/** What the input topic holds vs what the warehouse holds: unique ids exactly once each. */
async function reconcile(run: Run): Promise<{ unique: number; alertIds: string[] }> {
  const ends = await readTopicAll(run.topics.input);
  const ids = new Set<string>();
  for (const r of ends) {
    // At its append time, as the processor decides: future-dated and too-old records are refused.
    const d = decodeTransaction(Buffer.from(r.value), {}, r.timestamp);
    if (d.ok) ids.add(d.tx.transaction_id);
  }
  const wh = await openWarehouse(run.db.url);
  try {
    assert.equal(
      await wh.countTransactions(),
      ids.size,
      "every unique transaction is in the warehouse (none lost)",
    );
    assert.deepEqual(await wh.duplicateTransactionIds(), [], "no transaction stored twice");
    return { unique: ids.size, alertIds: await wh.alertIds() };
  } finally {
    await wh.close();
  }
}

/** The user-facing check: `paystream verify` on this run exits 0 (clean). */
async function verifyClean(run: Run): Promise<void> {
  const v = await runVerify(run.topics, run.group, run.db.url);
  assert.equal(v.code, 0, `paystream verify:\n${v.stdout}\n${v.stderr.slice(-2000)}`);
  assert.match(v.stdout, /missing rows/i);
}

async function readTopicAll(topic: string) {
  const { Consumer } = await import("@platformatic/kafka");
  const { services } = await import("../helpers/services.ts");
  const c = new Consumer({
    clientId: "it-count",
    bootstrapBrokers: services.kafka,
    groupId: uniqueName("it-count"),
  });
  const ends = await c.listOffsets({ topics: [topic] });
  await c.close();
  const total = Number((ends.get(topic) ?? []).reduce((a, b) => a + b, 0n));
  const records = await readTopic(topic, total, 120_000);
  assert.equal(records.length, total, "read the whole input topic");
  return records;
}

/** The same topic processed again by a fresh group into a fresh database: the undisturbed reference. */
async function undisturbedAlertIds(run: Run, extra: string[] = []): Promise<string[]> {
  const db = await freshDatabase();
  const ref: Run = { ...run, db, group: uniqueName("it-ref"), procs: [] };
  const p = startProcessor(run.topics, ref.group, db.url, extra);
  try {
    await waitReady(p);
    await waitCaughtUp(ref);
    await stopGracefully(p);
    const wh = await openWarehouse(db.url);
    try {
      return await wh.alertIds();
    } finally {
      await wh.close();
    }
  } finally {
    if (p.child.exitCode === null) await kill9(p);
    await db.drop();
  }
}

describe("failures on real servers lose and double nothing", () => {
  let run: Run | undefined;
  after(async () => cleanup(run));

  it("kill -9 of the processor at 5 random moments during a 20K tx/s run", async (t) => {
    run = await newRun("it-kill");
    // Replay the whole (short) run on recovery so history-based rules match the reference exactly.
    const extra = ["--recovery-span", "10m"];
    let proc = startProcessor(run.topics, run.group, run.db.url, extra);
    run.procs.push(proc);
    await waitReady(proc);
    const collector = startCollector(run.topics, 20_000, 500_000, run.seed);
    run.procs.push(collector);
    for (let k = 0; k < 5; k++) {
      await sleep(2000 + Math.random() * 3000);
      await kill9(proc);
      proc = startProcessor(run.topics, run.group, run.db.url, extra);
      run.procs.push(proc);
      await waitReady(proc);
    }
    assert.equal(await collector.exited, 0, collector.output());
    await waitCaughtUp(run);
    // Whether the stall watchdog had to rejoin on the way (docs/processor.md): evidence for the
    // rare stall this test used to hit, not a pass/fail condition.
    const stalls = await fetch(`http://127.0.0.1:${proc.port}/metrics`)
      .then((r) => r.text())
      .then((m) => /^paystream_partition_stalls_total(?:\{[^}]*\})? (\S+)$/m.exec(m)?.[1] ?? "absent")
      .catch((e: Error) => `unreadable: ${e.message}`);
    t.diagnostic(`stall watchdog detections in the last processor: ${stalls}`);
    await stopGracefully(proc);
    const { unique, alertIds } = await reconcile(run);
    assert.ok(unique > 400_000, `unique transactions ${unique}`);
    assert.ok(alertIds.length > 0);
    await verifyClean(run);
    assert.deepEqual(alertIds, await undisturbedAlertIds(run, extra), "same alert set as an undisturbed run");
  });

  it("two replicas, a third joins mid-run, then one leaves", async () => {
    await cleanup(run);
    run = await newRun("it-rebalance");
    // With the shared Redis dedup tier (--dedup-shared) on: the same guarantees hold with it.
    const shared = ["--dedup-shared"];
    const a = startProcessor(run.topics, run.group, run.db.url, shared);
    const b = startProcessor(run.topics, run.group, run.db.url, shared);
    run.procs.push(a, b);
    await Promise.all([waitReady(a), waitReady(b)]);
    const collector = startCollector(run.topics, 5000, 150_000, run.seed);
    run.procs.push(collector);
    await sleep(8000);
    const c = startProcessor(run.topics, run.group, run.db.url, shared);
    run.procs.push(c);
    await waitReady(c);
    await sleep(8000);
    assert.equal(await stopGracefully(a), 0, "a replica leaving stops cleanly");
    assert.equal(await collector.exited, 0);
    await waitCaughtUp(run);
    const statuses = await Promise.all([b, c].map((p) => getJson<ProcessorStatus>(p.port, "/status")));
    assert.ok(
      statuses.every((s) => (s.body?.totals.records ?? 0) > 0),
      "both remaining replicas did work",
    );
    await Promise.all([stopGracefully(b), stopGracefully(c)]);
    await reconcile(run);
    await verifyClean(run);
  });

  /**
   * One dependency down for 30 s in the middle of a run: the processor keeps running, says
   * not ready (naming the dependency) in /readyz, counts the failures in /metrics, logs
   * them, holds its offsets, and afterwards catches up with nothing lost or doubled.
   */
  async function outage(name: "redis" | "postgres" | "kafka", sinkLabel: RegExp): Promise<void> {
    await cleanup(run);
    run = await newRun(`it-out-${name}`, 6);
    const r = run;
    const proc = startProcessor(r.topics, r.group, r.db.url);
    r.procs.push(proc);
    await waitReady(proc);
    // 3000 tx/s for 50 s: traffic before, during and after the outage.
    const collector = startCollector(r.topics, 3000, 150_000, r.seed);
    r.procs.push(collector);
    await sleep(8000);
    serviceCtl("stop-one", name);
    const down = Date.now();
    await waitUntil(
      async () => (await getJson(proc.port, "/readyz")).status === 503,
      20_000,
      `processor not ready while ${name} is down`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; exit ${proc.child.exitCode}; output:\n${proc.output().slice(-3000)}`);
    });
    const ready = await getJson<{ reasons?: unknown }>(proc.port, "/readyz");
    if (name !== "kafka") assert.match(JSON.stringify(ready.body), sinkLabel, "/readyz names the dependency");
    // Whatever was already durable may still commit; after that, nothing may.
    await sleep(3000);
    const held = await committed(r).catch(() => undefined);
    await sleep(Math.max(0, down + 30_000 - Date.now()));
    assert.equal(proc.child.exitCode, null, `the processor kept running:\n${proc.output().slice(-3000)}`);
    if (name !== "kafka") {
      assert.deepEqual(await committed(r), held, "offsets held while an output is down");
      const metrics = await (await fetch(`http://127.0.0.1:${proc.port}/metrics`)).text();
      const failures = [
        ...metrics.matchAll(/^paystream_sink_errors_total\{[^}]*sink="([^"]+)"[^}]*\} (\d+)/gm),
      ]
        .filter((m) => sinkLabel.test(m[1]!))
        .reduce((a, m) => a + Number(m[2]), 0);
      assert.ok(failures > 0, `sink_errors_total counts the ${name} failures`);
      assert.ok(
        [...metrics.matchAll(/^paystream_dependency_up\{[^}]*dependency="([^"]+)"[^}]*\} 0$/gm)].some((m) =>
          sinkLabel.test(m[1]!),
        ),
        `paystream_dependency_up is 0 for ${name} during the outage`,
      );
    }
    assert.match(proc.output(), /retrying/, "the outage is in the log");
    serviceCtl("start-one", name);
    await waitReady(proc, 60_000);
    assert.equal(await collector.exited, 0, collector.output());
    await waitCaughtUp(r);
    assert.equal(await stopGracefully(proc), 0, proc.output().slice(-3000));
    const { unique } = await reconcile(r);
    assert.ok(unique > 100_000, `unique transactions ${unique}`);
    await verifyClean(r);
  }

  // Redis holds alerts, cases (filed per batch, status sync) and, with --dedup-shared, dedup claims.
  it("Redis stopped for 30 s mid-run", () => outage("redis", /dedup|alert_store|case_store/));
  it("PostgreSQL stopped for 30 s mid-run", () => outage("postgres", /postgres/));
  it("the Kafka broker down for 30 s and restarted mid-run", () => outage("kafka", /kafka/));
});

/** The group's committed offsets per partition, from the broker. */
async function committed(run: Run): Promise<string> {
  const { Consumer } = await import("@platformatic/kafka");
  const { services } = await import("../helpers/services.ts");
  const c = new Consumer({ clientId: "it-committed", bootstrapBrokers: services.kafka, groupId: run.group });
  try {
    const ends = (await c.listOffsets({ topics: [run.topics.input] })).get(run.topics.input) ?? [];
    const partitions = ends.map((_, i) => i);
    const got = await c.listCommittedOffsets({ topics: [{ topic: run.topics.input, partitions }] });
    return (got.get(run.topics.input) ?? []).map(String).join(",");
  } finally {
    await c.close();
  }
}

/**
 * Failure behaviour on real servers, with processors as child processes: kill -9 during a
 * 20K tx/s run, replicas joining and leaving, Redis / PostgreSQL / Kafka outages. Every
 * scenario ends with the same reconciliation: nothing lost, nothing doubled.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { openWarehouse } from "../../src/adapters/warehouse/index.ts";
import { decodeTransaction } from "../../src/core/schema.ts";
import { createTestTopics, deleteTopics, readTopic, type TestTopics } from "../helpers/pipeline.ts";
import {
  freshDatabase,
  getJson,
  kill9,
  type ProcessorStatus,
  type Service,
  startCollector,
  startProcessor,
  stopGracefully,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { uniqueName } from "../helpers/services.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  topics: TestTopics;
  db: { url: string; drop: () => Promise<void> };
  group: string;
  seed: number;
  procs: Service[];
}

async function newRun(prefix: string, partitions = 12): Promise<Run> {
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

/** Group lag measured from the broker: end offsets minus the group's committed offsets. */
async function groupLag(topic: string, group: string): Promise<bigint> {
  const { Consumer } = await import("@platformatic/kafka");
  const { services } = await import("../helpers/services.ts");
  // OffsetFetch and ListOffsets only: this client never joins the group.
  const c = new Consumer({ clientId: "it-lag", bootstrapBrokers: services.kafka, groupId: group });
  try {
    const ends = (await c.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const partitions = ends.map((_, i) => i);
    const committed = (await c.listCommittedOffsets({ topics: [{ topic, partitions }] })).get(topic) ?? [];
    let lag = 0n;
    ends.forEach((end, i) => {
      const c0 = committed[i] ?? -1n;
      lag += end - (c0 < 0n ? 0n : c0);
    });
    return lag;
  } finally {
    await c.close();
  }
}

/** Waits until the group has committed everything in the topic. */
async function waitCaughtUp(run: Run, timeoutMs = 120_000): Promise<void> {
  await waitUntil(async () => (await groupLag(run.topics.input, run.group)) === 0n, timeoutMs, "group lag 0");
}

/** What the input topic holds vs what the warehouse holds: unique ids exactly once each. */
async function reconcile(run: Run): Promise<{ unique: number; alertIds: string[] }> {
  const ends = await readTopicAll(run.topics.input);
  const ids = new Set<string>();
  for (const r of ends) {
    const d = decodeTransaction(Buffer.from(r.value));
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
  const p = startProcessor(run.topics.input, ref.group, db.url, extra);
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

  it("kill -9 of the processor at 5 random moments during a 20K tx/s run", async () => {
    run = await newRun("it-kill");
    // Replay the whole (short) run on recovery so history-based rules match the reference exactly.
    const extra = ["--recovery-span", "10m"];
    let proc = startProcessor(run.topics.input, run.group, run.db.url, extra);
    run.procs.push(proc);
    await waitReady(proc);
    const collector = startCollector(run.topics.input, run.topics.alerts, 20_000, 500_000, run.seed);
    run.procs.push(collector);
    for (let k = 0; k < 5; k++) {
      await sleep(2000 + Math.random() * 3000);
      await kill9(proc);
      proc = startProcessor(run.topics.input, run.group, run.db.url, extra);
      run.procs.push(proc);
      await waitReady(proc);
    }
    assert.equal(await collector.exited, 0, collector.output());
    await waitCaughtUp(run);
    await stopGracefully(proc);
    const { unique, alertIds } = await reconcile(run);
    assert.ok(unique > 400_000, `unique transactions ${unique}`);
    assert.ok(alertIds.length > 0);
    assert.deepEqual(alertIds, await undisturbedAlertIds(run, extra), "same alert set as an undisturbed run");
  });

  it("two replicas, a third joins mid-run, then one leaves", async () => {
    await cleanup(run);
    run = await newRun("it-rebalance");
    const a = startProcessor(run.topics.input, run.group, run.db.url);
    const b = startProcessor(run.topics.input, run.group, run.db.url);
    run.procs.push(a, b);
    await Promise.all([waitReady(a), waitReady(b)]);
    const collector = startCollector(run.topics.input, run.topics.alerts, 5000, 150_000, run.seed);
    run.procs.push(collector);
    await sleep(8000);
    const c = startProcessor(run.topics.input, run.group, run.db.url);
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
  });
});

/**
 * The Processor's commit discipline on the embedded adapters: an offset is committed only once
 * every output of its batch and of every earlier batch is durable, in batch order; a failing
 * warehouse holds commits back while the processor retries and reports the dependency; close()
 * drains everything handed over before it lets go of the source.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import {
  accountsInDistinctPartitions,
  append,
  endOffsets,
  metricValue,
  settle,
  startRig,
  txRecord,
  until,
} from "./harness.ts";

const BATCH_DONE = [
  "paystream_batch_duration_seconds",
  {},
  "paystream_batch_duration_seconds_count",
] as const;

describe("Processor: commit order across batches", () => {
  it("does not commit batch 2 before batch 1 when batch 2's writes finish first (same partition)", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    wh.hold();
    const b1 = append(rig.log, [txRecord("acct-a", "a-1", 0), txRecord("acct-a", "a-2", 1)]);
    await until(() => wh.held.length === 1, "batch 1's warehouse write to start");
    const b2 = append(rig.log, [txRecord("acct-a", "a-3", 2)]);
    await until(() => wh.held.length === 2, "batch 2's warehouse write to start");
    assert.deepEqual(
      wh.held.map((w) => w.ids),
      [["a-1", "a-2"], ["a-3"]],
      "two batches, each its own write in flight",
    );
    const p = b1[0]!.partition;
    assert.equal(b2[0]!.partition, p);
    await settle();
    assert.deepEqual(rig.source.commits, [], "nothing is committed while every write is in flight");

    // Batch 2's write completes; batch 1's is still running.
    wh.held[1]!.release();
    await until(async () => (await metricValue(rig.registry, ...BATCH_DONE)) === 1, "batch 2's writes done");
    assert.equal(wh.rowWrites.get("a-3"), 1);
    await settle();
    assert.deepEqual(rig.source.commits, [], "batch 2 is durable but waits for batch 1's commit");

    wh.held[0]!.release();
    await until(() => rig.source.commits.length === 2, "both commits");
    assert.deepEqual(rig.source.events, [
      `commit ${p}:${b1[1]!.offset + 1n}`,
      `commit ${p}:${b2[0]!.offset + 1n}`,
    ]);
  });

  it("keeps batch order across partitions too: batch 2 on another partition waits for batch 1", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    const [acctX, acctY] = accountsInDistinctPartitions(2) as [string, string];
    wh.hold();
    const b1 = append(rig.log, [txRecord(acctX, "x-1", 0)]);
    await until(() => wh.held.length === 1, "batch 1's write to start");
    const b2 = append(rig.log, [txRecord(acctY, "y-1", 0)]);
    await until(() => wh.held.length === 2, "batch 2's write to start");
    assert.notEqual(b1[0]!.partition, b2[0]!.partition);

    wh.held[1]!.release();
    await until(async () => (await metricValue(rig.registry, ...BATCH_DONE)) === 1, "batch 2's writes done");
    await settle();
    assert.deepEqual(rig.source.commits, [], "batch 2's partition is not committed ahead of batch 1");

    wh.held[0]!.release();
    await until(() => rig.source.commits.length === 2, "both commits");
    assert.deepEqual(rig.source.events, [
      `commit ${b1[0]!.partition}:${b1[0]!.offset + 1n}`,
      `commit ${b2[0]!.partition}:${b2[0]!.offset + 1n}`,
    ]);
  });
});

describe("Processor: drain on stop", () => {
  it("close() returns only once every batch handed over is durable and committed; nothing is lost", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    const accounts = accountsInDistinctPartitions(3);
    wh.hold();
    const sent = [];
    for (let b = 0; b < 3; b++) {
      sent.push(
        ...append(
          rig.log,
          accounts.map((a, i) => txRecord(a, `${a}-b${b}`, b * 10 + i)),
        ),
      );
      await until(() => wh.held.length === b + 1, `batch ${b + 1}'s write to start`);
    }
    await until(() => rig.processor.totals.records === sent.length, "every record handed over");

    let closed = false;
    const closing = rig.processor.close().then(() => {
      closed = true;
    });
    await until(() => rig.source.events.includes("stopped"), "the source to stop fetching");
    await settle();
    assert.equal(closed, false, "close() waits for the writes in flight");
    assert.deepEqual(rig.source.commits, []);

    wh.releaseAll();
    await closing;
    for (const r of sent) {
      const id = JSON.parse(r.value.toString()).transaction_id as string;
      assert.equal(wh.rowWrites.get(id), 1, `${id} durable once`);
    }
    assert.deepEqual(rig.source.committed(), endOffsets(sent), "every partition committed to its end");
    const events = rig.source.events;
    assert.equal(events.at(-1), "close", "the source is closed last");
    assert.ok(
      events.indexOf("stopped") < events.findIndex((e) => e.startsWith("commit")),
      "fetching stopped before the drain",
    );
  });
});

describe("Processor: warehouse outages", () => {
  it("retries a failing warehouse, reports it in health and metrics, and commits nothing meanwhile", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    wh.setFailing(true);
    const sent = append(rig.log, [
      txRecord("acct-a", "a-1", 0),
      txRecord("acct-b", "b-1", 0),
      txRecord("acct-a", "a-2", 5),
    ]);
    await until(() => wh.calls.filter((c) => c.outcome === "failed").length >= 3, "three failed attempts");
    assert.match(rig.processor.health.get("memwh") ?? "", /connection refused/, "health names the warehouse");
    assert.equal(await metricValue(rig.registry, "paystream_dependency_up", { dependency: "memwh" }), 0);
    assert.ok((await metricValue(rig.registry, "paystream_sink_errors_total", { sink: "memwh" })) >= 3);
    assert.deepEqual(rig.source.commits, [], "no commit while the warehouse fails");
    assert.equal(wh.rows.size, 0);

    wh.setFailing(false);
    const want = endOffsets(sent);
    await until(() => rig.source.committed().size === want.size, "the commit after recovery");
    assert.deepEqual(rig.source.committed(), want);
    assert.deepEqual(rig.processor.health, new Map(), "healthy again");
    assert.equal(await metricValue(rig.registry, "paystream_dependency_up", { dependency: "memwh" }), 1);
    assert.deepEqual(
      new Map(wh.rowWrites),
      new Map([
        ["a-1", 1],
        ["b-1", 1],
        ["a-2", 1],
      ]),
      "each row written once, after the outage",
    );
  });

  it("retries the same rows after a few failures, then commits once they are durable", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    wh.failNext(3);
    const sent = append(rig.log, [txRecord("acct-a", "a-1", 0), txRecord("acct-a", "a-2", 1)]);
    await until(() => rig.source.commits.length === 1, "the commit");
    assert.deepEqual(
      wh.calls.map((c) => [c.outcome, c.ids]),
      [
        ["failed", ["a-1", "a-2"]],
        ["failed", ["a-1", "a-2"]],
        ["failed", ["a-1", "a-2"]],
        ["ok", ["a-1", "a-2"]],
      ],
    );
    assert.deepEqual(rig.source.committed(), endOffsets(sent));
    assert.deepEqual(rig.processor.health, new Map());
  });

  it("stops (onFatal) without committing when a write fails in a way retrying cannot fix", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    rig.warehouse.failNext(1, false);
    append(rig.log, [txRecord("acct-a", "a-1", 0)]);
    await until(() => rig.fatal.length === 1, "the processor to give up");
    const err = rig.fatal[0];
    assert.ok(isPaystreamError(err) && err.code === ErrorCodes.WAREHOUSE_UNAVAILABLE && !err.retriable);
    assert.equal(rig.warehouse.calls.length, 1, "not retried");
    await settle();
    assert.deepEqual(rig.source.commits, [], "the failed batch is not committed");
  });
});

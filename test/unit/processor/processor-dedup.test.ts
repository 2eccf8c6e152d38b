/**
 * Duplicates from the source (a resend of a transaction_id) are dropped before windows, rules
 * and the warehouse, whether the copy arrives in the same batch or a later one.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InMemorySharedDedupStore } from "../../../src/core/dedup.ts";
import { oneRule } from "../../helpers/fixtures.ts";
import {
  append,
  buildProcessor,
  endOffsets,
  MemoryWarehouse,
  metricValue,
  NOW,
  newLog,
  ReplayingSource,
  settle,
  startRig,
  txRecord,
  until,
} from "./harness.ts";

describe("Processor: duplicates", () => {
  it("keeps one row and one window entry per transaction_id, in the same batch and across batches", async (t) => {
    // Three transactions in the window raise an alert: a duplicate counted in the window
    // would make the alert fire one transaction early.
    const rig = await startRig({ rules: oneRule("velocity_count", { threshold: 3 }) });
    t.after(() => rig.close());
    const a1 = txRecord("acct-d", "d-1", 0);
    const a2 = txRecord("acct-d", "d-2", 1);
    const a3 = txRecord("acct-d", "d-3", 2);

    const first = append(rig.log, [a1, a1, a2]);
    await until(() => rig.source.commits.length === 1, "batch 1 committed");
    assert.equal(
      rig.processor.totals.alerts,
      0,
      "d-1 twice and d-2: two transactions in the window, no alert",
    );

    const second = append(rig.log, [a1, a3]);
    const want = endOffsets([...first, ...second]);
    await until(
      () => rig.source.committed().get(second[0]!.partition) === want.get(second[0]!.partition),
      "batch 2 committed",
    );

    assert.deepEqual(
      new Map(rig.warehouse.rowWrites),
      new Map([
        ["d-1", 1],
        ["d-2", 1],
        ["d-3", 1],
      ]),
      "one row per transaction_id",
    );
    const alerts = [...rig.warehouse.alerts.values()];
    assert.deepEqual(
      alerts.map((a) => [a.transactionId, a.figures.count]),
      [["d-3", 3]],
      "the window holds each transaction once",
    );
    assert.equal(rig.processor.totals.duplicates, 2);
    assert.equal(rig.processor.totals.ok, 3);
    assert.equal(await metricValue(rig.registry, "paystream_dedup_hits_total"), 2);
    assert.equal(
      await metricValue(rig.registry, "paystream_processor_records_total", { outcome: "duplicate" }),
      2,
    );
  });
});

describe("Processor: dedup in the window (the default, no shared tier)", () => {
  const ACCOUNT = "acct-w";

  it("a redelivered record (the same offset) is written again, not dropped; a resend of it still is", async (t) => {
    const log = newLog();
    const group = new Map<number, bigint>();
    const warehouse = new MemoryWarehouse();
    const rig = buildProcessor((l) => new ReplayingSource(l, group), { log, warehouse });
    t.after(() => rig.close());
    await rig.processor.start();
    const first = append(log, [txRecord(ACCOUNT, "w-1", 0), txRecord(ACCOUNT, "w-2", 1)]);
    const p = first[0]!.partition;
    // The commit is lost (a fenced member): the partition comes back from offset 0.
    rig.source.dropCommits = true;
    await rig.source.deliver();
    await rig.processor.drain();
    rig.source.revoke([p]);
    rig.source.dropCommits = false;
    rig.source.assign([p]);
    await settle();
    append(log, [txRecord(ACCOUNT, "w-1", 0)]);
    const again = await rig.source.deliver();
    await rig.processor.drain();

    assert.deepEqual(
      again.map((r) => r.offset),
      [0n, 1n, 2n],
      "both records redelivered, then the resend",
    );
    assert.deepEqual(
      Object.fromEntries(warehouse.rowWrites),
      { "w-1": 2, "w-2": 2 },
      "redelivered rows written again (idempotent), the resend never",
    );
    assert.equal(rig.processor.totals.duplicates, 1, "only the resend is a duplicate");
  });

  it("a new owner drops a resend of what the old owner processed: the replay rebuilt the window's ids", async (t) => {
    const log = newLog();
    const group = new Map<number, bigint>();
    const warehouse = new MemoryWarehouse();
    const shared = { log, warehouse };
    const a = buildProcessor((l) => new ReplayingSource(l, group), shared);
    t.after(() => a.close());
    await a.processor.start();
    append(log, [txRecord(ACCOUNT, "h-1", 0), txRecord(ACCOUNT, "h-2", 1)]);
    await a.source.deliver();
    await a.processor.close();

    const b = buildProcessor((l) => new ReplayingSource(l, group), shared);
    t.after(() => b.close());
    await b.processor.start();
    await settle();
    append(log, [txRecord(ACCOUNT, "h-1", 0), txRecord(ACCOUNT, "h-3", 2)]);
    await b.source.deliver();
    await b.processor.drain();

    assert.deepEqual(Object.fromEntries(warehouse.rowWrites), { "h-1": 1, "h-2": 1, "h-3": 1 });
    assert.equal(b.processor.totals.duplicates, 1);
    assert.equal(b.processor.totals.ok, 1);
  });

  it("a resend too late for any window is left to the warehouse key, or dropped by the shared tier when it is on", async (t) => {
    // o-1 at T0 - 15 s; then an event at T0 + 60 s (= now) moves the watermark to now - 10 s,
    // so o-1 (75 s behind the newest) has left the window when its resend comes.
    const scenario = async (dedupStore?: InMemorySharedDedupStore) => {
      const log = newLog();
      const group = new Map<number, bigint>();
      const warehouse = new MemoryWarehouse();
      const rig = buildProcessor((l) => new ReplayingSource(l, group), {
        log,
        warehouse,
        ...(dedupStore ? { dedupStore } : {}),
      });
      t.after(() => rig.close());
      await rig.processor.start();
      append(log, [txRecord(ACCOUNT, "o-1", -15), txRecord(ACCOUNT, "o-2", 60)]);
      await rig.source.deliver();
      // The resend, and a new transaction as old sent twice in one batch.
      append(log, [
        txRecord(ACCOUNT, "o-1", -15),
        txRecord(ACCOUNT, "o-3", -20),
        txRecord(ACCOUNT, "o-3", -20),
      ]);
      await rig.source.deliver();
      await rig.processor.drain();
      return { warehouse, totals: rig.processor.totals };
    };

    const local = await scenario();
    assert.deepEqual(
      Object.fromEntries(local.warehouse.rowWrites),
      { "o-1": 2, "o-2": 1, "o-3": 1 },
      "the late resend's row is written again (the warehouse key keeps one); in one batch, one row",
    );
    assert.equal(local.warehouse.rows.size, 3);
    assert.equal(local.totals.duplicates, 1, "the copy within the batch");

    const shared = await scenario(new InMemorySharedDedupStore({ now: () => NOW }));
    assert.deepEqual(Object.fromEntries(shared.warehouse.rowWrites), { "o-1": 1, "o-2": 1, "o-3": 1 });
    assert.equal(shared.totals.duplicates, 2);
  });
});

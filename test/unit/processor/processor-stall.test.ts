/**
 * The stall watchdog: a partition the processor owns whose lag stays above 0 while none of
 * its records arrive and nothing is in flight makes the source rejoin, and the records its
 * lost commit left behind are then delivered and committed. Lag that is being worked on
 * (a batch waiting for the warehouse, a partition being rebuilt, records still arriving) never
 * triggers it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  append,
  buildProcessor,
  MemoryWarehouse,
  NOW,
  newLog,
  ReplayingSource,
  txRecord,
} from "./harness.ts";

const STALL_MS = 30_000;

function rig(opts: { warehouse?: MemoryWarehouse } = {}) {
  const log = newLog();
  const group = new Map<number, bigint>();
  let now = NOW;
  const r = buildProcessor((l) => new ReplayingSource(l, group), {
    log,
    now: () => now,
    options: { partitionStallMs: STALL_MS },
    ...opts,
  });
  return { ...r, group, advance: (ms: number) => (now += ms) };
}

const stalls = async (r: ReturnType<typeof rig>) =>
  (await r.registry.getSingleMetric("paystream_partition_stalls_total")!.get()).values[0]?.value ?? 0;

describe("Processor: stall watchdog", () => {
  it("a partition whose last commit never reached the group is found by its lag and read again after a rejoin", async (t) => {
    const r = rig();
    t.after(() => r.close());
    await r.processor.start();
    const sent = append(r.log, [txRecord("acct-stall", "st-0", 0), txRecord("acct-stall", "st-1", 1)]);
    const p = sent[0]!.partition;

    // Processed, but the commit is lost (as when it was made while the partition was revoked).
    r.source.dropCommits = true;
    await r.source.deliver();
    await r.processor.drain();
    r.source.dropCommits = false;
    assert.equal(r.group.get(p), undefined);

    // Lag with nothing arriving: a first sighting is only a suspicion; the second one acts.
    r.advance(STALL_MS);
    await r.processor.refreshLag();
    assert.deepEqual(r.source.restarts, [], "one sighting is not enough");
    r.advance(5_000);
    await r.processor.refreshLag();
    assert.equal(r.source.restarts.length, 1);
    assert.match(r.source.restarts[0]!, new RegExp(`partitions ${p} stalled`));
    assert.equal(await stalls(r), 1);

    // After the rejoin the group re-delivers from its committed offset; outputs are idempotent.
    const again = await r.source.deliver();
    assert.deepEqual(
      again.map((x) => x.offset),
      sent.map((x) => x.offset),
    );
    await r.processor.drain();
    assert.equal(r.group.get(p), 2n, "committed this time");
    assert.equal(r.warehouse.rowWrites.get("st-0"), 2, "written again, idempotently (one row)");
    assert.equal(r.warehouse.rows.size, 2);

    r.advance(STALL_MS * 3);
    await r.processor.refreshLag();
    await r.processor.refreshLag();
    assert.equal(r.source.restarts.length, 1, "no lag, no rejoin");
  });

  it("lag that is being worked on never triggers it: records arriving, a write in flight", async (t) => {
    const warehouse = new MemoryWarehouse();
    const r = rig({ warehouse });
    t.after(() => r.close());
    await r.processor.start();

    // Records keep arriving: the partition is consumed, whatever its lag.
    for (let k = 0; k < 4; k++) {
      append(r.log, [txRecord("acct-busy", `busy-${k}`, k)]);
      r.source.dropCommits = true;
      await r.source.deliver();
      await r.processor.drain();
      r.advance(STALL_MS / 2);
      await r.processor.refreshLag();
    }
    r.source.dropCommits = false;
    assert.deepEqual(r.source.restarts, []);

    // A write held by the warehouse: its commit is pending, so lag is expected.
    warehouse.hold();
    append(r.log, [txRecord("acct-busy", "busy-held", 10)]);
    await r.source.deliver();
    for (let k = 0; k < 3; k++) {
      r.advance(STALL_MS);
      await r.processor.refreshLag();
    }
    assert.deepEqual(r.source.restarts, [], "a batch waiting for its writes is not a stall");
    assert.equal(await stalls(r), 0);
    warehouse.releaseAll();
    await r.processor.drain();
  });

  it("0 turns it off", async (t) => {
    const log = newLog();
    let now = NOW;
    const r = buildProcessor((l) => new ReplayingSource(l, new Map()), {
      log,
      now: () => now,
      options: { partitionStallMs: 0 },
    });
    t.after(() => r.close());
    await r.processor.start();
    append(log, [txRecord("acct-off", "off-0", 0)]);
    r.source.dropCommits = true;
    await r.source.deliver();
    await r.processor.drain();
    for (let k = 0; k < 3; k++) {
      now += STALL_MS * 2;
      await r.processor.refreshLag();
    }
    assert.deepEqual(r.source.restarts, []);
  });
});

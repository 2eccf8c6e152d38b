/**
 * Recovery of a gained partition, on the embedded log with a replaying group member
 * (ReplayingSource): the new owner rebuilds the partition's windows from the span before the
 * committed offset, outputs discarded, so an incident that straddles the handover raises its
 * alert exactly once, on its trigger, and nothing already written is written again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EmbeddedAlertStore } from "../../../src/adapters/embedded/alerts.ts";
import {
  ALERTS,
  append,
  buildProcessor,
  MemoryWarehouse,
  newLog,
  ReplayingSource,
  type Sent,
  settle,
  txRecord,
} from "./harness.ts";

const ACCOUNT = "acct-incident";
/** The incident: one transaction a second on one account; the default velocity rule fires at the 10th. */
const incident = (from: number, n: number): Sent[] =>
  Array.from({ length: n }, (_, k) => txRecord(ACCOUNT, `inc-${from + k}`, from + k));

describe("Processor: recovery of a gained partition", () => {
  it("a new owner rebuilds the windows, so an incident spanning the handover alerts once; replayed records are not written again", async (t) => {
    const log = newLog();
    const group = new Map<number, bigint>();
    const warehouse = new MemoryWarehouse();
    const alertStore = new EmbeddedAlertStore();
    const shared = { log, warehouse, alertStore };

    // Replica A processes and commits the first 8 transactions: below the threshold of 10.
    const a = buildProcessor((l) => new ReplayingSource(l, group), shared);
    t.after(() => a.close());
    await a.processor.start();
    const first = append(log, incident(0, 8));
    const p = first[0]!.partition;
    await a.source.deliver();
    await a.processor.close();
    assert.equal(a.processor.totals.alerts, 0);
    assert.equal(group.get(p), 8n, "replica A committed its 8 records");

    // Replica B gains the partition and gets the next 3: only with the first 8 rebuilt does
    // the 10th cross the threshold.
    const b = buildProcessor((l) => new ReplayingSource(l, group), shared);
    t.after(() => b.close());
    await b.processor.start();
    const replay = b.source.replays.find((r) => r.partition === p);
    assert.ok(replay, "the gained partition is replayed");
    assert.ok(replay.spanMs >= 70_000, `the replay covers window + allowed lateness (${replay.spanMs} ms)`);
    assert.deepEqual(
      replay.replayed.map((r) => r.offset),
      first.map((r) => r.offset),
      "the span before the committed offset",
    );
    const second = append(log, incident(8, 3));
    const delivered = await b.source.deliver();
    assert.deepEqual(
      delivered.map((r) => r.offset),
      second.map((r) => r.offset),
      "delivery resumes at the committed offset",
    );
    await b.processor.drain();

    assert.equal(b.processor.totals.records, 3, "B processed only the records after the commit");
    assert.deepEqual(Object.fromEntries(b.processor.alertsByRule), { velocity_count: 1 });
    const alerts = [...warehouse.alerts.values()];
    assert.deepEqual(
      alerts.map((x) => [x.ruleId, x.transactionId, x.figures.count]),
      [["velocity_count", "inc-9", 10]],
      "one alert, on the 10th transaction, counting the rebuilt window",
    );
    assert.equal(alertStore.size, 1);
    assert.equal(b.sink.to(ALERTS).length, 1, "one record on the alerts topic");
    for (let k = 0; k < 11; k++) {
      assert.equal(warehouse.rowWrites.get(`inc-${k}`), 1, `inc-${k} written once, replay or not`);
    }
    assert.equal(group.get(p), 11n);
  });

  it("a replica that regains a partition counts re-delivered records once in its windows", async (t) => {
    const log = newLog();
    const group = new Map<number, bigint>();
    const rig = buildProcessor((l) => new ReplayingSource(l, group), { log });
    t.after(() => rig.close());
    const { processor, source, warehouse } = rig;
    await processor.start();

    const committed = append(log, incident(0, 6));
    const p = committed[0]!.partition;
    await source.deliver();
    await processor.drain();
    assert.equal(group.get(p), 6n);

    // Two more are processed, but their commit is lost with the membership.
    source.dropCommits = true;
    const uncommitted = append(log, incident(6, 2));
    await source.deliver();
    await processor.drain();
    assert.equal(group.get(p), 6n, "the commit of offsets 6-7 did not reach the group");

    // The partition comes back: recovery replays up to what this replica had applied (8),
    // and the group re-delivers 6 and 7 from its committed offset.
    source.dropCommits = false;
    source.revoke([p]);
    source.assign([p]);
    await settle();
    const replay = source.replays.at(-1)!;
    assert.equal(replay.partition, p);
    assert.equal(replay.until, 8n, "the replay reaches what this replica had already processed");
    assert.equal(replay.replayed.length, 8);
    const again = await source.deliver();
    assert.deepEqual(
      again.map((r) => r.offset),
      uncommitted.map((r) => r.offset),
    );
    await processor.drain();
    assert.equal(processor.totals.alerts, 0, "8 distinct transactions in the window, not 10");
    assert.equal(group.get(p), 8n);

    // The 9th and 10th distinct transactions: the alert fires on the 10th, exactly once.
    append(log, incident(8, 2));
    await source.deliver();
    await processor.drain();
    const alerts = [...warehouse.alerts.values()];
    assert.deepEqual(
      alerts.map((x) => [x.ruleId, x.transactionId, x.figures.count]),
      [["velocity_count", "inc-9", 10]],
    );
    for (let k = 0; k < 10; k++) assert.ok(warehouse.rows.has(`inc-${k}`), `inc-${k} stored`);
    for (let k = 0; k < 6; k++)
      assert.equal(warehouse.rowWrites.get(`inc-${k}`), 1, `replayed inc-${k} not rewritten`);
  });
});

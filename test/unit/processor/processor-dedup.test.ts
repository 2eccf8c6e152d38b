/**
 * Duplicates from the source (a resend of a transaction_id) are dropped before windows, rules
 * and the warehouse, whether the copy arrives in the same batch or a later one.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { oneRule } from "../../helpers/fixtures.ts";
import { append, endOffsets, metricValue, startRig, txRecord, until } from "./harness.ts";

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

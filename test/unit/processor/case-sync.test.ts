import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EmbeddedCaseStore } from "../../../src/adapters/embedded/cases.ts";
import type { Alert } from "../../../src/contracts/alert.ts";
import type { FraudCase } from "../../../src/contracts/case.ts";
import type { Warehouse } from "../../../src/contracts/ports.ts";
import { ErrorCodes, PaystreamError } from "../../../src/core/errors.ts";
import { createLogger } from "../../../src/lib/log.ts";
import { CASE_SYNC_LOOKBACK_MS, CASE_SYNC_PAGE, CaseStatusSync } from "../../../src/processor/case-sync.ts";
import { DependencyHealth } from "../../../src/processor/health.ts";
import { createProcessorMetrics } from "../../../src/processor/metrics.ts";
import { testRegistry } from "../../helpers/fixtures.ts";

const T0 = Date.UTC(2026, 5, 1);

function alert(i: number): Alert {
  return {
    alertId: `a-${i}`,
    ruleId: "velocity_count",
    ruleType: "velocity_count",
    severity: "high",
    accountId: `acct-${i}`,
    transactionId: `tx-${i}`,
    eventTimeMs: T0,
    detectedAtMs: T0,
    figures: { count: 5 },
  };
}

/** A warehouse whose writeCases records what it got, failing while `failures` is positive. */
function warehouse() {
  const written: FraudCase[][] = [];
  const wh = {
    name: "fake",
    failures: 0,
    written,
    writeTransactions: async () => {},
    writeAlerts: async () => {},
    async writeCases(cases: readonly FraudCase[]) {
      if (wh.failures > 0) {
        wh.failures--;
        throw new PaystreamError(ErrorCodes.WAREHOUSE_REJECTED, "refused", { retriable: false });
      }
      written.push([...cases]);
    },
    close: async () => {},
  } satisfies Warehouse & Record<string, unknown>;
  return wh;
}

async function setup(changes: number) {
  let now = T0;
  const store = new EmbeddedCaseStore({ now: () => now });
  const filed = await store.fileAlerts(Array.from({ length: changes }, (_, i) => alert(i)));
  for (const c of filed) {
    now++;
    await store.setStatus(c.caseId, { status: "acknowledged", by: "ana", atMs: now });
  }
  now = T0 + 1_000_000;
  const wh = warehouse();
  const registry = testRegistry("case-sync");
  const metrics = createProcessorMetrics(registry);
  const log = createLogger("test", "silent");
  const sync = new CaseStatusSync({
    store,
    warehouse: wh,
    health: new DependencyHealth(metrics, log, 10, () => false),
    metrics,
    log,
    now: () => now,
    intervalMs: 20,
  });
  const synced = async () =>
    (await registry.getSingleMetric("paystream_case_status_synced_total")?.get())?.values[0]?.value ?? 0;
  return { store, wh, sync, synced };
}

describe("case status sync", () => {
  it("starts a day back, writes the changed cases and moves its cursor to the feed's", async () => {
    const { wh, sync, synced } = await setup(3);
    assert.equal(sync.cursor, T0 + 1_000_000 - CASE_SYNC_LOOKBACK_MS);
    assert.equal(await sync.pass(), 3);
    assert.deepEqual(
      wh.written.flat().map((c) => [c.caseId, c.status]),
      [
        ["a-0", "acknowledged"],
        ["a-1", "acknowledged"],
        ["a-2", "acknowledged"],
      ],
    );
    assert.equal(sync.cursor, T0 + 1_000_000);
    assert.equal(await synced(), 3);
    assert.equal(await sync.pass(), 0, "nothing changed since");
  });

  it("a failed write keeps the cursor: the next pass writes the same changes", async () => {
    const { wh, sync } = await setup(2);
    const before = sync.cursor;
    wh.failures = 1;
    assert.equal(await sync.pass(), 0);
    assert.equal(sync.cursor, before);
    assert.equal(await sync.pass(), 2);
    assert.deepEqual(
      wh.written.flat().map((c) => c.caseId),
      ["a-0", "a-1"],
    );
  });

  it("reads page after page in one pass while pages come back full", async () => {
    const { wh, sync } = await setup(CASE_SYNC_PAGE + 20);
    // The second page starts in the first one's last millisecond: that case comes twice.
    assert.equal(await sync.pass(), CASE_SYNC_PAGE + 21);
    assert.equal(wh.written.length, 2);
    assert.equal(new Set(wh.written.flat().map((c) => c.caseId)).size, CASE_SYNC_PAGE + 20);
  });

  it("runs on its timer until stopped", async () => {
    const { wh, sync } = await setup(1);
    sync.start();
    const deadline = Date.now() + 5000;
    while (wh.written.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await sync.stop();
    assert.deepEqual(
      wh.written.flat().map((c) => c.caseId),
      ["a-0"],
    );
    const writes = wh.written.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(wh.written.length, writes, "no pass after stop");
  });
});

/**
 * A row the warehouse refuses for good (here: a CHECK constraint the operator added to
 * PostgreSQL that the processor's validation knows nothing about) goes to the DLQ with the
 * reason and its transaction_id; every other row is written, the offsets are committed and
 * the processor keeps running — no endless retry loop, no stop.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openWarehouse } from "../../src/adapters/warehouse/index.ts";
import { verify } from "../../src/app/verify.ts";
import type { GeneratedRecord } from "../../src/collector/generator.ts";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { parseRules } from "../../src/core/rules.ts";
import { decodeTransaction } from "../../src/core/schema.ts";
import { renderTable } from "../../src/verify/reconcile.ts";
import {
  createTestTopics,
  deleteTopics,
  produceTraffic,
  readTopic,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { freshDatabase } from "../helpers/processes.ts";
import { services } from "../helpers/services.ts";

// One rule is enough: this test is about rows, not detection.
const rules = parseRules({
  version: 1,
  rules: [{ id: "velocity_count", type: "velocity_count", threshold: 50, severity: "high" }],
});

describe("rows the warehouse refuses go to the DLQ, the rest is written", () => {
  let topics: TestTopics;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let proc: TestProcessor | undefined;
  let sent: GeneratedRecord[];
  /** Valid, first-seen transaction ids and whether the added CHECK refuses them. */
  const refused = new Set<string>();
  const accepted = new Set<string>();

  before(async () => {
    topics = await createTestTopics("it-rejected", 3);
    db = await freshDatabase();
    // Create the schema, then add a constraint the processor does not know about.
    const wh = await openWarehouse(db.url);
    await wh.close();
    const { connectPostgres } = await import("../../src/adapters/warehouse/postgres.ts");
    const pool = await connectPostgres(db.url);
    await pool.query("ALTER TABLE transactions ADD CONSTRAINT it_refuse_97 CHECK (amount_minor % 97 <> 0)");
    await pool.end();

    sent = await produceTraffic(topics.input, {
      seed: (Date.now() % 1_000_000) + 3,
      accounts: 5_000,
      merchants: 500,
      seconds: 20,
      ratePerSecond: 500,
      faultRates: { duplicate: 0.01, late: 0, outOfOrder: 0, malformed: 0.01 },
    });
    // Decoded at (about) the time the processor sees them: the generator's future-dated and
    // too-old faults are refused then, as the processor refuses them.
    const processedAt = Date.now();
    for (const r of sent) {
      const d = decodeTransaction(Buffer.from(r.value), {}, processedAt);
      if (!d.ok || refused.has(d.tx.transaction_id) || accepted.has(d.tx.transaction_id)) continue;
      (d.tx.amountMinor % 97 === 0 ? refused : accepted).add(d.tx.transaction_id);
    }
    assert.ok(refused.size > 10, `the constraint refuses some rows (${refused.size})`);
    proc = await startTestProcessor(topics, rules, { warehouseUrl: db.url });
    const p = proc;
    await waitFor(() => p.processor.totals.records >= sent.length, 120_000, "every record processed");
    await p.processor.drain();
  });

  after(async () => {
    await proc?.close();
    await db?.drop();
    if (topics) await deleteTopics(topics);
  });

  it("dead-letters exactly the refused rows, with reason and transaction_id", async () => {
    const p = proc!;
    assert.equal(p.processor.totals.warehouseRejected, refused.size);
    const malformed = sent.filter((r) => r.kind === "malformed").length;
    const dlq = await readTopic(topics.dlq, malformed + refused.size, 30_000);
    const rejected = dlq.filter((r) => r.headers.get("reason") === "warehouse_rejected");
    assert.deepEqual(new Set(rejected.map((r) => r.headers.get("transaction_id"))), refused);
    for (const r of rejected) {
      assert.match(r.headers.get("detail") ?? "", /it_refuse_97|check constraint/i, "the reason says why");
      assert.equal(r.headers.get("source_topic"), topics.input);
      // The record with its card number redacted (no PAN in the DLQ); the source coordinates
      // point at the original for replay once the warehouse is fixed.
      assert.ok(r.value.includes(r.headers.get("transaction_id")!));
      assert.deepEqual(findLuhnDigitRuns(r.value), [], "no PAN in the DLQ");
      assert.match(r.headers.get("source_offset") ?? "", /^\d+$/);
    }
  });

  it("paystream verify counts them as refused (a warning), not as lost", async () => {
    const p = proc!;
    const { report } = await verify({
      brokers: services.kafka,
      topic: topics.input,
      labelsTopic: topics.labels,
      dlqTopic: topics.dlq,
      alertsTopic: topics.alerts,
      redisUrl: services.redis,
      warehouseUrl: db.url,
      warehouse: p.warehouse,
      redis: p.redis,
      timeoutMs: 60_000,
    });
    const row = (check: string) => report.rows.find((r) => r.check === check);
    assert.equal(report.exitCode, 0, renderTable(report));
    assert.equal(row("missing rows")?.actual, 0);
    assert.equal(row("rows refused by the warehouse (in the DLQ)")?.actual, refused.size);
    assert.equal(row("rows refused by the warehouse (in the DLQ)")?.status, "WARN");
    assert.equal(row("entries for records that are not invalid")?.actual, 0);
  });

  it("writes every other row exactly once and keeps running", async () => {
    const p = proc!;
    assert.equal(await p.warehouse.countTransactions(), accepted.size);
    assert.deepEqual(await p.warehouse.duplicateTransactionIds(), []);
    const lag = await p.processor.refreshLag();
    assert.equal(
      [...lag.values()].reduce((a, b) => a + b, 0n),
      0n,
      "every offset committed (nothing held by the refused rows)",
    );
  });
});

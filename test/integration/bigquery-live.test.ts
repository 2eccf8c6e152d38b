/**
 * The BigQuery sink against real BigQuery. Runs only when PAYSTREAM_BIGQUERY_PROJECT and
 * GOOGLE_APPLICATION_CREDENTIALS are set; otherwise this file registers no test at all (it is
 * not "skipped": there is nothing to report). It creates a dataset of its own (in
 * PAYSTREAM_BIGQUERY_LOCATION, default US) and deletes it afterwards.
 *
 *   PAYSTREAM_BIGQUERY_PROJECT=my-proj GOOGLE_APPLICATION_CREDENTIALS=key.json \
 *     npx node --test test/integration/bigquery-live.test.ts
 *
 * Streaming inserts are queryable within seconds but the counts are polled for a while.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { TransactionRow } from "../../src/contracts/rows.ts";
import { sampleRow } from "../helpers/fixtures.ts";
import { uniqueName } from "../helpers/services.ts";

const project = process.env.PAYSTREAM_BIGQUERY_PROJECT;
const credentials = process.env.GOOGLE_APPLICATION_CREDENTIALS;

if (project && credentials) {
  const location = process.env.PAYSTREAM_BIGQUERY_LOCATION ?? "US";
  const dataset = uniqueName("paystream_it").replaceAll("-", "_");
  const T0 = Date.now() - 60_000;

  const row = (i: number): TransactionRow =>
    sampleRow({
      transaction_id: `${dataset}-tx-${i}`,
      account_id: `acct-${i % 13}`,
      card_token: `ctok_${i.toString(36).padStart(17, "a")}`,
      event_time: new Date(T0 + i).toISOString(),
      event_time_ms: T0 + i,
      kafka_partition: i % 24,
      kafka_offset: String(9007199254740993n + BigInt(i)),
      processed_at_ms: T0 + i + 100,
    });

  async function eventually(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 3000));
    }
  }

  describe("BigQuery warehouse (live)", () => {
    after(async () => {
      const { BigQuery } = await import("@google-cloud/bigquery");
      await new BigQuery({ projectId: project })
        .dataset(dataset)
        .delete({ force: true })
        .catch(() => {});
    });

    it("migrates, streams rows and alerts with insertId, and reads them back", {
      timeout: 600_000,
    }, async () => {
      const { openWarehouse } = await import("../../src/adapters/warehouse/index.ts");
      const { alertId } = await import("../../src/core/alert.ts");
      const wh = await openWarehouse(`bigquery://${project}/${dataset}`, { location });
      try {
        const rows = Array.from({ length: 1200 }, (_, i) => row(i));
        // A just-created table can be invisible to insertAll for a while: retry while retriable.
        await eventually(async () => {
          try {
            await wh.writeTransactions(rows);
            return true;
          } catch (err) {
            if ((err as { retriable?: boolean }).retriable) return false;
            throw err;
          }
        }, 300_000);
        await wh.writeTransactions(rows.slice(0, 100)); // a replay within the insertId window
        await wh.writeAlerts([
          {
            alertId: alertId("r1", "acct-1", row(1).transaction_id),
            ruleId: "r1",
            ruleType: "velocity_count",
            severity: "high",
            accountId: "acct-1",
            transactionId: row(1).transaction_id,
            eventTimeMs: T0 + 1,
            detectedAtMs: T0 + 2,
            figures: { count: 6 },
          },
        ]);
        await eventually(async () => (await wh.countTransactions()) >= 1200);
        await eventually(async () => (await wh.countAlerts()) >= 1);
        // insertId dedup is best effort: report rather than fail on a duplicate.
        const dups = await wh.duplicateTransactionIds();
        if (dups.length > 0) process.stdout.write(`# BigQuery kept ${dups.length} replayed rows twice\n`);
        assert.ok((await wh.countTransactions()) <= 1300);
      } finally {
        await wh.close();
      }
    });
  });
}

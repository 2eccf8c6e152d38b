/**
 * The BigQuery sink without Google: the row mapping, the request splitting, and the error
 * mapping, with a fake `table.insert` (and a fake query runner) injected through the
 * constructor in place of the network client. What this cannot show — that BigQuery accepts
 * these rows — is test/integration/bigquery-live.test.ts, which needs real credentials.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type BigQueryInsertOptions,
  type BigQueryRawRow,
  BigQueryWarehouse,
  type InsertableTable,
  MAX_BYTES_PER_REQUEST,
  rowBytes,
  splitIntoRequests,
  toBigQueryRow,
} from "../../../src/adapters/warehouse/bigquery.ts";
import { migrateBigQuery } from "../../../src/adapters/warehouse/migrations/runner.ts";
import { alertToRow, FRAUD_ALERTS, TRANSACTIONS } from "../../../src/adapters/warehouse/schema.ts";
import type { Alert } from "../../../src/contracts/alert.ts";
import type { TransactionRow } from "../../../src/contracts/rows.ts";
import { applyStatus, newCase } from "../../../src/core/cases.ts";
import { ErrorCodes, PaystreamError } from "../../../src/core/errors.ts";
import { ROW_T, sampleAlert, sampleRow } from "../../helpers/fixtures.ts";

const T = ROW_T;

function row(i: number, over: Partial<TransactionRow> = {}): TransactionRow {
  return sampleRow({
    transaction_id: `tx-${i}`,
    account_id: `acct-${i % 7}`,
    lon: -2.3522,
    event_time: new Date(T + i).toISOString(),
    event_time_ms: T + i,
    kafka_offset: String(9007199254740993n + BigInt(i)),
    processed_at_ms: T + i + 250,
    is_late: i % 2 === 1,
    ...over,
  });
}

function rows(n: number): TransactionRow[] {
  return Array.from({ length: n }, (_, i) => row(i));
}

function alert(i: number, withCard = true): Alert {
  return sampleAlert(
    {
      ruleType: "amount_sum",
      severity: "critical",
      accountId: `acct-${i}`,
      transactionId: `tx-${i}`,
      detectedAtMs: T + 5,
      figures: { sumMinor: 1_000_000, windowMs: 60_000 },
    },
    withCard,
  );
}

interface Call {
  rows: BigQueryRawRow[];
  options: BigQueryInsertOptions;
}

/** A fake Table.insert: records calls; `behave` may throw like the real client. */
function fakeTable(behave: (call: Call, n: number) => Promise<void> | void = () => {}): InsertableTable & {
  calls: Call[];
} {
  const calls: Call[] = [];
  return {
    calls,
    async insert(rows, options) {
      const call = { rows, options };
      calls.push(call);
      await behave(call, calls.length);
      return [{ kind: "bigquery#tableDataInsertAllResponse" }];
    },
  };
}

function warehouse(
  tx: InsertableTable,
  alerts: InsertableTable = fakeTable(),
  extra: { concurrency?: number; query?: (sql: string) => Promise<Record<string, unknown>[]> } = {},
): BigQueryWarehouse {
  return new BigQueryWarehouse({
    projectId: "proj",
    datasetId: "ds",
    tables: { transactions: tx, fraud_alerts: alerts },
    query: extra.query ?? (async () => []),
    ...(extra.concurrency ? { concurrency: extra.concurrency } : {}),
  });
}

/** The shape @google-cloud/bigquery throws for insertAll row errors (util.PartialFailureError). */
function partialFailure(failures: { row: BigQueryRawRow; reason: string }[]): Error {
  return Object.assign(new Error("A failure occurred during this request."), {
    name: "PartialFailureError",
    errors: failures.map((f) => ({ row: f.row, errors: [{ reason: f.reason, message: `${f.reason} row` }] })),
  });
}

function apiError(code: number | string, reason?: string): Error {
  return Object.assign(new Error(`api error ${code}`), { code, ...(reason ? { errors: [{ reason }] } : {}) });
}

describe("BigQuery row mapping", () => {
  it("maps a transaction: INT64 and NUMERIC as strings, TIMESTAMP as RFC 3339 UTC, insertId = transaction_id", () => {
    const r = toBigQueryRow(TRANSACTIONS, row(1));
    assert.equal(r.insertId, "tx-1");
    assert.deepEqual(r.json, {
      transaction_id: "tx-1",
      account_id: "acct-1",
      schema_version: 1,
      card_bin: "411111",
      card_last4: "1111",
      card_token: "ctok_aaaaaaaaaaaaaaaaa",
      name_token: "ntok_aaaaaaaaaaaaaaaaa",
      email_token: "etok_aaaaaaaaaaaaaaaaa",
      ip_token: "itok_aaaaaaaaaaaaaaaaa",
      device_token: "dtok_aaaaaaaaaaaaaaaaa",
      amount: "12.30",
      amount_minor: "1230",
      currency: "EUR",
      merchant_id: "m-1",
      merchant_category: "5411",
      country: "FR",
      city: "Paris",
      lat: 48.8566,
      lon: -2.3522,
      event_time: "2026-11-25T10:00:00.124Z",
      event_time_ms: String(T + 1),
      kafka_partition: 3,
      kafka_offset: "9007199254740994",
      processed_at_ms: String(T + 251),
      is_late: true,
    });
    // Every logical column, nothing else.
    assert.deepEqual(
      Object.keys(r.json),
      TRANSACTIONS.columns.map((c) => c.name),
    );
  });

  it("maps an alert: figures as JSON text, card columns null without a masked card", () => {
    const withCard = toBigQueryRow(FRAUD_ALERTS, alertToRow(alert(1)));
    assert.equal(withCard.insertId, alert(1).alertId);
    assert.equal(withCard.json.figures, '{"sumMinor":1000000,"windowMs":60000}');
    assert.equal(withCard.json.event_time, "2026-11-25T10:00:00.123Z");
    assert.equal(withCard.json.detected_at, "2026-11-25T10:00:00.128Z");
    assert.equal(withCard.json.card_last4, "1111");
    const noCard = toBigQueryRow(FRAUD_ALERTS, alertToRow(alert(2, false)));
    assert.equal(noCard.json.card_bin, null);
    assert.equal(noCard.json.card_last4, null);
    assert.equal(noCard.json.card_token, null);
    assert.deepEqual(
      Object.keys(noCard.json),
      FRAUD_ALERTS.columns.map((c) => c.name),
    );
  });
});

describe("BigQuery request splitting", () => {
  it("at most 500 rows per request, in order", () => {
    const raw = rows(1234).map((r) => toBigQueryRow(TRANSACTIONS, r));
    const parts = splitIntoRequests(raw);
    assert.deepEqual(
      parts.map((p) => p.length),
      [500, 500, 234],
    );
    assert.deepEqual(parts.flat(), raw);
    assert.deepEqual(splitIntoRequests([]), []);
  });

  it("at most 9 MB of rows per request; an oversized row goes alone", () => {
    const big = "x".repeat(100_000);
    const raw = rows(300).map((r) => toBigQueryRow(TRANSACTIONS, { ...r, city: big }));
    const parts = splitIntoRequests(raw);
    for (const p of parts) {
      assert.ok(p.length <= 500);
      assert.ok(p.reduce((n, r) => n + rowBytes(r), 0) <= MAX_BYTES_PER_REQUEST);
    }
    assert.equal(parts.length, 4); // ~100 KB rows: 94 fit in 9 MB
    assert.equal(parts[0]!.length, Math.floor(MAX_BYTES_PER_REQUEST / rowBytes(raw[0]!)));
    assert.deepEqual(parts.flat(), raw);

    const huge = toBigQueryRow(TRANSACTIONS, { ...row(9), city: "y".repeat(MAX_BYTES_PER_REQUEST) });
    const small = toBigQueryRow(TRANSACTIONS, row(10));
    assert.deepEqual(
      splitIntoRequests([small, huge, small]).map((p) => p.length),
      [1, 1, 1],
    );
    assert.deepEqual(
      splitIntoRequests(raw.slice(0, 10), 3, Number.MAX_SAFE_INTEGER).map((p) => p.length),
      [3, 3, 3, 1],
    );
  });
});

describe("BigQueryWarehouse with a fake table.insert", () => {
  it("writes a batch as raw insertAll requests of ≤ 500 rows, no client-side partial retries", async () => {
    const tx = fakeTable();
    await warehouse(tx).writeTransactions(rows(1200));
    assert.deepEqual(
      tx.calls.map((c) => c.rows.length).sort((a, b) => b - a),
      [500, 500, 200],
    );
    for (const c of tx.calls) {
      assert.deepEqual(c.options, {
        raw: true,
        partialRetries: 0,
        skipInvalidRows: false,
        ignoreUnknownValues: false,
      });
    }
    const ids = tx.calls.flatMap((c) => c.rows.map((r) => r.insertId)).sort();
    assert.deepEqual(
      ids,
      rows(1200)
        .map((r) => r.transaction_id)
        .sort(),
    );
    assert.ok(tx.calls.every((c) => c.rows.every((r) => r.insertId === r.json.transaction_id)));
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    let inFlight = 0;
    let peak = 0;
    const tx = fakeTable(async () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
    });
    await warehouse(tx, fakeTable(), { concurrency: 3 }).writeTransactions(rows(5000));
    assert.equal(tx.calls.length, 10);
    assert.equal(peak, 3);
  });

  it("writes alerts to fraud_alerts with insertId = alert_id; empty batches send nothing", async () => {
    const tx = fakeTable();
    const al = fakeTable();
    const wh = warehouse(tx, al);
    await wh.writeAlerts([alert(1), alert(2, false)]);
    await wh.writeAlerts([]);
    await wh.writeTransactions([]);
    assert.equal(tx.calls.length, 0);
    assert.equal(al.calls.length, 1);
    assert.deepEqual(
      al.calls[0]!.rows.map((r) => r.insertId),
      [alert(1).alertId, alert(2).alertId],
    );
  });

  it("appends case states to fraud_cases: insertId names hits, status and status time; notes stay out", async () => {
    const cases = fakeTable();
    const wh = new BigQueryWarehouse({
      projectId: "proj",
      datasetId: "ds",
      tables: { transactions: fakeTable(), fraud_alerts: fakeTable(), fraud_cases: cases },
      query: async () => [],
    });
    const filed = newCase(sampleAlert({}, true));
    const resolved = applyStatus(filed, {
      status: "resolved_fraud",
      by: "ana",
      atMs: ROW_T,
      note: "called the cardholder",
    });
    await wh.writeCases([filed]);
    await wh.writeCases([resolved]);
    const rows = cases.calls.flatMap((c) => c.rows);
    assert.deepEqual(
      rows.map((r) => r.insertId),
      [`${filed.caseId}/1/open/0`, `${filed.caseId}/1/resolved_fraud/${ROW_T}`],
    );
    assert.equal(rows[1]!.json.status_by, "ana");
    assert.equal(rows[1]!.json.status_at, new Date(ROW_T).toISOString());
    assert.equal(rows[0]!.json.status_at, null);
    assert.doesNotMatch(JSON.stringify(rows), /cardholder/);
  });

  it("rows BigQuery reports invalid → WAREHOUSE_REJECTED naming them (not the 'stopped' ones)", async () => {
    const tx = fakeTable((call, n) => {
      if (n !== 1) return;
      const [a, b, c] = call.rows;
      throw partialFailure([
        { row: a!, reason: "stopped" },
        { row: b!, reason: "invalid" },
        { row: c!, reason: "stopped" },
      ]);
    });
    await assert.rejects(
      warehouse(tx, fakeTable(), { concurrency: 1 }).writeTransactions(rows(700)),
      (err) => {
        assert.ok(err instanceof PaystreamError);
        assert.equal(err.code, ErrorCodes.WAREHOUSE_REJECTED);
        assert.equal(err.retriable, false);
        assert.deepEqual(err.details.transactionIds, ["tx-1"]);
        assert.match(err.message, /invalid/);
        return true;
      },
    );
  });

  it("an invalid alert is named by alert_id", async () => {
    const al = fakeTable((call) => {
      throw partialFailure([{ row: call.rows[0]!, reason: "invalid" }]);
    });
    await assert.rejects(warehouse(fakeTable(), al).writeAlerts([alert(5)]), (err) => {
      assert.ok(err instanceof PaystreamError);
      assert.equal(err.code, ErrorCodes.WAREHOUSE_REJECTED);
      assert.deepEqual(err.details.alertIds, [alert(5).alertId]);
      return true;
    });
  });

  it("a row that cannot be mapped is rejected before any request", async () => {
    const tx = fakeTable();
    const batch = rows(10);
    batch[4] = row(4, { event_time_ms: Number.NaN });
    await assert.rejects(warehouse(tx).writeTransactions(batch), (err) => {
      assert.ok(err instanceof PaystreamError);
      assert.equal(err.code, ErrorCodes.WAREHOUSE_REJECTED);
      assert.deepEqual(err.details.transactionIds, ["tx-4"]);
      return true;
    });
    assert.equal(tx.calls.length, 0);
  });

  const cases: [string, Error, boolean][] = [
    ["a network failure", apiError("ECONNRESET"), true],
    ["HTTP 503", apiError(503, "backendError"), true],
    ["HTTP 429", apiError(429), true],
    ["HTTP 403 rateLimitExceeded", apiError(403, "rateLimitExceeded"), true],
    ["HTTP 404 (table not yet visible)", apiError(404, "notFound"), true],
    ["HTTP 403 accessDenied", apiError(403, "accessDenied"), false],
    ["HTTP 401", apiError(401), false],
    ["HTTP 400", apiError(400, "invalid"), false],
  ];
  for (const [what, error, retriable] of cases) {
    it(`${what} → WAREHOUSE_UNAVAILABLE, retriable: ${retriable}`, async () => {
      const tx = fakeTable(() => {
        throw error;
      });
      await assert.rejects(warehouse(tx).writeTransactions(rows(3)), (err) => {
        assert.ok(err instanceof PaystreamError);
        assert.equal(err.code, ErrorCodes.WAREHOUSE_UNAVAILABLE);
        assert.equal(err.retriable, retriable);
        assert.equal(err.cause, error);
        return true;
      });
    });
  }

  it("stops sending further requests after a transport failure", async () => {
    const tx = fakeTable((_, n) => {
      if (n === 1) throw apiError(503);
    });
    await assert.rejects(warehouse(tx, fakeTable(), { concurrency: 1 }).writeTransactions(rows(2000)));
    assert.equal(tx.calls.length, 1);
  });

  it("query helpers read through the query runner", async () => {
    const seen: string[] = [];
    const wh = warehouse(fakeTable(), fakeTable(), {
      query: async (sql) => {
        seen.push(sql);
        if (sql.includes("COUNT(*) AS n FROM transactions")) return [{ n: 42 }];
        if (sql.includes("COUNT(*) AS n FROM fraud_alerts")) return [{ n: "7" }];
        if (sql.includes("HAVING")) return [{ id: "tx-9" }];
        return [{ id: "a1" }, { id: "a2" }];
      },
    });
    assert.equal(await wh.countTransactions(), 42);
    assert.equal(await wh.countAlerts(), 7);
    assert.deepEqual(await wh.duplicateTransactionIds(), ["tx-9"]);
    assert.deepEqual(await wh.alertIds(), ["a1", "a2"]);
    assert.equal(seen.length, 4);
  });
});

describe("BigQuery migrations with a fake query runner", () => {
  it("applies 001 once and records it; a second run applies nothing", async () => {
    const versions: number[] = [];
    const ran: string[] = [];
    const run = async (sql: string): Promise<Record<string, unknown>[]> => {
      ran.push(sql);
      if (sql.startsWith("SELECT version")) return versions.map((version) => ({ version }));
      const m = /^INSERT INTO schema_migrations \(version, applied_at\) VALUES \((\d+),/.exec(sql);
      if (m) versions.push(Number(m[1]));
      return [];
    };
    assert.deepEqual(await migrateBigQuery(run), { applied: [1, 2, 3], current: [1, 2, 3] });
    assert.ok(ran.some((s) => s.includes("CREATE TABLE IF NOT EXISTS transactions")));
    assert.ok(ran.some((s) => s.includes("PARTITION BY DATE(event_time)")));
    const before = ran.length;
    assert.deepEqual(await migrateBigQuery(run), { applied: [], current: [1, 2, 3] });
    assert.ok(ran.slice(before).every((s) => !s.includes("CREATE TABLE IF NOT EXISTS transactions")));
  });

  it("open() runs the migrations through the injected runner; a failure is WAREHOUSE_UNAVAILABLE", async () => {
    const ok = await BigQueryWarehouse.open({
      projectId: "proj",
      datasetId: "ds",
      tables: { transactions: fakeTable(), fraud_alerts: fakeTable() },
      query: async () => [],
    });
    assert.deepEqual(ok.migrations, { applied: [1, 2, 3], current: [1, 2, 3] });
    await assert.rejects(
      BigQueryWarehouse.open({
        projectId: "proj",
        datasetId: "ds",
        tables: { transactions: fakeTable(), fraud_alerts: fakeTable() },
        query: async () => {
          throw apiError(403, "accessDenied");
        },
      }),
      (err) => {
        assert.ok(err instanceof PaystreamError);
        assert.equal(err.code, ErrorCodes.WAREHOUSE_UNAVAILABLE);
        assert.equal(err.retriable, false);
        return true;
      },
    );
  });
});

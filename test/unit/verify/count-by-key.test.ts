/**
 * countByKey on BigQuery without Google: the query runner is a fake, so this checks the SQL
 * (chunking, literal escaping, table and key column) and the folding of the answers. The
 * PostgreSQL and DuckDB implementations run against real databases in
 * test/integration/verify.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BigQueryWarehouse,
  bigQueryStringLiteral,
  countByKeyQueries,
  type InsertableTable,
} from "../../../src/adapters/warehouse/bigquery.ts";
import { chunksOf, keyColumnOf } from "../../../src/adapters/warehouse/schema.ts";

const noTable: InsertableTable = { insert: async () => [] } as unknown as InsertableTable;

describe("countByKey helpers", () => {
  it("knows each table's key column and refuses anything else", () => {
    assert.equal(keyColumnOf("transactions"), "transaction_id");
    assert.equal(keyColumnOf("fraud_alerts"), "alert_id");
    assert.throws(() => keyColumnOf("users; DROP TABLE x" as "transactions"), TypeError);
  });

  it("chunks keys", () => {
    assert.deepEqual(chunksOf([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(chunksOf([], 2), []);
  });
});

describe("BigQuery countByKey", () => {
  it("escapes keys as GoogleSQL string literals", () => {
    assert.equal(bigQueryStringLiteral("abc"), "'abc'");
    assert.equal(bigQueryStringLiteral("it's"), "'it\\'s'");
    assert.equal(bigQueryStringLiteral("a\\b"), "'a\\\\b'");
    assert.equal(bigQueryStringLiteral("a\nb\u0000"), "'a\\u000ab\\u0000'");
  });

  it("splits keys into queries of at most 10,000 keys and 900 KB", () => {
    const keys = Array.from({ length: 25_000 }, (_, i) => `tx-${i}`);
    const qs = countByKeyQueries("transactions", "transaction_id", keys);
    assert.equal(qs.length, 3);
    assert.match(
      qs[0]!,
      /^SELECT transaction_id AS k, COUNT\(\*\) AS n FROM transactions WHERE transaction_id IN UNNEST\(\['tx-0','tx-1',/,
    );
    assert.ok(qs[0]!.endsWith("]) GROUP BY k"));
    const long = Array.from({ length: 100 }, (_, i) => `${"x".repeat(20_000)}${i}`);
    const lq = countByKeyQueries("fraud_alerts", "alert_id", long);
    assert.ok(lq.length >= 3);
    for (const q of lq) assert.ok(q.length < 1_000_000);
    assert.deepEqual(countByKeyQueries("transactions", "transaction_id", []), []);
  });

  it("runs the queries and sums the counts per key", async () => {
    const seen: string[] = [];
    const wh = new BigQueryWarehouse({
      projectId: "p",
      datasetId: "d",
      tables: { transactions: noTable, fraud_alerts: noTable },
      query: async (sql) => {
        seen.push(sql);
        return sql.includes("'a1'")
          ? [
              { k: "a1", n: 1 },
              { k: "a2", n: "2" },
            ]
          : [];
      },
    });
    const counts = await wh.countByKey("fraud_alerts", ["a1", "a2", "a3"]);
    assert.deepEqual(
      [...counts],
      [
        ["a1", 1],
        ["a2", 2],
      ],
    );
    assert.equal(seen.length, 1);
    assert.match(seen[0]!, /FROM fraud_alerts WHERE alert_id IN UNNEST/);
    assert.equal((await wh.countByKey("transactions", [])).size, 0);
  });
});

/**
 * The warehouse sinks against the real local PostgreSQL and a real DuckDB file in a temp dir:
 * one test body, run for both. Each test opens a fresh database (a new PostgreSQL schema, a
 * new DuckDB file), so tests and reruns never see each other's rows.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import { DuckDbWarehouse } from "../../src/adapters/warehouse/duckdb.ts";
import { openWarehouse, parseWarehouseUrl } from "../../src/adapters/warehouse/index.ts";
import { PostgresWarehouse } from "../../src/adapters/warehouse/postgres-sink.ts";
import { alertToRow, FRAUD_ALERTS, FRAUD_CASES, TRANSACTIONS } from "../../src/adapters/warehouse/schema.ts";
import type { Alert } from "../../src/contracts/alert.ts";
import type { TransactionRow } from "../../src/contracts/rows.ts";
import { alertId } from "../../src/core/alert.ts";
import { ConfigError, ErrorCodes, PaystreamError } from "../../src/core/errors.ts";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { formatMinor } from "../../src/core/schema.ts";
import { services, uniqueName } from "../helpers/services.ts";

const RUN = uniqueName("wh");
const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const tmp = mkdtempSync(join(tmpdir(), "paystream-wh-"));
const pgSchemas: string[] = [];

/** A valid masked row: BIN + last 4 + tokens, no PAN anywhere. */
function makeRow(i: number, over: Partial<TransactionRow> = {}): TransactionRow {
  const minor = 100 + ((i * 7919) % 250_000);
  const t = T0 + i * 13;
  return {
    transaction_id: `${RUN}-tx-${i}`,
    account_id: `acct-${i % 997}`,
    schema_version: 1,
    card_bin: "411111",
    card_last4: String(1000 + (i % 9000)),
    card_token: `ctok_${i.toString(36).padStart(17, "a")}`,
    name_token: `ntok_${(i % 997).toString(36).padStart(17, "b")}`,
    email_token: `etok_${(i % 997).toString(36).padStart(17, "c")}`,
    ip_token: `itok_${(i % 251).toString(36).padStart(17, "d")}`,
    device_token: `dtok_${(i % 613).toString(36).padStart(17, "e")}`,
    amount: formatMinor(minor),
    amount_minor: minor,
    currency: "EUR",
    merchant_id: `m-${i % 503}`,
    merchant_category: "5411",
    country: "FR",
    city: "Paris",
    lat: 48.8566 + (i % 100) / 1e5,
    lon: 2.3522 - (i % 100) / 1e5,
    event_time: new Date(t).toISOString(),
    event_time_ms: t,
    kafka_partition: i % 24,
    kafka_offset: String(1_000_000 + i),
    processed_at_ms: t + 250,
    is_late: i % 50 === 0,
    ...over,
  };
}

function rows(from: number, to: number): TransactionRow[] {
  const out: TransactionRow[] = [];
  for (let i = from; i < to; i++) out.push(makeRow(i));
  return out;
}

function makeAlert(i: number, detectedAtMs = T0 + 60_000 + i): Alert {
  const accountId = `acct-${i % 997}`;
  const transactionId = `${RUN}-tx-${i}`;
  return {
    alertId: alertId("velocity-5-in-60s", accountId, transactionId),
    ruleId: "velocity-5-in-60s",
    ruleType: "velocity_count",
    severity: i % 2 === 0 ? "high" : "critical",
    accountId,
    transactionId,
    eventTimeMs: T0 + i * 13,
    detectedAtMs,
    figures: { count: 5 + (i % 3), windowMs: 60_000, threshold: 5 },
    ...(i % 3 === 0
      ? {}
      : {
          maskedCard: {
            bin: "411111",
            last4: String(1000 + i),
            token: `ctok_${i.toString(36).padStart(17, "a")}`,
          },
        }),
  };
}

type Sink = DuckDbWarehouse | PostgresWarehouse;

interface Backend {
  name: "duckdb" | "postgres";
  /** A URL for a brand-new, empty warehouse. */
  fresh(): { url: string; schema?: string };
}

const backends: Backend[] = [
  {
    name: "duckdb",
    fresh: () => ({ url: `duckdb:${join(tmp, `${uniqueName("wh")}.duckdb`)}` }),
  },
  {
    name: "postgres",
    fresh: () => {
      const schema = uniqueName("it_wh").replaceAll("-", "_");
      pgSchemas.push(schema);
      return { url: services.postgres, schema };
    },
  },
];

async function open(target: { url: string; schema?: string }): Promise<Sink> {
  const wh = await openWarehouse(target.url, target.schema ? { schema: target.schema } : {});
  assert.ok(wh instanceof DuckDbWarehouse || wh instanceof PostgresWarehouse);
  return wh;
}

async function withFresh<T>(b: Backend, fn: (wh: Sink) => Promise<T>): Promise<T> {
  const wh = await open(b.fresh());
  try {
    return await fn(wh);
  } finally {
    await wh.close();
  }
}

function assertRejected(err: unknown, keyDetail: string, expected: string[]): true {
  assert.ok(err instanceof PaystreamError, String(err));
  assert.equal(err.code, ErrorCodes.WAREHOUSE_REJECTED, err.message);
  assert.equal(err.retriable, false);
  assert.deepEqual([...(err.details[keyDetail] as string[])].sort(), [...expected].sort());
  return true;
}

after(async () => {
  rmSync(tmp, { recursive: true, force: true });
  if (pgSchemas.length === 0) return;
  const pool = new pg.Pool({ connectionString: services.postgres, max: 1 });
  try {
    for (const s of pgSchemas) await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await pool.end();
  }
});

for (const b of backends) {
  describe(`warehouse sink: ${b.name}`, () => {
    it("applies every migration once, re-runs cleanly, and has exactly the logical columns", async () => {
      const target = b.fresh();
      const first = await open(target);
      try {
        assert.deepEqual(first.migrations, { applied: [1, 2, 3], current: [1, 2, 3] });
        assert.deepEqual(
          await first.tableColumns("transactions"),
          TRANSACTIONS.columns.map((c) => c.name),
        );
        assert.deepEqual(
          await first.tableColumns("fraud_alerts"),
          FRAUD_ALERTS.columns.map((c) => c.name),
        );
        assert.deepEqual(
          await first.tableColumns("fraud_cases"),
          FRAUD_CASES.columns.map((c) => c.name),
        );
        await first.writeTransactions(rows(0, 10));
      } finally {
        await first.close();
      }
      const again = await open(target);
      try {
        assert.deepEqual(again.migrations, { applied: [], current: [1, 2, 3] });
        assert.equal(await again.countTransactions(), 10, "rows survive a close and reopen");
      } finally {
        await again.close();
      }
    });

    it("round-trips every column of a transaction and an alert", async () => {
      await withFresh(b, async (wh) => {
        const tricky = [
          makeRow(1),
          makeRow(2, {
            city: "São Paulo\ttab\nnewline\\backslash \"quoted\" 'single'",
            lat: -23.55052,
            lon: -46.633308,
            kafka_offset: "9007199254740993", // > 2^53: exact only as a string
            amount: "0.01",
            amount_minor: 1,
            is_late: true,
            card_last4: "",
          }),
          makeRow(3, { lat: 0.1 + 0.2, lon: -73.98565700000002, amount: "123456789.99" }),
        ];
        tricky[2]!.amount_minor = 12_345_678_999;
        await wh.writeTransactions(tricky);
        for (const r of tricky) assert.deepEqual(await wh.getTransaction(r.transaction_id), r);

        const alerts = [makeAlert(1), makeAlert(3)];
        await wh.writeAlerts(alerts);
        for (const a of alerts) {
          const got = await wh.getAlert(a.alertId);
          assert.ok(got);
          const want = alertToRow(a);
          assert.deepEqual(JSON.parse(got.figures), JSON.parse(want.figures));
          assert.deepEqual({ ...got, figures: "" }, { ...want, figures: "" });
        }
        assert.equal(alerts[1]!.maskedCard, undefined);
        assert.equal((await wh.getAlert(alerts[1]!.alertId))?.card_token, null);
      });
    });

    it("a replayed, overlapping batch leaves exactly the unique rows", async () => {
      await withFresh(b, async (wh) => {
        await wh.writeTransactions(rows(0, 1000));
        assert.equal(await wh.countTransactions(), 1000);
        // Replay 500..999 (with a later processed_at) plus 500 new rows, and duplicates inside the batch.
        const replay = rows(500, 1500).map((r) => ({ ...r, processed_at_ms: r.processed_at_ms + 99_999 }));
        replay.push(...rows(1400, 1500));
        await wh.writeTransactions(replay);
        assert.equal(await wh.countTransactions(), 1500);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        // The first write wins: the replay did not rewrite the stored row.
        assert.equal(
          (await wh.getTransaction(makeRow(700).transaction_id))?.processed_at_ms,
          makeRow(700).processed_at_ms,
        );
        await wh.writeTransactions(rows(0, 1500));
        assert.equal(await wh.countTransactions(), 1500);
        await wh.writeTransactions([]);
      });
    });

    it("concurrent, overlapping writes leave exactly the unique rows (no deadlock)", async () => {
      await withFresh(b, async (wh) => {
        const shuffled = rows(1000, 4000).reverse();
        await Promise.all([
          wh.writeTransactions(rows(0, 3000)),
          wh.writeTransactions(rows(2000, 5000)),
          wh.writeTransactions(shuffled),
        ]);
        assert.equal(await wh.countTransactions(), 5000);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
      });
    });

    it("alerts are idempotent by alert_id (first detection kept)", async () => {
      await withFresh(b, async (wh) => {
        const first = Array.from({ length: 20 }, (_, i) => makeAlert(i));
        await wh.writeAlerts(first);
        const replay = [...Array.from({ length: 25 }, (_, i) => makeAlert(i, T0 + 999_999)), makeAlert(22)];
        await wh.writeAlerts(replay);
        assert.equal(await wh.countAlerts(), 25);
        const ids = replay.map((a) => a.alertId);
        assert.deepEqual(await wh.alertIds(), [...new Set(ids)].sort());
        assert.equal((await wh.getAlert(first[0]!.alertId))?.detected_at, first[0]!.detectedAtMs);
        await wh.writeAlerts([]);
      });
    });

    it("writes 50,000 rows in batches of 5,000", async () => {
      await withFresh(b, async (wh) => {
        const t0 = performance.now();
        for (let start = 0; start < 50_000; start += 5_000)
          await wh.writeTransactions(rows(start, start + 5_000));
        const s = (performance.now() - t0) / 1000;
        assert.equal(await wh.countTransactions(), 50_000);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        process.stdout.write(
          `# ${b.name}: 50,000 rows in ${s.toFixed(2)} s (${Math.round(50_000 / s)} rows/s)\n`,
        );
      });
    });

    it("a row the database refuses fails the batch with WAREHOUSE_REJECTED naming it, atomically", async () => {
      await withFresh(b, async (wh) => {
        await wh.writeTransactions(rows(0, 10));
        const batch = rows(100, 200);
        batch[37] = makeRow(137, { amount_minor: -5, amount: "-0.05" }); // CHECK amount_minor > 0
        batch[60] = makeRow(160, { lat: 200 }); // CHECK lat BETWEEN -90 AND 90
        await assert.rejects(wh.writeTransactions(batch), (err) =>
          assertRejected(err, "transactionIds", [batch[37]!.transaction_id, batch[60]!.transaction_id]),
        );
        assert.equal(await wh.countTransactions(), 10, "nothing of the rejected batch was written");
        // The caller dead-letters the named rows and writes the rest.
        await wh.writeTransactions(batch.filter((_, i) => i !== 37 && i !== 60));
        assert.equal(await wh.countTransactions(), 108);
      });
    });

    it("rows of the wrong type are named too, together with constraint violations", async () => {
      await withFresh(b, async (wh) => {
        const batch = rows(0, 50);
        batch[5] = makeRow(5, { kafka_offset: "not-a-number" });
        batch[9] = makeRow(9, { event_time_ms: Number.NaN });
        batch[20] = makeRow(20, { amount_minor: 0 });
        batch[30] = makeRow(30, { account_id: null as unknown as string }); // NOT NULL
        await assert.rejects(wh.writeTransactions(batch), (err) =>
          assertRejected(
            err,
            "transactionIds",
            [5, 9, 20, 30].map((i) => batch[i]!.transaction_id),
          ),
        );
        assert.equal(await wh.countTransactions(), 0);
      });
    });

    it("an alert the database refuses is named by alert_id", async () => {
      await withFresh(b, async (wh) => {
        const bad = { ...makeAlert(7), severity: "apocalyptic" } as unknown as Alert;
        await assert.rejects(wh.writeAlerts([makeAlert(1), bad, makeAlert(2)]), (err) =>
          assertRejected(err, "alertIds", [bad.alertId]),
        );
        assert.equal(await wh.countAlerts(), 0);
      });
    });

    it("fixtures carry no card number", () => {
      const text = JSON.stringify([...rows(0, 200), ...Array.from({ length: 20 }, (_, i) => makeAlert(i))]);
      assert.deepEqual(findLuhnDigitRuns(text), []);
    });
  });
}

describe("warehouse sink: DuckDB specifics", () => {
  it("the same file opened twice in one process shares one instance safely", async () => {
    const target = backends[0]!.fresh();
    const [a, b] = await Promise.all([open(target), open(target)]);
    try {
      assert.deepEqual([a.migrations?.applied, b.migrations?.applied].sort(), [[], [1, 2, 3]]);
      await Promise.all([a.writeTransactions(rows(0, 3000)), b.writeTransactions(rows(2000, 5000))]);
      assert.equal(await a.countTransactions(), 5000);
      assert.deepEqual(await a.duplicateTransactionIds(), []);
      await a.close();
      await b.writeTransactions(rows(5000, 5010));
      assert.equal(await b.countTransactions(), 5010);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

/**
 * Both backends write a new batch straight into its table (DuckDB's Appender, PostgreSQL's
 * COPY) and fall back to the staged INSERT … ON CONFLICT only when that fails on a key.
 */
const directBackends: {
  name: string;
  open: (direct?: boolean) => Promise<DuckDbWarehouse | PostgresWarehouse>;
}[] = [
  {
    name: "DuckDB",
    open: (direct) =>
      DuckDbWarehouse.open(
        join(tmp, `${uniqueName("direct")}.duckdb`),
        direct === undefined ? {} : { directAppend: direct },
      ),
  },
  {
    name: "PostgreSQL",
    open: (direct) => {
      const { url, schema } = backends[1]!.fresh();
      return PostgresWarehouse.open(url, {
        schema: schema!,
        ...(direct === undefined ? {} : { directCopy: direct }),
      });
    },
  },
];

for (const d of directBackends) {
  describe(`warehouse sink: ${d.name} direct write, staged fallback`, () => {
    async function withDirect<T>(
      fn: (wh: DuckDbWarehouse | PostgresWarehouse) => Promise<T>,
      direct?: boolean,
    ): Promise<T> {
      const wh = await d.open(direct);
      try {
        return await fn(wh);
      } finally {
        await wh.close();
      }
    }

    it("new rows and alerts go straight into their tables, every one stored", async () => {
      await withDirect(async (wh) => {
        await wh.writeTransactions(rows(0, 5000));
        await wh.writeTransactions(rows(5000, 5003));
        await wh.writeAlerts(Array.from({ length: 30 }, (_, i) => makeAlert(i)));
        assert.deepEqual(wh.writeStats, { direct: 3, fallback: 0, staged: 0 });
        assert.equal(await wh.countTransactions(), 5003);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        assert.equal(await wh.countAlerts(), 30);
        for (const i of [0, 2047, 2048, 4999, 5002]) {
          assert.deepEqual(await wh.getTransaction(makeRow(i).transaction_id), makeRow(i));
        }
      });
    });

    it("a batch partly stored already (a replay) falls back and stores exactly the new rows, first writer kept", async () => {
      await withDirect(async (wh) => {
        await wh.writeTransactions(rows(0, 3000));
        const replay = rows(2000, 4500).map((r) => ({ ...r, processed_at_ms: r.processed_at_ms + 99_999 }));
        await wh.writeTransactions(replay);
        assert.deepEqual(wh.writeStats, { direct: 1, fallback: 1, staged: 1 });
        assert.equal(await wh.countTransactions(), 4500);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        const kept = await wh.getTransaction(makeRow(2500).transaction_id);
        assert.equal(
          kept?.processed_at_ms,
          makeRow(2500).processed_at_ms,
          "the stored row was not rewritten",
        );
        const added = await wh.getTransaction(makeRow(4000).transaction_id);
        assert.equal(
          added?.processed_at_ms,
          makeRow(4000).processed_at_ms + 99_999,
          "the new row is the replay's",
        );
        // The next new batch takes the direct path again (DuckDB: a failed append's buffered rows were
        // once flushed again by the appender's finaliser, into this batch's transaction).
        await wh.writeTransactions(rows(4500, 4600));
        assert.deepEqual(wh.writeStats, { direct: 2, fallback: 1, staged: 1 });
        assert.equal(await wh.countTransactions(), 4600);

        await wh.writeAlerts(Array.from({ length: 10 }, (_, i) => makeAlert(i)));
        await wh.writeAlerts(Array.from({ length: 15 }, (_, i) => makeAlert(i, T0 + 999_999)));
        assert.deepEqual(wh.writeStats, { direct: 3, fallback: 2, staged: 2 });
        assert.equal(await wh.countAlerts(), 15);
        assert.equal((await wh.getAlert(makeAlert(3).alertId))?.detected_at, makeAlert(3).detectedAtMs);
        assert.equal((await wh.getAlert(makeAlert(12).alertId))?.detected_at, T0 + 999_999);
      });
    });

    it("a batch holding a key twice falls back and stores each key once", async () => {
      await withDirect(async (wh) => {
        const batch = [...rows(0, 3000), ...rows(2990, 3010), makeRow(5)];
        await wh.writeTransactions(batch);
        assert.deepEqual(wh.writeStats, { direct: 0, fallback: 1, staged: 1 });
        assert.equal(await wh.countTransactions(), 3010);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        const twice = [makeAlert(1), makeAlert(2), makeAlert(1, T0 + 999_999)];
        await wh.writeAlerts(twice);
        assert.deepEqual(wh.writeStats, { direct: 0, fallback: 2, staged: 2 });
        assert.equal(await wh.countAlerts(), 2);
      });
    });

    it("with the direct path off every batch is written staged, with the same result", async () => {
      await withDirect(async (wh) => {
        await wh.writeTransactions(rows(0, 1000));
        await wh.writeTransactions(rows(500, 1500));
        await wh.writeAlerts([makeAlert(1)]);
        assert.deepEqual(wh.writeStats, { direct: 0, fallback: 0, staged: 3 });
        assert.equal(await wh.countTransactions(), 1500);
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
      }, false);
    });
  });
}

describe("warehouse sink: DuckDB direct append, refusals", () => {
  async function withDuck<T>(fn: (wh: DuckDbWarehouse) => Promise<T>): Promise<T> {
    const wh = await DuckDbWarehouse.open(join(tmp, `${uniqueName("direct")}.duckdb`));
    try {
      return await fn(wh);
    } finally {
      await wh.close();
    }
  }

  it("a refused row falls back too, and is named; no chunk of the batch is stored", async () => {
    await withDuck(async (wh) => {
      // Three data chunks (2048 rows each); the refused row is in the last one.
      const batch = rows(0, 5000);
      batch[4900] = makeRow(4900, { lat: 200 });
      await assert.rejects(wh.writeTransactions(batch), (err) =>
        assertRejected(err, "transactionIds", [batch[4900]!.transaction_id]),
      );
      assert.deepEqual(wh.writeStats, { direct: 0, fallback: 1, staged: 1 });
      assert.equal(await wh.countTransactions(), 0);
    });
  });

  it("figures DuckDB would not take as JSON skip the direct append (it does not validate JSON) and are refused", async () => {
    await withDuck(async (wh) => {
      // JSON.stringify escapes a lone surrogate, JSON.parse takes it back; DuckDB's JSON refuses it.
      const odd = { ...makeAlert(7), figures: { count: 5, city: "\ud800" } };
      await assert.rejects(wh.writeAlerts([makeAlert(1), odd]), (err) =>
        assertRejected(err, "alertIds", [odd.alertId]),
      );
      assert.deepEqual(wh.writeStats, { direct: 0, fallback: 0, staged: 1 });
      assert.equal(await wh.countAlerts(), 0);
      await wh.writeAlerts([makeAlert(1), { ...makeAlert(8), figures: { count: 5, city: "😀 Zürich" } }]);
      assert.deepEqual(wh.writeStats, { direct: 1, fallback: 0, staged: 1 });
    });
  });
});

describe("warehouse sink: PostgreSQL direct COPY, refusals", () => {
  it("a refused row fails the direct COPY, is named, and no row of the batch is stored", async () => {
    const wh = await directBackends[1]!.open();
    try {
      const batch = rows(0, 5000);
      batch[4900] = makeRow(4900, { lat: 200 });
      await assert.rejects(wh.writeTransactions(batch), (err) =>
        assertRejected(err, "transactionIds", [batch[4900]!.transaction_id]),
      );
      assert.deepEqual(wh.writeStats, { direct: 0, fallback: 0, staged: 0 });
      assert.equal(await wh.countTransactions(), 0);
    } finally {
      await wh.close();
    }
  });
});

describe("warehouse sink: PostgreSQL specifics", () => {
  it("concurrent starts apply each migration exactly once (advisory lock)", async () => {
    const target = backends[1]!.fresh();
    const opened = await Promise.all(Array.from({ length: 4 }, () => open(target)));
    try {
      const applied = opened.flatMap((w) => w.migrations?.applied ?? []);
      assert.deepEqual(applied, [1, 2, 3]);
      for (const w of opened) assert.deepEqual(w.migrations?.current, [1, 2, 3]);
    } finally {
      await Promise.all(opened.map((w) => w.close()));
    }
  });

  it("an unreachable PostgreSQL is WAREHOUSE_UNAVAILABLE, retriable, at open and at write", async () => {
    const closed = "postgres://paystream:s3cret@127.0.0.1:1/paystream";
    await assert.rejects(openWarehouse(closed), (err: unknown) => {
      assert.ok(err instanceof PaystreamError);
      assert.equal(err.code, ErrorCodes.WAREHOUSE_UNAVAILABLE);
      assert.equal(err.retriable, true);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
    const pool = new pg.Pool({ connectionString: closed, connectionTimeoutMillis: 2000 });
    const wh = new PostgresWarehouse(pool);
    try {
      for (const write of [() => wh.writeTransactions(rows(0, 3)), () => wh.writeAlerts([makeAlert(1)])]) {
        await assert.rejects(write(), (err: unknown) => {
          assert.ok(err instanceof PaystreamError);
          assert.equal(err.code, ErrorCodes.WAREHOUSE_UNAVAILABLE);
          assert.equal(err.retriable, true);
          return true;
        });
      }
    } finally {
      await wh.close();
    }
  });
});

describe("openWarehouse URLs", () => {
  it("picks the backend from the URL", () => {
    assert.deepEqual(parseWarehouseUrl("duckdb:./data/paystream.duckdb"), {
      kind: "duckdb",
      path: "./data/paystream.duckdb",
    });
    assert.deepEqual(parseWarehouseUrl("/var/lib/paystream/wh.duckdb"), {
      kind: "duckdb",
      path: "/var/lib/paystream/wh.duckdb",
    });
    assert.deepEqual(parseWarehouseUrl("postgresql://u@db:5432/pay?schema=wh"), {
      kind: "postgres",
      url: "postgresql://u@db:5432/pay",
      schema: "wh",
    });
    assert.equal(parseWarehouseUrl("postgres://u@db/pay").kind, "postgres");
    assert.deepEqual(parseWarehouseUrl("bigquery://my-proj/payments"), {
      kind: "bigquery",
      projectId: "my-proj",
      datasetId: "payments",
    });
    assert.deepEqual(
      parseWarehouseUrl("bigquery://", {
        PAYSTREAM_BIGQUERY_PROJECT: "p1",
        PAYSTREAM_BIGQUERY_DATASET: "d1",
      }),
      { kind: "bigquery", projectId: "p1", datasetId: "d1" },
    );
  });

  it("anything else is a ConfigError naming the field warehouse, without echoing secrets", async () => {
    for (const bad of ["", "mysql://u:pw@h/db", "./data/wh.sqlite", "bigquery://only-project", "duckdb:"]) {
      await assert.rejects(openWarehouse(bad, { env: {} }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `${bad}: ${String(err)}`);
        assert.equal(err.field, "warehouse");
        assert.doesNotMatch(err.message, /pw/);
        return true;
      });
    }
  });

  it("a path ending .duckdb opens DuckDB and creates its directory", async () => {
    const wh = await openWarehouse(join(tmp, "nested", "dir", "x.duckdb"));
    try {
      assert.equal(wh.name, "duckdb");
      await wh.writeTransactions(rows(0, 5));
      assert.equal(await wh.countTransactions(), 5);
    } finally {
      await wh.close();
    }
  });
});

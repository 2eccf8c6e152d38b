import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadMigrations } from "../../../src/adapters/warehouse/migrations/runner.ts";
import {
  type AlertRow,
  alertRowFromLogical,
  alertToRow,
  CASE_HIT_COLUMNS,
  CASE_STATUS_COLUMNS,
  caseRowParams,
  caseToRow,
  createTableSql,
  DIALECTS,
  FRAUD_ALERTS,
  FRAUD_CASES,
  isoFromMs,
  LOGICAL_TYPES,
  latestCaseRows,
  mergeCaseRows,
  normalizeValue,
  parseScaledDecimal,
  renderInitMigration,
  SQL_TYPES,
  TABLES,
  TRANSACTIONS,
  toLogical,
  transactionFromLogical,
  upsertCasesSql,
  violationPredicate,
} from "../../../src/adapters/warehouse/schema.ts";
import { type Alert, alertToJson } from "../../../src/contracts/alert.ts";
import { applyStatus, fileAlert, newCase } from "../../../src/core/cases.ts";
import { ROW_T, sampleAlert, sampleRow } from "../../helpers/fixtures.ts";

const T = ROW_T;
const row = sampleRow;

function alert(withCard: boolean): Alert {
  return sampleAlert({ figures: { count: 6, windowMs: 60_000, note: 'tab\tquote"' } }, withCard);
}

/** The SQL type text of a column in a DDL statement: "<name> <type>" at a line start. */
function ddlHas(ddl: string, name: string, type: string): boolean {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^\\s*${esc(name)} ${esc(type)}(\\s|,|$)`, "m").test(ddl);
}

describe("warehouse logical schema", () => {
  it("covers every TransactionRow field and the fraud_alerts columns, each once", () => {
    const fields = Object.keys(row()).sort();
    assert.deepEqual(TRANSACTIONS.columns.map((c) => c.name).sort(), fields);
    assert.deepEqual(
      FRAUD_ALERTS.columns.map((c) => c.name),
      [
        "alert_id",
        "rule_id",
        "rule_type",
        "severity",
        "account_id",
        "transaction_id",
        "event_time",
        "detected_at",
        "card_bin",
        "card_last4",
        "card_token",
        "figures",
        "rule_set_version",
      ],
    );
    for (const t of TABLES) {
      assert.equal(new Set(t.columns.map((c) => c.name)).size, t.columns.length);
      assert.ok(t.columns.some((c) => c.name === t.key && !c.nullable));
      assert.equal(t.columns.find((c) => c.name === "event_time")?.type, "timestamp");
    }
    for (const d of DIALECTS) for (const lt of LOGICAL_TYPES) assert.ok(SQL_TYPES[d][lt], `${d} ${lt}`);
  });

  for (const d of DIALECTS) {
    it(`${d}: the generated DDL has every logical column with its ${d} type`, () => {
      for (const t of TABLES) {
        const ddl = createTableSql(d, t);
        for (const c of t.columns) {
          assert.ok(ddlHas(ddl, c.name, SQL_TYPES[d][c.type]), `${t.name}.${c.name} in\n${ddl}`);
          const line = ddl.split("\n").find((l) => l.trimStart().startsWith(`${c.name} `))!;
          assert.equal(line.includes("NOT NULL"), !c.nullable, line);
        }
      }
    });

    it(`${d}: the committed migrations define every logical column, and 001 is the generated DDL`, () => {
      const migrations = loadMigrations(d);
      assert.ok(migrations.length >= 1);
      assert.equal(migrations[0]!.name, "001_init.sql");
      assert.deepEqual(
        migrations.map((m) => m.version),
        [...migrations.map((m) => m.version)].sort((a, b) => a - b),
      );
      const all = migrations.map((m) => m.sql).join("\n");
      for (const t of TABLES) {
        for (const c of t.columns)
          assert.ok(ddlHas(all, c.name, SQL_TYPES[d][c.type]), `${d} ${t.name}.${c.name}`);
      }
      // Holds while 001 is the only migration; a later one makes 001 a historical file.
      if (migrations.length === 1) assert.equal(migrations[0]!.sql, renderInitMigration(d));
    });
  }

  it("BigQuery tables are partitioned by DATE(event_time) and clustered by account_id, without CHECKs", () => {
    for (const t of TABLES) {
      const ddl = createTableSql("bigquery", t);
      assert.match(ddl, /\nPARTITION BY DATE\(event_time\)\nCLUSTER BY account_id;$/);
      assert.match(ddl, new RegExp(`PRIMARY KEY \\(${t.key}\\) NOT ENFORCED`));
      assert.doesNotMatch(ddl, /CHECK/);
    }
  });

  it("PostgreSQL and DuckDB enforce the key and the CHECKs (amount_minor > 0)", () => {
    for (const d of ["postgres", "duckdb"] as const) {
      const ddl = createTableSql(d, TRANSACTIONS);
      assert.match(ddl, /PRIMARY KEY \(transaction_id\)/);
      assert.match(ddl, /amount_minor \S+ NOT NULL CHECK \(amount_minor > 0\)/);
      assert.match(createTableSql(d, FRAUD_ALERTS), /PRIMARY KEY \(alert_id\)/);
    }
    const p = violationPredicate(TRANSACTIONS);
    assert.match(p, /NOT COALESCE\(\(amount_minor > 0\), TRUE\)/);
    assert.match(p, /transaction_id IS NULL/);
  });

  it("a transaction round-trips through its logical record", () => {
    for (const r of [row(), row({ is_late: true, card_last4: "", lat: -33.8688, lon: 151.2093 })]) {
      const rec = toLogical(TRANSACTIONS, r);
      assert.equal(rec.event_time, T);
      assert.equal(rec.kafka_offset, "9007199254740993");
      assert.deepEqual(transactionFromLogical(rec), r);
    }
    // The instant is kept, the offset of the wire string is normalised to UTC.
    const offset = row({ event_time: "2026-11-25T11:00:00.123+01:00" });
    assert.equal(
      transactionFromLogical(toLogical(TRANSACTIONS, offset)).event_time,
      new Date(T).toISOString(),
    );
  });

  it("alertToRow carries the same facts as alertToJson, and round-trips", () => {
    for (const withCard of [true, false]) {
      const a = alert(withCard);
      const r = alertToRow(a);
      const j = JSON.parse(alertToJson(a));
      assert.equal(r.alert_id, j.alert_id);
      assert.equal(r.rule_id, j.rule_id);
      assert.equal(r.rule_type, j.rule_type);
      assert.equal(r.severity, j.severity);
      assert.equal(r.account_id, j.account_id);
      assert.equal(r.transaction_id, j.transaction_id);
      assert.equal(isoFromMs(r.event_time), j.event_time);
      assert.equal(isoFromMs(r.detected_at), j.detected_at);
      assert.deepEqual(JSON.parse(r.figures), j.figures);
      assert.deepEqual(
        { bin: r.card_bin, last4: r.card_last4, token: r.card_token },
        j.masked_card ?? { bin: null, last4: null, token: null },
      );
      const back: AlertRow = alertRowFromLogical(toLogical(FRAUD_ALERTS, r));
      assert.deepEqual(back, r);
    }
  });

  it("normalises driver values into logical ones", () => {
    const col = (name: string) => TRANSACTIONS.columns.find((c) => c.name === name)!;
    assert.equal(normalizeValue(col("event_time"), new Date(T)), T);
    assert.equal(normalizeValue(col("amount_minor"), "1230"), 1230);
    assert.equal(normalizeValue(col("kafka_offset"), 9007199254740993n), "9007199254740993");
    assert.equal(normalizeValue(col("amount"), "12.3"), "12.30");
    assert.equal(normalizeValue(col("amount"), "7"), "7.00");
    assert.equal(normalizeValue(col("amount"), "0.05"), "0.05");
    assert.equal(normalizeValue(col("is_late"), "t"), true);
    assert.equal(normalizeValue(col("city"), null), null);
  });

  it("parses decimals exactly into scaled integers", () => {
    assert.equal(parseScaledDecimal("12.30"), 1230n);
    assert.equal(parseScaledDecimal("12.3"), 1230n);
    assert.equal(parseScaledDecimal("12"), 1200n);
    assert.equal(parseScaledDecimal("-0.05"), -5n);
    assert.equal(parseScaledDecimal("99999999999999.99"), 9999999999999999n);
    for (const bad of ["", "1.234", "1e3", "abc", "1.", ".5", " 1"]) {
      assert.throws(() => parseScaledDecimal(bad), RangeError, bad);
    }
  });

  it("isoFromMs equals Date#toISOString, and throws on NaN", () => {
    const samples = [
      0,
      1,
      999,
      59_999,
      60_000,
      T,
      T + 59_999,
      253_402_300_799_999,
      253_402_300_800_000,
      -1,
      -86_400_001,
    ];
    for (let i = 0; i < 2000; i++) samples.push(Math.floor(T + (i - 1000) * 7_777.7));
    for (const ms of samples) assert.equal(isoFromMs(ms), new Date(ms).toISOString(), String(ms));
    assert.throws(() => isoFromMs(Number.NaN), RangeError);
  });
});

describe("fraud_cases rows and upsert", () => {
  const filed = (n: number) => {
    let c = newCase(sampleAlert({ transactionId: "tx-0" }, true));
    for (let i = 1; i < n; i++) {
      c = fileAlert(c, sampleAlert({ transactionId: `tx-${i}`, eventTimeMs: T + i * 1000 }), 60_000).case;
    }
    return c;
  };

  it("caseToRow takes status_by/status_at from the last change and keeps notes out of the history", () => {
    const open = caseToRow(filed(2), T);
    assert.deepEqual([open.status_by, open.status_at, open.status_history], [null, null, "[]"]);
    const acked = applyStatus(filed(2), {
      status: "acknowledged",
      by: "ana",
      atMs: T + 1,
      note: "DOB 1980-01-02",
    });
    const done = applyStatus(acked, { status: "resolved_fraud", by: "bo", atMs: T + 2, note: "called" });
    const row = caseToRow(done, T + 3);
    assert.equal(row.status, "resolved_fraud");
    assert.equal(row.status_by, "bo");
    assert.equal(row.status_at, T + 2);
    assert.deepEqual(JSON.parse(row.status_history), [
      { status: "acknowledged", by: "ana", at: new Date(T + 1).toISOString() },
      { status: "resolved_fraud", by: "bo", at: new Date(T + 2).toISOString() },
    ]);
    assert.doesNotMatch(JSON.stringify(row), /1980|called/);
  });

  it("merges a batch per column group: hits from the most hits, status from the latest change, in any order", () => {
    const stale = filed(3); // filed with 3 hits before the analyst's change reached it
    const synced = applyStatus(filed(2), { status: "resolved_fraud", by: "ana", atMs: T + 50 });
    for (const batch of [
      [stale, synced],
      [synced, stale],
      [synced, stale, synced, stale],
    ]) {
      const rows = latestCaseRows(batch, T + 99);
      assert.equal(rows.length, 1);
      const [r] = rows;
      assert.equal(r?.hit_count, 3);
      assert.equal(JSON.parse(String(r?.alert_ids)).length, 3);
      assert.equal(r?.last_seen, stale.lastSeenMs);
      assert.deepEqual([r?.status, r?.status_by, r?.status_at], ["resolved_fraud", "ana", T + 50]);
      assert.equal(r?.updated_at, T + 99);
    }
    // Ties go to the incoming row, as a replay: same hits, same status time.
    const a = caseToRow(synced, T);
    assert.deepEqual(mergeCaseRows(a, { ...a, updated_at: T + 1 }), { ...a, updated_at: T + 1 });
  });

  for (const d of ["postgres", "duckdb"] as const) {
    it(`${d}: the upsert guards hit and status columns separately, updated_at not at all`, () => {
      const sql = upsertCasesSql(d, 2);
      const params = FRAUD_CASES.columns.length * 2;
      assert.ok(sql.includes(`$${params}::`) && !sql.includes(`$${params + 1}`));
      assert.doesNotMatch(sql, /DO UPDATE SET .* WHERE /);
      const ts = SQL_TYPES[d].timestamp;
      const epoch = `'1970-01-01T00:00:00Z'::${ts}`;
      for (const c of CASE_HIT_COLUMNS) {
        assert.ok(
          sql.includes(
            `${c} = CASE WHEN excluded.hit_count >= fraud_cases.hit_count THEN excluded.${c} ELSE fraud_cases.${c} END`,
          ),
          c,
        );
      }
      for (const c of CASE_STATUS_COLUMNS) {
        assert.ok(
          sql.includes(
            `${c} = CASE WHEN coalesce(excluded.status_at, ${epoch}) >= coalesce(fraud_cases.status_at, ${epoch}) THEN excluded.${c} ELSE fraud_cases.${c} END`,
          ),
          c,
        );
      }
      assert.match(sql, /, updated_at = excluded\.updated_at$/);
      const assigned = [...sql.matchAll(/(?:SET |, )(\w+) = /g)].map((m) => m[1]).sort();
      assert.deepEqual(
        assigned,
        FRAUD_CASES.columns
          .map((c) => c.name)
          .filter((n) => n !== FRAUD_CASES.key)
          .sort(),
      );
    });

    it(`${d}: the committed migrations define every fraud_cases column with its type`, () => {
      const all = loadMigrations(d)
        .map((m) => m.sql)
        .join("\n");
      for (const c of FRAUD_CASES.columns) {
        const type = SQL_TYPES[d][c.type];
        const added = new RegExp(`ADD COLUMN (IF NOT EXISTS )?${c.name} ${type}\\b`).test(all);
        assert.ok(ddlHas(all, c.name, type) || added, `${d} fraud_cases.${c.name} ${type}`);
      }
    });
  }

  it("bigquery: migration 003 adds the status columns", () => {
    const sql = loadMigrations("bigquery").find((m) => m.version === 3)?.sql ?? "";
    for (const c of CASE_STATUS_COLUMNS.filter((n) => n !== "status")) {
      const col = FRAUD_CASES.columns.find((x) => x.name === c)!;
      assert.match(sql, new RegExp(`ADD COLUMN IF NOT EXISTS ${c} ${SQL_TYPES.bigquery[col.type]};`));
    }
  });

  it("caseRowParams sends NULL for a never-changed status time and ISO 8601 otherwise", () => {
    const params = caseRowParams([caseToRow(filed(1), T)]);
    const at = FRAUD_CASES.columns.findIndex((c) => c.name === "status_at");
    assert.equal(params[at], null);
    const resolved = applyStatus(filed(1), { status: "resolved_legitimate", by: "ana", atMs: T });
    assert.equal(caseRowParams([caseToRow(resolved, T)])[at], new Date(T).toISOString());
  });
});

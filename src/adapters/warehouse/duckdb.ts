/**
 * DuckDB warehouse sink: the embedded default (one file, e.g. ./data/paystream.duckdb).
 *
 * Per batch: the rows are written column by column into DuckDB data chunks (2048 rows each,
 * values set in tight loops, no per-row async work), then, in one transaction, appended with
 * the Appender straight into the table:
 *
 *   BEGIN; append + flush (the table's NOT NULL, CHECK and primary key are checked); COMMIT
 *
 * A batch the append refuses — a key already stored (a replay after a crash re-sends rows that
 * were committed), a key twice in the batch, a row the table refuses, a concurrent writer on the
 * same file — is rolled back whole and written again by the staged path: appended to a TEMP
 * staging table (in memory, no WAL), then, in one transaction,
 *
 *   INSERT INTO <table> SELECT ... FROM <stage> ON CONFLICT (<key>) DO NOTHING
 *
 * so a replayed row is skipped rather than doubled (the first writer wins), and the batch is
 * all-or-nothing either way. The staged INSERT costs twice the direct append's CPU per row
 * (33 vs 16 µs at 1M rows) and grows with the table, so it only runs when the append failed;
 * measured in docs/processor.md, "DuckDB writes". Never row-by-row INSERTs. One connection,
 * writes serialised: DuckDB allows a single writing process per file (it takes a file lock),
 * and one connection keeps the staging tables simple.
 *
 * Errors: a row the database refuses (NOT NULL, CHECK, conversion, invalid JSON) →
 * PS_WAREHOUSE_REJECTED naming the offending keys (found by querying the still-filled staging
 * table); I/O and memory errors → PS_WAREHOUSE_UNAVAILABLE retriable; anything else →
 * UNAVAILABLE, not retriable.
 *
 * Over 500 lines: the data-chunk encoders are the hot path and only correct together with the
 * appender and staging code beside them.
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import {
  BIGINT,
  BOOLEAN,
  DECIMAL,
  DOUBLE,
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBType,
  type DuckDBValue,
  decimalValue,
  INTEGER,
  LIST,
  listValue,
  TIMESTAMPTZ,
  timestampTZValue,
  VARCHAR,
} from "@duckdb/node-api";
import type { Alert } from "../../contracts/alert.ts";
import type { FraudCase } from "../../contracts/case.ts";
import type { TransactionRow } from "../../contracts/rows.ts";
import { isPaystreamError, type PaystreamError } from "../../core/errors.ts";
import { MigrationError, type MigrationReport, migrateDuckDb } from "./migrations/runner.ts";
import {
  type AlertRow,
  alertRowFromLogical,
  alertToRow,
  type ColumnShape,
  caseRowParams,
  chunksOf,
  columnNames,
  DECIMAL_PRECISION,
  DECIMAL_SCALE,
  FRAUD_ALERTS,
  FRAUD_CASES,
  findUnencodable,
  type InspectableWarehouse,
  type KeyedTableName,
  keyColumnOf,
  keyOf,
  type LogicalRecord,
  type LogicalType,
  type LogicalValue,
  latestCaseRows,
  normalizeValue,
  parseScaledDecimal,
  RowEncodeError,
  rejectedError,
  SQL_TYPES,
  type TableDef,
  TRANSACTIONS,
  transactionFromLogical,
  unavailableError,
  upsertCasesSql,
  violationPredicate,
} from "./schema.ts";

const BACKEND = "DuckDB";
/** DuckDB's vector size: the most rows a data chunk holds. */
const CHUNK_ROWS = 2048;
const DECIMAL_LIMIT = 10n ** BigInt(DECIMAL_PRECISION);
/** countByKey: keys per query (each query scans the key column once). */
const DUCKDB_KEYS_PER_QUERY = 100_000;
/** Case rows per upsert statement (10 parameters each). */
const CASES_PER_STATEMENT = 500;

/**
 * WAL size that triggers a checkpoint. DuckDB's default (16 MB) checkpoints every ~40K rows,
 * and each checkpoint rewrites the primary-key index: 256 MB cut commit time ~3x in
 * bench/warehouse.bench.ts, at the price of a longer WAL replay after a crash.
 */
const DEFAULT_CONFIG: Record<string, string> = { checkpoint_threshold: "256MB" };

export interface DuckDbWarehouseOptions {
  /** Run pending migrations at open (default true). */
  migrate?: boolean;
  /** DuckDB configuration options (e.g. { threads: "4", memory_limit: "2GB" }). */
  config?: Record<string, string>;
  /**
   * Append each batch straight into its table, falling back to the staged INSERT … ON CONFLICT
   * only when the append fails (default true). false: every batch takes the staged path (the
   * only path before; kept to compare the two in bench/warehouse.bench.ts).
   */
  directAppend?: boolean;
}

/** How this warehouse's batches were written, since it was opened. */
export interface DuckDbWriteStats {
  /** Batches appended straight into their table. */
  direct: number;
  /** Batches whose direct append failed (a stored key, a key twice, a refused row) and went staged. */
  fallback: number;
  /** Batches written by the staged path (fallbacks included). */
  staged: number;
}

// ----------------------------------------------------------------------------- value encoding

type Scalar = string | number | boolean;
type DuckConverter = (v: Scalar) => DuckDBValue;

const MIN_INT32 = -(2 ** 31);
const MAX_INT32 = 2 ** 31 - 1;

const CHUNK_TYPES: Record<LogicalType, DuckDBType> = {
  text: VARCHAR,
  json: VARCHAR, // staged as text; the INSERT casts to JSON, which validates it
  int32: INTEGER,
  int64: BIGINT,
  float64: DOUBLE,
  decimal: DECIMAL(DECIMAL_PRECISION, DECIMAL_SCALE),
  bool: BOOLEAN,
  timestamp: TIMESTAMPTZ,
};

/** Digits before the point that keep whole * 10^scale + fraction a safe integer. */
const FAST_DECIMAL_DIGITS = 13;

/**
 * parseScaledDecimal at DECIMAL_SCALE, without its regex and string padding for the common
 * shape ("1234.5", "12.30", "7"): digits accumulated in a number, one BigInt at the end.
 */
function scaledDecimal(s: string): bigint {
  const n = s.length;
  let whole = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) break;
    if (c < 48 || c > 57) return parseScaledDecimal(s, DECIMAL_SCALE);
    whole = whole * 10 + (c - 48);
  }
  const places = i < n ? n - i - 1 : 0;
  if (i === 0 || i > FAST_DECIMAL_DIGITS || (i < n && places === 0) || places > DECIMAL_SCALE) {
    return parseScaledDecimal(s, DECIMAL_SCALE);
  }
  let frac = 0;
  for (let j = i + 1; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c < 48 || c > 57) return parseScaledDecimal(s, DECIMAL_SCALE);
    frac = frac * 10 + (c - 48);
  }
  for (let k = places; k < DECIMAL_SCALE; k++) frac *= 10;
  return BigInt(whole * 10 ** DECIMAL_SCALE + frac);
}

/** Logical value → DuckDB value. Throws on a value that cannot be one (caught per row). */
const CONVERTERS: Record<LogicalType, DuckConverter> = {
  text: (v) => (typeof v === "string" ? v : String(v)),
  json: (v) => (typeof v === "string" ? v : String(v)),
  int32: (v) => {
    const n = typeof v === "number" ? v : Number(v);
    if (!Number.isInteger(n) || n < MIN_INT32 || n > MAX_INT32) throw new RangeError(`not an int32: ${v}`);
    return n;
  },
  int64: (v) => {
    if (typeof v === "boolean") throw new TypeError("not an int64: boolean");
    return BigInt(v); // throws on "1.5", "abc", 1.5; the vector refuses > int64
  },
  float64: (v) => (typeof v === "number" ? v : Number(v)),
  decimal: (v) => {
    const scaled = scaledDecimal(String(v));
    if (scaled >= DECIMAL_LIMIT || scaled <= -DECIMAL_LIMIT)
      throw new RangeError(`decimal out of range: ${v}`);
    return decimalValue(scaled, DECIMAL_PRECISION, DECIMAL_SCALE);
  },
  bool: (v) => {
    if (typeof v !== "boolean") throw new TypeError(`not a boolean: ${v}`);
    return v;
  },
  timestamp: (v) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new RangeError(`not epoch ms: ${v}`);
    const micros = v * 1000;
    return timestampTZValue(Number.isSafeInteger(micros) ? BigInt(micros) : BigInt(v) * 1000n);
  },
};

/**
 * Fills data chunks for `rows` (column-major, tight loops) and hands each to `sink`.
 * Throws RowEncodeError with the index of the first row that cannot be converted.
 */
export function buildChunks<R>(
  table: TableDef<R>,
  rows: readonly R[],
  sink: (chunk: DuckDBDataChunk) => void,
): void {
  const cols = table.columns;
  const types = cols.map((c) => CHUNK_TYPES[c.type]);
  for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
    const count = Math.min(CHUNK_ROWS, rows.length - start);
    const chunk = DuckDBDataChunk.create(types, count);
    for (let j = 0; j < cols.length; j++) {
      const get = cols[j]!.get;
      const conv = CONVERTERS[cols[j]!.type];
      const vec = chunk.getColumnVector(j);
      let i = 0;
      try {
        for (; i < count; i++) {
          const v = get(rows[start + i]!);
          vec.setItem(i, v === null || v === undefined ? null : conv(v));
        }
      } catch (err) {
        throw new RowEncodeError(start + i, err);
      }
      vec.flush();
    }
    sink(chunk);
  }
}

export function collectChunks<R>(table: TableDef<R>, rows: readonly R[]): DuckDBDataChunk[] {
  const chunks: DuckDBDataChunk[] = [];
  buildChunks(table, rows, (c) => chunks.push(c));
  return chunks;
}

/** One row through the converters, for naming every unconvertible row after a failure. */
function checkConvertible<R>(table: TableDef<R>, row: R): void {
  for (const c of table.columns) {
    const v = c.get(row);
    if (v !== null && v !== undefined) {
      const out = CONVERTERS[c.type](v);
      if (typeof out === "bigint" && BigInt.asIntN(64, out) !== out)
        throw new RangeError("bigint out of int64 range");
    }
  }
}

// ----------------------------------------------------------------------------- errors

type ErrorKind = "rejected" | "transient" | "fatal";

const REJECTED_TYPES = new Set([
  "Constraint",
  "Conversion",
  "Invalid Input",
  "Out of Range",
  "Mismatch Type",
]);
const TRANSIENT_TYPES = new Set(["IO", "Out of Memory", "Interrupt", "TransactionContext"]);

const MAX_CONFLICT_RETRIES = 5;

/**
 * A conflict with another connection's concurrent transaction: with ON CONFLICT DO NOTHING a
 * duplicate primary key can only come from there, or a TransactionContext write-write conflict.
 */
function isWriteConflict(err: unknown): boolean {
  const msg = String((err as Error | null)?.message ?? "");
  return (
    /^Constraint Error: Duplicate key .* violates primary key constraint/.test(msg) ||
    /^TransactionContext Error: .*(conflict|duplicate key)/i.test(msg)
  );
}

/** The Appender prefixes DuckDB's message ("Failed to append: IO Error: ..."). */
const APPEND_PREFIX = "Failed to append: ";

/**
 * A failed direct append: an I/O or memory error is an outage, thrown as such; anything else
 * (a stored key, a key twice in the batch, NOT NULL or CHECK, a concurrent writer's conflict)
 * is left to the staged path, which skips stored keys, names refused rows and retries conflicts.
 */
function isDirectOutage(err: unknown): boolean {
  const msg = String((err as Error | null)?.message ?? "");
  const unwrapped = { message: msg.startsWith(APPEND_PREFIX) ? msg.slice(APPEND_PREFIX.length) : msg };
  return !isWriteConflict(unwrapped) && classifyDuckDbError(unwrapped) === "transient";
}

/** By DuckDB's error type, the prefix of its message ("Constraint Error: ..."). */
export function classifyDuckDbError(err: unknown): ErrorKind {
  const m = /^([A-Za-z ]+?) Error:/.exec(String((err as Error | null)?.message ?? ""));
  const type = m?.[1];
  if (type && REJECTED_TYPES.has(type)) return "rejected";
  if (type && TRANSIENT_TYPES.has(type)) return "transient";
  return "fatal";
}

// ----------------------------------------------------------------------------- the sink

interface TablePlan<R> {
  readonly table: TableDef<R>;
  /** Getters of the JSON columns: the Appender does not validate JSON, so a direct append checks it first. */
  readonly jsonGets: readonly ((row: R) => LogicalValue | undefined)[];
  readonly stage: string;
  readonly createStage: string;
  readonly insertSql: string;
  readonly diagnoseSql: string;
}

function plan<R>(table: TableDef<R>): TablePlan<R> {
  const stage = `_ps_stage_${table.name}`;
  const cols = columnNames(table);
  const stageCols = table.columns.map(
    (c) => `${c.name} ${c.type === "json" ? "VARCHAR" : SQL_TYPES.duckdb[c.type]}`,
  );
  const jsonChecks = table.columns
    .filter((c) => c.type === "json")
    .map((c) => ` OR (${c.name} IS NOT NULL AND NOT json_valid(${c.name}))`)
    .join("");
  return {
    table,
    jsonGets: table.columns.filter((c) => c.type === "json").map((c) => c.get),
    stage,
    createStage: `CREATE OR REPLACE TEMP TABLE ${stage} (${stageCols.join(", ")})`,
    insertSql: `INSERT INTO ${table.name} (${cols}) SELECT ${cols} FROM temp.main.${stage} ON CONFLICT (${table.key}) DO NOTHING`,
    diagnoseSql: `SELECT DISTINCT ${table.key} AS k FROM temp.main.${stage} WHERE ${violationPredicate(table)}${jsonChecks}`,
  };
}

const TX_PLAN = plan(TRANSACTIONS);
const ALERT_PLAN = plan(FRAUD_ALERTS);

/** A \uD800–\uDFFF escape: DuckDB refuses a lone one, JSON.parse does not (pairs go staged too). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/**
 * Whether every JSON value of the rows is JSON that DuckDB accepts too, so that a direct append
 * cannot store what the staged path's cast to JSON would refuse. Conservative: JSON.parse's
 * grammar is stricter than DuckDB's except for surrogate escapes, and a value with one is left
 * to the staged path, where DuckDB decides.
 */
function jsonAppendable<R>(p: TablePlan<R>, rows: readonly R[]): boolean {
  for (const get of p.jsonGets) {
    for (const row of rows) {
      const v = get(row);
      if (v === null || v === undefined) continue;
      if (typeof v !== "string" || SURROGATE_ESCAPE.test(v)) return false;
      try {
        JSON.parse(v);
      } catch {
        return false;
      }
    }
  }
  return true;
}

function fromDuck(col: ColumnShape, v: DuckDBValue): LogicalValue {
  if (v === null) return null;
  if (col.type === "timestamp") return Number((v as { micros: bigint }).micros / 1000n);
  if (typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") {
    return normalizeValue(col, v);
  }
  return normalizeValue(col, String(v));
}

interface SharedInstance {
  readonly instance: DuckDBInstance;
  refs: number;
}

/** Open DuckDB instances by absolute file path, shared by the warehouses of this process. */
const instances = new Map<string, SharedInstance>();
/** The open in progress per file path. */
const opening = new Map<string, Promise<void>>();

function releaseInstance(key: string | undefined, shared: SharedInstance): void {
  if (--shared.refs > 0) return;
  if (key && instances.get(key) === shared) instances.delete(key);
  shared.instance.closeSync();
}

export class DuckDbWarehouse implements InspectableWarehouse {
  readonly name = "duckdb";
  readonly path: string;
  /** What the migration run at open did. */
  migrations: MigrationReport | undefined;
  readonly #key: string | undefined;
  readonly #shared: SharedInstance;
  readonly #conn: DuckDBConnection;
  readonly #directAppend: boolean;
  readonly #stats: DuckDbWriteStats = { direct: 0, fallback: 0, staged: 0 };
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    path: string,
    key: string | undefined,
    shared: SharedInstance,
    conn: DuckDBConnection,
    directAppend: boolean,
  ) {
    this.path = path;
    this.#key = key;
    this.#shared = shared;
    this.#conn = conn;
    this.#directAppend = directAppend;
  }

  /** How batches were written since open (a copy). */
  get writeStats(): DuckDbWriteStats {
    return { ...this.#stats };
  }

  /**
   * Opens (creating the file and its directory if needed) and applies pending migrations.
   * `path` may be ":memory:". A file held by another process → PS_WAREHOUSE_UNAVAILABLE, retriable.
   * Opening the same file twice in one process shares one DuckDB instance (two instances of
   * one file in a process are unsafe); each warehouse has its own connection.
   */
  static async open(path: string, opts: DuckDbWarehouseOptions = {}): Promise<DuckDbWarehouse> {
    const key = path === ":memory:" ? undefined : resolve(path);
    // Opens of one file run one after the other: migrations must not race on one instance.
    const prev = key ? (opening.get(key) ?? Promise.resolve()) : Promise.resolve();
    const run = prev.then(
      () => DuckDbWarehouse.#open(path, key, opts),
      () => DuckDbWarehouse.#open(path, key, opts),
    );
    if (key) {
      const tail = run.then(
        () => {},
        () => {},
      );
      opening.set(key, tail);
      void tail.then(() => {
        if (opening.get(key) === tail) opening.delete(key);
      });
    }
    return run;
  }

  static async #open(
    path: string,
    key: string | undefined,
    opts: DuckDbWarehouseOptions,
  ): Promise<DuckDbWarehouse> {
    let shared = key ? instances.get(key) : undefined;
    if (!shared) {
      try {
        if (key) mkdirSync(dirname(key), { recursive: true });
        shared = {
          instance: await DuckDBInstance.create(path, { ...DEFAULT_CONFIG, ...opts.config }),
          refs: 0,
        };
      } catch (err) {
        const locked = /lock/i.test(String((err as Error).message));
        throw unavailableError(BACKEND, `cannot open ${path}`, err, locked, { path });
      }
      if (key) instances.set(key, shared);
    }
    shared.refs++;
    let conn: DuckDBConnection;
    try {
      conn = await shared.instance.connect();
    } catch (err) {
      releaseInstance(key, shared);
      throw unavailableError(BACKEND, `cannot connect to ${path}`, err, false, { path });
    }
    const wh = new DuckDbWarehouse(path, key, shared, conn, opts.directAppend !== false);
    try {
      if (opts.migrate !== false) wh.migrations = await migrateDuckDb(conn);
      for (const p of [TX_PLAN, ALERT_PLAN]) await conn.run(p.createStage);
    } catch (err) {
      wh.#release();
      const cause = err instanceof MigrationError ? err.cause : err;
      throw unavailableError(BACKEND, "migrations failed", err, classifyDuckDbError(cause) === "transient", {
        path,
        ...(err instanceof MigrationError ? { migration: err.migration } : {}),
      });
    }
    return wh;
  }

  async writeTransactions(rows: TransactionRow[]): Promise<void> {
    await this.#writeBatch(TX_PLAN, rows);
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    await this.#writeBatch(ALERT_PLAN, alerts.map(alertToRow));
  }

  async writeCases(cases: readonly FraudCase[]): Promise<void> {
    const rows = latestCaseRows(cases, Date.now());
    for (const chunk of chunksOf(rows, CASES_PER_STATEMENT)) {
      await this.#serial(async () => {
        try {
          await this.#conn.run(upsertCasesSql("duckdb", chunk.length), caseRowParams(chunk));
        } catch (err) {
          if (classifyDuckDbError(err) === "rejected") throw rejectedError(BACKEND, FRAUD_CASES, [], err);
          throw this.#mapError(err, "write to fraud_cases failed");
        }
      });
    }
  }

  /**
   * The data chunks are built before taking the connection (pure CPU work on native buffers),
   * so with concurrent writers one batch is encoded while the previous one is inserted.
   */
  async #writeBatch<R>(p: TablePlan<R>, rows: readonly R[]): Promise<number> {
    if (rows.length === 0) return 0;
    let chunks: DuckDBDataChunk[];
    try {
      chunks = collectChunks(p.table, rows);
    } catch (err) {
      if (!(err instanceof RowEncodeError)) throw err;
      return this.#serial(() => this.#rejectUnconvertible(p, rows, err));
    }
    return this.#serial(() => this.#write(p, rows, chunks));
  }

  /** One operation at a time on the connection (staging tables and transactions are per connection). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(unavailableError(BACKEND, "write", "warehouse is closed", false));
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Rows actually inserted (the rest were already there). */
  async #write<R>(p: TablePlan<R>, rows: readonly R[], chunks: readonly DuckDBDataChunk[]): Promise<number> {
    if (this.#directAppend && jsonAppendable(p, rows)) {
      try {
        const n = await this.#appendDirect(p, chunks);
        this.#stats.direct++;
        return n;
      } catch (err) {
        if (isDirectOutage(err)) throw this.#mapError(err, `write to ${p.table.name} failed`);
        this.#stats.fallback++;
      }
    }
    this.#stats.staged++;
    return this.#writeStaged(p, chunks);
  }

  /** The whole batch appended straight into the table in one transaction, or nothing. */
  async #appendDirect<R>(p: TablePlan<R>, chunks: readonly DuckDBDataChunk[]): Promise<number> {
    await this.#conn.run("BEGIN TRANSACTION");
    try {
      await this.#appendChunks(p.table.name, "main", undefined, chunks);
      await this.#conn.run("COMMIT");
    } catch (err) {
      // A failed append aborts the transaction; a failed COMMIT may already have ended it.
      await this.#conn.run("ROLLBACK").catch(() => {});
      throw err;
    }
    let n = 0;
    for (const c of chunks) n += c.rowCount;
    return n;
  }

  /** Appends chunks to a table and flushes them into the connection's current transaction. */
  async #appendChunks(
    table: string,
    schema: string,
    catalog: string | undefined,
    chunks: readonly DuckDBDataChunk[],
  ): Promise<void> {
    const appender = await this.#conn.createAppender(table, schema, catalog);
    try {
      for (const chunk of chunks) appender.appendDataChunk(chunk);
      appender.flushSync();
    } catch (err) {
      // A failed flush keeps its rows buffered, and closing (or the garbage collector's
      // finaliser) would flush them again, into whatever transaction is open then: drop them.
      // Close then fails too ("transaction is aborted"): report the flush's error.
      try {
        appender.clear();
        appender.closeSync();
      } catch {}
      throw err;
    }
    appender.closeSync();
  }

  /** Every batch the direct append did not take: stage, then INSERT … ON CONFLICT DO NOTHING. */
  async #writeStaged<R>(p: TablePlan<R>, chunks: readonly DuckDBDataChunk[]): Promise<number> {
    try {
      await this.#stage(p, chunks);
    } catch (err) {
      throw this.#mapError(err, `staging ${p.table.name} failed`);
    }
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#insertStaged(p);
        } catch (err) {
          // Another connection to this file committed some of the same keys meanwhile: once
          // it has, ON CONFLICT skips them, so trying again is the fix.
          if (!isWriteConflict(err) || attempt >= MAX_CONFLICT_RETRIES) throw err;
        }
      }
    } catch (err) {
      if (isWriteConflict(err)) throw unavailableError(BACKEND, "concurrent write conflict", err, true);
      if (classifyDuckDbError(err) === "rejected") {
        const offenders = await this.#diagnose(p).catch(() => [] as string[]);
        throw rejectedError(BACKEND, p.table, offenders, err);
      }
      throw this.#mapError(err, `write to ${p.table.name} failed`);
    } finally {
      await this.#clearStage(p);
    }
  }

  async #insertStaged<R>(p: TablePlan<R>): Promise<number> {
    await this.#conn.run("BEGIN TRANSACTION");
    try {
      const r = await this.#conn.run(p.insertSql);
      await this.#conn.run("COMMIT");
      return r.rowsChanged;
    } catch (err) {
      await this.#conn.run("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  /** Some rows cannot be converted: name them, and whatever else of the batch the table would refuse. */
  async #rejectUnconvertible<R>(p: TablePlan<R>, rows: readonly R[], err: RowEncodeError): Promise<never> {
    const bad = findUnencodable(rows, (r) => checkConvertible(p.table, r));
    const unconvertible = (bad.length > 0 ? bad : [err.index]).map((i) => keyOf(p.table, rows[i]!));
    const skip = new Set(unconvertible);
    let refused: string[] = [];
    try {
      await this.#stage(
        p,
        collectChunks(
          p.table,
          rows.filter((r) => !skip.has(keyOf(p.table, r))),
        ),
      );
      refused = await this.#diagnose(p);
    } catch {
      // naming the other rows is best effort
    } finally {
      await this.#clearStage(p);
    }
    throw rejectedError(BACKEND, p.table, [...unconvertible, ...refused], err.cause);
  }

  /** Appends chunks to the (empty) staging table; on failure the staging table is emptied again. */
  async #stage<R>(p: TablePlan<R>, chunks: readonly DuckDBDataChunk[]): Promise<void> {
    try {
      await this.#appendChunks(p.stage, "main", "temp", chunks);
    } catch (err) {
      await this.#clearStage(p);
      throw err;
    }
  }

  async #clearStage<R>(p: TablePlan<R>): Promise<void> {
    await this.#conn.run(`DELETE FROM temp.main.${p.stage}`).catch(() => {});
  }

  /** Keys of staged rows the real table would refuse (NOT NULL, CHECK, invalid JSON). */
  async #diagnose<R>(p: TablePlan<R>): Promise<string[]> {
    const reader = await this.#conn.runAndReadAll(p.diagnoseSql);
    return reader.getRows().map((r) => String(r[0]));
  }

  #mapError(err: unknown, what: string): PaystreamError {
    if (isPaystreamError(err)) return err;
    return unavailableError(BACKEND, what, err, classifyDuckDbError(err) === "transient", {
      path: this.path,
    });
  }

  // --------------------------------------------------------------------------- read side

  async #rows(
    sql: string,
    params: DuckDBValue[] = [],
    types?: DuckDBType[],
  ): Promise<Record<string, DuckDBValue>[]> {
    return this.#serial(async () => {
      try {
        const reader = await this.#conn.runAndReadAll(sql, params.length > 0 ? params : undefined, types);
        return reader.getRowObjects();
      } catch (err) {
        throw this.#mapError(err, "query failed");
      }
    });
  }

  async countTransactions(): Promise<number> {
    return Number((await this.#rows("SELECT count(*) AS n FROM transactions"))[0]!.n);
  }

  async countAlerts(): Promise<number> {
    return Number((await this.#rows("SELECT count(*) AS n FROM fraud_alerts"))[0]!.n);
  }

  async duplicateTransactionIds(): Promise<string[]> {
    const rows = await this.#rows(
      "SELECT transaction_id AS id FROM transactions GROUP BY transaction_id HAVING count(*) > 1 ORDER BY 1",
    );
    return rows.map((r) => String(r.id));
  }

  async alertIds(): Promise<string[]> {
    const rows = await this.#rows("SELECT alert_id AS id FROM fraud_alerts ORDER BY alert_id");
    return rows.map((r) => String(r.id));
  }

  /** Rows per key: one hash semi-join of the table against a list parameter per chunk of keys. */
  async countByKey(table: KeyedTableName, keys: readonly string[]): Promise<Map<string, number>> {
    const column = keyColumnOf(table);
    const sql = `SELECT ${column} AS k, count(*) AS n FROM ${table} WHERE ${column} IN (SELECT unnest($1)) GROUP BY 1`;
    const out = new Map<string, number>();
    for (const chunk of chunksOf(keys, DUCKDB_KEYS_PER_QUERY)) {
      const rows = await this.#rows(sql, [listValue(chunk)], [LIST(VARCHAR)]);
      for (const r of rows) out.set(String(r.k), Number(r.n));
    }
    return out;
  }

  async #getLogical<R>(table: TableDef<R>, key: string): Promise<LogicalRecord | undefined> {
    const rows = await this.#rows(`SELECT ${columnNames(table)} FROM ${table.name} WHERE ${table.key} = $1`, [
      key,
    ]);
    const row = rows[0];
    if (!row) return undefined;
    const rec: LogicalRecord = {};
    for (const c of table.columns) rec[c.name] = fromDuck(c, row[c.name] ?? null);
    return rec;
  }

  /** One stored transaction, read back into a TransactionRow (event_time as UTC ISO 8601). */
  async getTransaction(id: string): Promise<TransactionRow | undefined> {
    const rec = await this.#getLogical(TRANSACTIONS, id);
    return rec && transactionFromLogical(rec);
  }

  async getAlert(alertId: string): Promise<AlertRow | undefined> {
    const rec = await this.#getLogical(FRAUD_ALERTS, alertId);
    return rec && alertRowFromLogical(rec);
  }

  /** One stored case row in logical form (timestamps as epoch ms, JSON as text). */
  async getCase(caseId: string): Promise<LogicalRecord | undefined> {
    return this.#getLogical(FRAUD_CASES, caseId);
  }

  /** Column names of a warehouse table as the database has them, in order. */
  async tableColumns(table: string): Promise<string[]> {
    const rows = await this.#rows(
      "SELECT column_name AS c FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = $1 ORDER BY ordinal_position",
      [table],
    );
    return rows.map((r) => String(r.c));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#tail;
    this.#closed = true;
    this.#release();
  }

  #release(): void {
    this.#conn.closeSync();
    releaseInstance(this.#key, this.#shared);
  }
}

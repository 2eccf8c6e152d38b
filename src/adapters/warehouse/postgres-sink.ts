/**
 * PostgreSQL warehouse sink. Per batch, on one pooled connection, all-or-nothing:
 *
 *   direct:  BEGIN; COPY <table> FROM STDIN; COMMIT
 *            (text format, built in one tight loop, no per-row await)
 *   staged, when the direct COPY hit a key already stored or twice in the batch (23505: a
 *   replay after a crash), or a deadlock with an overlapping writer (40P01):
 *            BEGIN; COPY _ps_stage_<table> FROM STDIN;
 *            INSERT INTO <table> SELECT ... FROM _ps_stage_<table> ON CONFLICT (<key>) DO NOTHING;
 *            COMMIT  (the staging table is ON COMMIT DELETE ROWS)
 *
 * so a replayed row is skipped, never doubled. Almost every batch is new rows, and the direct
 * COPY spares the server a second write of each row, the sort and the conflict checks: about
 * half of PostgreSQL's CPU per row (docs/processor.md, "Warehouse writes"). A conflict rolls
 * the whole COPY back, so the staged retry sees exactly what was stored before. The staging
 * table is a per-session TEMP table created once per connection (LIKE the real table: same
 * types and NOT NULLs, no CHECKs, no index), so it costs no WAL and no catalog churn per batch.
 *
 * Alerts: ON CONFLICT (alert_id) DO NOTHING. An alert id is (rule, account, transaction), so a
 * replay recomputes the same alert with a later detected_at; the first detection is the true
 * one and is kept.
 *
 * Errors: connection problems → PS_WAREHOUSE_UNAVAILABLE retriable; data the database refuses
 * (SQLSTATE classes 22 and 23) → PS_WAREHOUSE_REJECTED, not retriable, naming the offending
 * keys in details.transactionIds / details.alertIds (found by a diagnostic pass that is
 * rolled back); anything else (e.g. a missing table) → UNAVAILABLE, not retriable.
 */
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Alert } from "../../contracts/alert.ts";
import type { FraudCase } from "../../contracts/case.ts";
import type { TransactionRow } from "../../contracts/rows.ts";
import { ConfigError, isPaystreamError, type PaystreamError } from "../../core/errors.ts";
import { redactUrl } from "../../lib/url.ts";
import { MigrationError, type MigrationReport, migratePostgres } from "./migrations/runner.ts";
import { connectPostgres, type PgPool } from "./postgres.ts";
import {
  type AlertRow,
  alertRowFromLogical,
  alertToRow,
  type ColumnShape,
  caseRowParams,
  chunksOf,
  columnNames,
  FRAUD_ALERTS,
  FRAUD_CASES,
  findUnencodable,
  type InspectableWarehouse,
  isoFromMs,
  type KeyedTableName,
  keyColumnOf,
  keyOf,
  type LogicalRecord,
  type LogicalType,
  type LogicalValue,
  latestCaseRows,
  normalizeValue,
  RowEncodeError,
  rejectedError,
  type TableDef,
  TRANSACTIONS,
  transactionFromLogical,
  unavailableError,
  upsertCasesSql,
  violationPredicate,
} from "./schema.ts";

const BACKEND = "PostgreSQL";
export const PG_SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Diagnostic COPY attempts after a rejected batch (each removes one offending line). */
const MAX_COPY_DIAGNOSIS = 50;
/** countByKey: keys per query, and queries in flight at once (at most the pool size is used). */
const PG_KEYS_PER_QUERY = 10_000;
const PG_READ_CONCURRENCY = 4;
/** Case rows per upsert statement (10 parameters each). */
const CASES_PER_STATEMENT = 500;

export interface PostgresWarehouseOptions {
  /** Schema holding the tables, created if missing; default: the server's search_path (public). */
  schema?: string;
  /** Pool size (default 4). */
  poolSize?: number;
  /** Run pending migrations at open (default true). */
  migrate?: boolean;
  /** COPY new batches straight into their table, staged only after a conflict (default true). */
  directCopy?: boolean;
}

/** Batches written per path since open (tests, and what a replay cost). */
export interface PgWriteStats {
  /** COPY'd straight into the table. */
  direct: number;
  /** Direct COPYs rolled back on a key conflict or deadlock, then written staged. */
  fallback: number;
  /** Written through the staging table (fallbacks included). */
  staged: number;
}

/** unique_violation (a key stored already, or twice in the batch) and deadlock_detected. */
const DIRECT_FALLBACK_SQLSTATES = new Set(["23505", "40P01"]);
/** Runs of the staged write that may end as a deadlock victim before the error is the caller's. */
const STAGED_DEADLOCK_ATTEMPTS = 4;

// ----------------------------------------------------------------------------- COPY text encoding

const COPY_SPECIAL_G = /[\\\n\r\t]/g;
const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** True when s holds a character COPY text format must escape (backslash, newline, CR, tab). */
function needsCopyEscape(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 || c === 10 || c === 13 || c === 9) return true;
  }
  return false;
}

function copyEscape(s: string): string {
  return needsCopyEscape(s) ? s.replace(COPY_SPECIAL_G, (c) => COPY_ESCAPES[c]!) : s;
}

type CopyEncoder = (v: string | number | boolean) => string;

function scalar(v: string | number | boolean): string {
  return typeof v === "string" ? copyEscape(v) : String(v);
}

/** Logical value → COPY text field. Anything odd is passed through for the server to judge. */
const COPY_ENCODERS: Record<LogicalType, CopyEncoder> = {
  text: (v) => copyEscape(typeof v === "string" ? v : String(v)),
  json: (v) => copyEscape(typeof v === "string" ? v : String(v)),
  int32: scalar,
  int64: scalar,
  float64: scalar,
  decimal: scalar,
  bool: (v) => (v === true ? "t" : v === false ? "f" : scalar(v)),
  // toISOString throws on NaN: caught as a RowEncodeError naming the row.
  timestamp: (v) => (typeof v === "number" ? isoFromMs(v) : scalar(v)),
};

/**
 * One COPY text line per row. Throws RowEncodeError with the index of a row that cannot be
 * encoded. Fields go into one array per row joined with tabs, rows joined with newlines:
 * two flat joins instead of a rope of 2 x columns concatenations per row.
 */
export function encodeCopyText<R>(table: TableDef<R>, rows: readonly R[]): string {
  if (rows.length === 0) return "";
  const cols = table.columns;
  const n = cols.length;
  const getters = cols.map((c) => c.get);
  const encoders = cols.map((c) => COPY_ENCODERS[c.type]);
  const fields: string[] = new Array(n);
  const lines: string[] = new Array(rows.length);
  let i = 0;
  try {
    for (; i < rows.length; i++) {
      const row = rows[i]!;
      for (let j = 0; j < n; j++) {
        const v = getters[j]!(row);
        fields[j] = v === null || v === undefined ? "\\N" : encoders[j]!(v);
      }
      lines[i] = fields.join("\t");
    }
  } catch (err) {
    throw new RowEncodeError(i, err);
  }
  return `${lines.join("\n")}\n`;
}

// ----------------------------------------------------------------------------- error classification

type ErrorKind = "rejected" | "transient" | "fatal";

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNABORTED",
]);
const TRANSIENT_SQLSTATES = new Set(["57P01", "57P02", "57P03", "57014", "55P03"]);
const NETWORK_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Connection ended|not queryable/i;

/** rejected: the rows (SQLSTATE 22xxx data exception, 23xxx constraint). transient: the connection or the server's load. */
export function classifyPgError(err: unknown): ErrorKind {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    if (/^[0-9A-Z]{5}$/.test(code) && !NETWORK_CODES.has(code)) {
      const cls = code.slice(0, 2);
      if (cls === "22" || cls === "23") return "rejected";
      // 08 connection, 40 serialization/deadlock, 53 resources, 58 system I/O.
      if (cls === "08" || cls === "40" || cls === "53" || cls === "58" || TRANSIENT_SQLSTATES.has(code)) {
        return "transient";
      }
      return "fatal";
    }
    if (NETWORK_CODES.has(code)) return "transient";
  }
  if (err instanceof AggregateError && err.errors.some((e) => classifyPgError(e) === "transient")) {
    return "transient";
  }
  return NETWORK_MESSAGE.test(String((err as Error | null)?.message ?? "")) ? "transient" : "fatal";
}

/** The 1-based input line of a COPY data error ("COPY t, line 42, column x: ..."). */
function copyErrorLine(err: unknown): number | undefined {
  const where = (err as { where?: unknown } | null)?.where;
  const m = typeof where === "string" ? /\bCOPY [^,]+, line (\d+)/.exec(where) : null;
  return m ? Number(m[1]) : undefined;
}

// ----------------------------------------------------------------------------- the sink

function copyIn(client: pg.PoolClient, sql: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.query(copyFrom(sql));
    stream.on("error", reject);
    stream.on("finish", () => resolve());
    stream.end(text);
  });
}

/** A URL whose sessions use `schema` as search_path (libpq `options`, honoured by node-postgres). */
export function withSearchPath(url: string, schema: string | undefined): string {
  if (schema === undefined) return url;
  const u = new URL(url);
  const prev = u.searchParams.get("options");
  u.searchParams.set("options", `${prev ? `${prev} ` : ""}-c search_path=${schema}`);
  return u.toString();
}

interface TablePlan<R> {
  readonly table: TableDef<R>;
  readonly stage: string;
  readonly createStage: string;
  readonly directCopySql: string;
  readonly copySql: string;
  readonly insertSql: string;
  readonly diagnoseSql: string;
}

function plan<R>(table: TableDef<R>): TablePlan<R> {
  const stage = `_ps_stage_${table.name}`;
  const cols = columnNames(table);
  return {
    table,
    stage,
    createStage: `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${table.name}) ON COMMIT DELETE ROWS`,
    directCopySql: `COPY ${table.name} (${cols}) FROM STDIN`,
    copySql: `COPY ${stage} (${cols}) FROM STDIN`,
    // Key order: two sessions inserting overlapping batches (a replay during a rebalance) then
    // take the key locks in the same order and cannot deadlock.
    insertSql: `INSERT INTO ${table.name} (${cols}) SELECT ${cols} FROM ${stage} ORDER BY ${table.key} COLLATE "C" ON CONFLICT (${table.key}) DO NOTHING`,
    diagnoseSql: `SELECT ${table.key} AS k FROM ${stage} WHERE ${violationPredicate(table)}`,
  };
}

const TX_PLAN = plan(TRANSACTIONS);
const ALERT_PLAN = plan(FRAUD_ALERTS);

/** What the driver hands back, before normalizeValue. */
type PgValue = string | number | boolean | Date | null | object;

function fromPg(col: ColumnShape, v: PgValue): LogicalValue {
  if (v !== null && typeof v === "object" && !(v instanceof Date)) return JSON.stringify(v); // jsonb
  return normalizeValue(col, v);
}

export class PostgresWarehouse implements InspectableWarehouse {
  readonly name = "postgres";
  /** What the migration run at open did (undefined when constructed on a pool directly). */
  migrations: MigrationReport | undefined;
  readonly #pool: PgPool;
  readonly #staged = new WeakMap<pg.PoolClient, Set<string>>();
  readonly #directCopy: boolean;
  readonly #stats: PgWriteStats = { direct: 0, fallback: 0, staged: 0 };
  #closed = false;

  /** Wraps a pool whose search_path already points at the warehouse schema. Prefer open(). */
  constructor(pool: PgPool, opts: { directCopy?: boolean } = {}) {
    this.#pool = pool;
    this.#directCopy = opts.directCopy !== false;
  }

  get writeStats(): PgWriteStats {
    return { ...this.#stats };
  }

  /** Connects (PS_WAREHOUSE_UNAVAILABLE, retriable, if unreachable) and applies pending migrations. */
  static async open(url: string, opts: PostgresWarehouseOptions = {}): Promise<PostgresWarehouse> {
    if (opts.schema !== undefined && !PG_SCHEMA_NAME.test(opts.schema)) {
      throw new ConfigError("warehouse", `PostgreSQL schema must match ${PG_SCHEMA_NAME.source}`);
    }
    let target: string;
    try {
      target = withSearchPath(url, opts.schema);
    } catch (err) {
      throw new ConfigError("warehouse", "not a valid PostgreSQL URL", { cause: err });
    }
    const pool = await connectPostgres(target, opts.poolSize ?? 4);
    const wh = new PostgresWarehouse(
      pool,
      opts.directCopy === undefined ? {} : { directCopy: opts.directCopy },
    );
    if (opts.migrate !== false) {
      try {
        wh.migrations = await migratePostgres(pool, opts.schema ? { schema: opts.schema } : {});
      } catch (err) {
        await pool.end().catch(() => {});
        const cause = err instanceof MigrationError ? err.cause : err;
        throw unavailableError(BACKEND, "migrations failed", err, classifyPgError(cause) === "transient", {
          url: redactUrl(url),
          ...(err instanceof MigrationError ? { migration: err.migration } : {}),
        });
      }
    }
    return wh;
  }

  async writeTransactions(rows: TransactionRow[]): Promise<void> {
    await this.#write(TX_PLAN, rows);
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    await this.#write(ALERT_PLAN, alerts.map(alertToRow));
  }

  async writeCases(cases: readonly FraudCase[]): Promise<void> {
    const rows = latestCaseRows(cases, Date.now());
    for (const chunk of chunksOf(rows, CASES_PER_STATEMENT)) {
      try {
        await this.#pool.query(upsertCasesSql("postgres", chunk.length), caseRowParams(chunk));
      } catch (err) {
        if (classifyPgError(err) === "rejected") {
          throw rejectedError(BACKEND, FRAUD_CASES, [], err, pgFacts(err));
        }
        throw this.#mapError(err, "write to fraud_cases failed");
      }
    }
  }

  /** Rows actually inserted (the rest were already there). */
  async #write<R>(p: TablePlan<R>, rows: readonly R[]): Promise<number> {
    if (rows.length === 0) return 0;
    let text: string | undefined;
    let encodeFailure: unknown;
    let unencodable: string[] = [];
    try {
      text = encodeCopyText(p.table, rows);
    } catch (err) {
      encodeFailure = err instanceof RowEncodeError ? err.cause : err;
      unencodable = findUnencodable(rows, (r) => encodeCopyText(p.table, [r])).map((i) =>
        keyOf(p.table, rows[i]!),
      );
    }
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      if (text === undefined) throw rejectedError(BACKEND, p.table, unencodable, encodeFailure);
      throw this.#mapError(err, "cannot connect");
    }
    let broken: Error | undefined;
    try {
      await this.#ensureStage(client, p);
      if (text === undefined) {
        // Some rows cannot even be encoded: name them, and whatever else the database would refuse.
        const bad = new Set(unencodable);
        const rest = rows.filter((r) => !bad.has(keyOf(p.table, r)));
        const refused = await this.#diagnose(client, p, rest).catch((e: Error) => {
          broken = e; // the session's state is unknown: do not return it to the pool
          return [] as string[];
        });
        throw rejectedError(BACKEND, p.table, [...unencodable, ...refused], encodeFailure);
      }
      if (this.#directCopy && (await this.#copyDirect(client, p, text))) {
        this.#stats.direct++;
        return rows.length;
      }
      this.#stats.staged++;
      // The staged insert takes its keys in one order, but a concurrent direct COPY takes them
      // in the batch's order: PostgreSQL may pick the staged one as the deadlock victim. Its
      // transaction is rolled back whole, so running it again is safe.
      for (let attempt = 1; ; attempt++) {
        await client.query("BEGIN");
        try {
          await copyIn(client, p.copySql, text);
          const inserted = (await client.query(p.insertSql)).rowCount ?? 0;
          await client.query("COMMIT");
          return inserted;
        } catch (err) {
          await client.query("ROLLBACK").catch(() => {});
          if (attempt < STAGED_DEADLOCK_ATTEMPTS && (err as { code?: unknown }).code === "40P01") continue;
          throw err;
        }
      }
    } catch (err) {
      if (isPaystreamError(err)) throw err;
      const kind = classifyPgError(err);
      if (kind === "rejected") {
        const offenders = await this.#diagnose(client, p, rows).catch((e: Error) => {
          broken = e;
          return [] as string[];
        });
        throw rejectedError(BACKEND, p.table, offenders, err, pgFacts(err));
      }
      if (kind === "transient") broken = err as Error;
      throw this.#mapError(err, `write to ${p.table.name} failed`);
    } finally {
      client.release(broken);
    }
  }

  /**
   * COPY straight into the table in a transaction of its own: true when committed, false when
   * rolled back on a key conflict or deadlock (the caller writes the batch staged). Any other
   * error is the caller's to classify, exactly as from the staged path.
   */
  async #copyDirect<R>(client: pg.PoolClient, p: TablePlan<R>, text: string): Promise<boolean> {
    await client.query("BEGIN");
    try {
      await copyIn(client, p.directCopySql, text);
      await client.query("COMMIT");
      return true;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      const code = (err as { code?: unknown } | null)?.code;
      if (typeof code === "string" && DIRECT_FALLBACK_SQLSTATES.has(code)) {
        this.#stats.fallback++;
        return false;
      }
      throw err;
    }
  }

  async #ensureStage<R>(client: pg.PoolClient, p: TablePlan<R>): Promise<void> {
    const staged = this.#staged.get(client) ?? new Set<string>();
    if (staged.has(p.stage)) return;
    await client.query(p.createStage);
    staged.add(p.stage);
    this.#staged.set(client, staged);
  }

  /**
   * Names the rows the database refuses, in transactions that are always rolled back: COPY
   * errors carry the input line (repeat without that line); what COPY accepts is then checked
   * against the NOT NULL and CHECK constraints of the schema in one query.
   */
  async #diagnose<R>(client: pg.PoolClient, p: TablePlan<R>, rows: readonly R[]): Promise<string[]> {
    const offenders = new Set<string>();
    let remaining = rows.slice();
    for (let attempt = 0; attempt < MAX_COPY_DIAGNOSIS && remaining.length > 0; attempt++) {
      await client.query("BEGIN");
      try {
        await copyIn(client, p.copySql, encodeCopyText(p.table, remaining));
      } catch (err) {
        await client.query("ROLLBACK");
        const line = copyErrorLine(err);
        if (line === undefined || line > remaining.length || classifyPgError(err) !== "rejected") break;
        offenders.add(keyOf(p.table, remaining[line - 1]!));
        remaining = remaining.filter((_, i) => i !== line - 1);
        continue;
      }
      try {
        const r = await client.query<{ k: string }>(p.diagnoseSql);
        for (const row of r.rows) offenders.add(row.k);
      } finally {
        await client.query("ROLLBACK");
      }
      break;
    }
    return [...offenders];
  }

  #mapError(err: unknown, what: string): PaystreamError {
    if (isPaystreamError(err)) return err;
    const kind = classifyPgError(err);
    return unavailableError(BACKEND, what, err, kind === "transient", pgFacts(err));
  }

  // --------------------------------------------------------------------------- read side

  async #query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await this.#pool.query<T>(sql, params)).rows;
    } catch (err) {
      throw this.#mapError(err, "query failed");
    }
  }

  async countTransactions(): Promise<number> {
    return Number((await this.#query<{ n: string }>("SELECT count(*) AS n FROM transactions"))[0]!.n);
  }

  async countAlerts(): Promise<number> {
    return Number((await this.#query<{ n: string }>("SELECT count(*) AS n FROM fraud_alerts"))[0]!.n);
  }

  async duplicateTransactionIds(): Promise<string[]> {
    const rows = await this.#query<{ id: string }>(
      "SELECT transaction_id AS id FROM transactions GROUP BY transaction_id HAVING count(*) > 1 ORDER BY 1",
    );
    return rows.map((r) => r.id);
  }

  async alertIds(): Promise<string[]> {
    const rows = await this.#query<{ id: string }>(
      'SELECT alert_id AS id FROM fraud_alerts ORDER BY alert_id COLLATE "C"',
    );
    return rows.map((r) => r.id);
  }

  /** Rows per key, one `= ANY($1)` primary-key lookup per chunk of 10,000 keys, chunks on the pool. */
  async countByKey(table: KeyedTableName, keys: readonly string[]): Promise<Map<string, number>> {
    const column = keyColumnOf(table);
    const sql = `SELECT ${column} AS k, count(*) AS n FROM ${table} WHERE ${column} = ANY($1::text[]) GROUP BY 1`;
    const out = new Map<string, number>();
    const chunks = chunksOf(keys, PG_KEYS_PER_QUERY);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < chunks.length) {
        const chunk = chunks[next++]!;
        for (const r of await this.#query<{ k: string; n: string }>(sql, [chunk])) out.set(r.k, Number(r.n));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PG_READ_CONCURRENCY, chunks.length) }, worker));
    return out;
  }

  async #getLogical<R>(table: TableDef<R>, key: string): Promise<LogicalRecord | undefined> {
    const rows = await this.#query<Record<string, PgValue>>(
      `SELECT ${columnNames(table)} FROM ${table.name} WHERE ${table.key} = $1`,
      [key],
    );
    const row = rows[0];
    if (!row) return undefined;
    const rec: LogicalRecord = {};
    for (const c of table.columns) rec[c.name] = fromPg(c, row[c.name] ?? null);
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
    const rows = await this.#query<{ c: string }>(
      "SELECT column_name AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
      [table],
    );
    return rows.map((r) => r.c);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

function pgFacts(err: unknown): Record<string, unknown> {
  const e = err as { code?: unknown; constraint?: unknown; column?: unknown } | null;
  const out: Record<string, unknown> = {};
  if (typeof e?.code === "string") out.sqlState = e.code;
  if (typeof e?.constraint === "string") out.constraint = e.constraint;
  if (typeof e?.column === "string") out.column = e.column;
  return out;
}

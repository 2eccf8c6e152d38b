/**
 * BigQuery warehouse sink, with the official client (@google-cloud/bigquery).
 *
 * Writes use the streaming insertAll API (`table.insert(rows, { raw: true })`) in requests of
 * at most 500 rows and 9 MB (the API's limits are 50,000 rows / 10 MB; Google recommends
 * ~500), a few requests in flight. Each row carries `insertId` = transaction_id / alert_id, so
 * BigQuery drops a retried row it has seen in the last minute or so. That dedup is BEST EFFORT:
 * BigQuery does not enforce primary keys, so a replay after a longer outage can store a row
 * twice. Exact counts therefore dedup at query time (see docs/warehouse.md), and
 * duplicateTransactionIds() reports what is doubled.
 *
 * Row mapping (from the logical schema): INT64 and NUMERIC as decimal strings (JSON numbers
 * lose int64 precision), TIMESTAMP as RFC 3339 UTC, JSON as JSON text, FLOAT64 and BOOL as is.
 *
 * Errors: rows BigQuery reports invalid → PS_WAREHOUSE_REJECTED naming them (rows only
 * "stopped" because of them are not named); 429/5xx/network → UNAVAILABLE retriable;
 * 401/403/400 → UNAVAILABLE not retriable (credentials, permissions, a malformed request).
 *
 * The `tables` and `query` options are the seams for the network client: unit tests inject a
 * fake `insert`; production leaves them out and the real client is used.
 */
import { BigQuery } from "@google-cloud/bigquery";
import type { Alert } from "../../contracts/alert.ts";
import type { FraudCase } from "../../contracts/case.ts";
import type { TransactionRow } from "../../contracts/rows.ts";
import { isPaystreamError, type PaystreamError } from "../../core/errors.ts";
import {
  type BigQueryRunner,
  MigrationError,
  type MigrationReport,
  migrateBigQuery,
} from "./migrations/runner.ts";
import {
  alertToRow,
  FRAUD_ALERTS,
  FRAUD_CASES,
  findUnencodable,
  type InspectableWarehouse,
  isoFromMs,
  type KeyedTableName,
  keyColumnOf,
  keyOf,
  type LogicalType,
  latestCaseRows,
  RowEncodeError,
  rejectedError,
  type TableDef,
  TRANSACTIONS,
  unavailableError,
} from "./schema.ts";

const BACKEND = "BigQuery";
export const MAX_ROWS_PER_REQUEST = 500;
export const MAX_BYTES_PER_REQUEST = 9 * 1024 * 1024;

export type BigQueryValue = string | number | boolean | null;

/** A row in insertAll's raw form. */
export interface BigQueryRawRow {
  insertId: string;
  json: Record<string, BigQueryValue>;
}

export interface BigQueryInsertOptions {
  raw: true;
  /** 0: the client must not resend failed rows itself; the caller decides (DLQ or retry). */
  partialRetries: number;
  skipInvalidRows: boolean;
  ignoreUnknownValues: boolean;
}

/** What the sink needs of a table: `Table.insert` of @google-cloud/bigquery has this shape. */
export interface InsertableTable {
  insert(rows: BigQueryRawRow[], options: BigQueryInsertOptions): Promise<unknown>;
}

export interface BigQueryWarehouseOptions {
  projectId: string;
  datasetId: string;
  /** Dataset location (e.g. "EU"), for dataset creation and query jobs. */
  location?: string;
  /** Injected tables (tests); default: the real client's tables. */
  tables?: { transactions: InsertableTable; fraud_alerts: InsertableTable; fraud_cases?: InsertableTable };
  /** Injected query runner (tests); default: a query job with the dataset as default dataset. */
  query?: BigQueryRunner;
  maxRowsPerRequest?: number;
  maxBytesPerRequest?: number;
  /** insertAll requests in flight per write (default 4). */
  concurrency?: number;
}

const INSERT_OPTIONS: BigQueryInsertOptions = {
  raw: true,
  partialRetries: 0,
  skipInvalidRows: false,
  ignoreUnknownValues: false,
};

// ----------------------------------------------------------------------------- row mapping

type Scalar = string | number | boolean;

const BQ_ENCODERS: Record<LogicalType, (v: Scalar) => BigQueryValue> = {
  text: (v) => (typeof v === "string" ? v : String(v)),
  json: (v) => (typeof v === "string" ? v : String(v)),
  int32: (v) => (typeof v === "number" ? v : Number(v)),
  int64: (v) => String(v),
  float64: (v) => (typeof v === "number" ? v : Number(v)),
  decimal: (v) => String(v),
  bool: (v) => v,
  // toISOString throws on NaN: a RowEncodeError naming the row.
  timestamp: (v) => (typeof v === "number" ? isoFromMs(v) : String(v)),
};

/** A row in insertAll's raw form, insertId = the table's key. */
export function toBigQueryRow<R>(table: TableDef<R>, row: R): BigQueryRawRow {
  const json: Record<string, BigQueryValue> = {};
  for (const c of table.columns) {
    const v = c.get(row);
    json[c.name] = v === null || v === undefined ? null : BQ_ENCODERS[c.type](v);
  }
  return { insertId: keyOf(table, row), json };
}

function encodeAll<R>(table: TableDef<R>, rows: readonly R[]): BigQueryRawRow[] {
  const out: BigQueryRawRow[] = new Array(rows.length);
  let i = 0;
  try {
    for (; i < rows.length; i++) out[i] = toBigQueryRow(table, rows[i]!);
  } catch (err) {
    throw new RowEncodeError(i, err);
  }
  return out;
}

/** Request body bytes a row adds: its JSON plus the separating comma. */
export function rowBytes(row: BigQueryRawRow): number {
  return Buffer.byteLength(JSON.stringify(row)) + 1;
}

/**
 * Splits rows into insertAll requests of at most `maxRows` rows and `maxBytes` bytes of rows,
 * in order. A single row larger than maxBytes goes alone (BigQuery will judge it).
 */
export function splitIntoRequests(
  rows: readonly BigQueryRawRow[],
  maxRows: number = MAX_ROWS_PER_REQUEST,
  maxBytes: number = MAX_BYTES_PER_REQUEST,
): BigQueryRawRow[][] {
  const out: BigQueryRawRow[][] = [];
  let cur: BigQueryRawRow[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = rowBytes(row);
    if (cur.length > 0 && (cur.length >= maxRows || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(row);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

// ----------------------------------------------------------------------------- errors

type ErrorKind = "transient" | "fatal";

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
const TRANSIENT_REASONS = new Set(["rateLimitExceeded", "backendError", "internalError", "quotaExceeded"]);

interface ApiErrorLike {
  name?: string;
  code?: unknown;
  response?: { status?: unknown };
  errors?: {
    reason?: string;
    message?: string;
    errors?: { reason?: string; message?: string }[];
    row?: unknown;
  }[];
}

/**
 * 408/429/5xx, rate-limit reasons and network failures are transient. 404 too: a table just
 * created by the migration can be invisible to insertAll for a while. Other 4xx are not.
 */
export function classifyBigQueryError(err: unknown): ErrorKind {
  const e = (err ?? {}) as ApiErrorLike;
  const status =
    typeof e.code === "number" ? e.code : typeof e.response?.status === "number" ? e.response.status : 0;
  if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return "transient";
  if ((e.errors ?? []).some((x) => x.reason !== undefined && TRANSIENT_REASONS.has(x.reason)))
    return "transient";
  if (status === 404 || status === 408 || status === 429 || status >= 500) return "transient";
  if (status >= 400) return "fatal";
  return "transient"; // no HTTP status: the request did not get an answer
}

/**
 * The keys of the rows a PartialFailureError reports invalid (reason other than "stopped"),
 * or undefined when the error is not one.
 */
export function invalidRowKeys<R>(
  table: TableDef<R>,
  err: unknown,
): { keys: string[]; reason: string } | undefined {
  const e = (err ?? {}) as ApiErrorLike;
  if (e.name !== "PartialFailureError" || !Array.isArray(e.errors)) return undefined;
  const keys: string[] = [];
  let reason = "";
  for (const failure of e.errors) {
    const bad = (failure.errors ?? []).filter((x) => x.reason !== "stopped");
    if (bad.length === 0) continue;
    const row = failure.row as BigQueryRawRow | undefined;
    const key = row?.json?.[table.key] ?? row?.insertId;
    if (key !== undefined && key !== null) keys.push(String(key));
    reason ||= `${bad[0]!.reason ?? "invalid"}: ${bad[0]!.message ?? ""}`;
  }
  return keys.length > 0 ? { keys, reason } : undefined;
}

// ----------------------------------------------------------------------------- the sink

export class BigQueryWarehouse implements InspectableWarehouse {
  readonly name = "bigquery";
  readonly projectId: string;
  readonly datasetId: string;
  migrations: MigrationReport | undefined;
  readonly #tables: {
    transactions: InsertableTable;
    fraud_alerts: InsertableTable;
    fraud_cases?: InsertableTable;
  };
  readonly #run: BigQueryRunner;
  readonly #client: BigQuery | undefined;
  readonly #location: string | undefined;
  readonly #maxRows: number;
  readonly #maxBytes: number;
  readonly #concurrency: number;

  constructor(opts: BigQueryWarehouseOptions) {
    this.projectId = opts.projectId;
    this.datasetId = opts.datasetId;
    this.#location = opts.location;
    this.#maxRows = Math.min(opts.maxRowsPerRequest ?? MAX_ROWS_PER_REQUEST, MAX_ROWS_PER_REQUEST);
    this.#maxBytes = Math.min(opts.maxBytesPerRequest ?? MAX_BYTES_PER_REQUEST, MAX_BYTES_PER_REQUEST);
    this.#concurrency = Math.max(1, opts.concurrency ?? 4);
    const client =
      opts.tables && opts.query
        ? undefined
        : new BigQuery({ projectId: opts.projectId, ...(opts.location ? { location: opts.location } : {}) });
    this.#client = client;
    if (opts.tables) {
      this.#tables = opts.tables;
    } else {
      const ds = client!.dataset(opts.datasetId);
      this.#tables = {
        transactions: ds.table("transactions"),
        fraud_alerts: ds.table("fraud_alerts"),
        fraud_cases: ds.table("fraud_cases"),
      };
    }
    this.#run =
      opts.query ??
      (async (sql: string) => {
        const [rows] = await client!.query({
          query: sql,
          defaultDataset: { projectId: opts.projectId, datasetId: opts.datasetId },
          ...(opts.location ? { location: opts.location } : {}),
        });
        return rows as Record<string, unknown>[];
      });
  }

  /** Creates the dataset if missing (real client only) and applies pending migrations. */
  static async open(opts: BigQueryWarehouseOptions & { migrate?: boolean }): Promise<BigQueryWarehouse> {
    const wh = new BigQueryWarehouse(opts);
    try {
      if (wh.#client) {
        await wh.#client
          .dataset(opts.datasetId, opts.location ? { location: opts.location } : {})
          .get({ autoCreate: true });
      }
      if (opts.migrate !== false) wh.migrations = await migrateBigQuery(wh.#run);
    } catch (err) {
      const cause = err instanceof MigrationError ? err.cause : err;
      throw unavailableError(
        BACKEND,
        `cannot prepare dataset ${opts.projectId}.${opts.datasetId}`,
        err,
        classifyBigQueryError(cause) === "transient",
        { project: opts.projectId, dataset: opts.datasetId },
      );
    }
    return wh;
  }

  async writeTransactions(rows: TransactionRow[]): Promise<void> {
    await this.#write(TRANSACTIONS, this.#tables.transactions, rows);
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    await this.#write(FRAUD_ALERTS, this.#tables.fraud_alerts, alerts.map(alertToRow));
  }

  /**
   * Cases cannot be updated in place by streaming inserts: each written state is a new row, and
   * its insertId (case, hit count, status, status time) makes BigQuery drop a replay of the same
   * state (best effort, about a minute). The processor's filing and its status sync write
   * independently, so per case_id readers take the hit columns from the row with the most hits
   * and the status columns from the row with the latest status_at (docs/cases.md).
   */
  async writeCases(cases: readonly FraudCase[]): Promise<void> {
    const target = this.#tables.fraud_cases;
    if (cases.length === 0 || target === undefined) return;
    await this.#write(
      FRAUD_CASES,
      target,
      latestCaseRows(cases, Date.now()),
      (r) => `${r.case_id}/${r.hit_count}/${r.status}/${r.status_at ?? 0}`,
    );
  }

  async #write<R>(
    table: TableDef<R>,
    target: InsertableTable,
    rows: readonly R[],
    insertId?: (row: R) => string,
  ): Promise<void> {
    if (rows.length === 0) return;
    let raw: BigQueryRawRow[];
    try {
      raw = encodeAll(table, rows);
      if (insertId) for (let i = 0; i < raw.length; i++) raw[i]!.insertId = insertId(rows[i]!);
    } catch (err) {
      const bad = findUnencodable(rows, (r) => toBigQueryRow(table, r));
      throw rejectedError(
        BACKEND,
        table,
        bad.map((i) => keyOf(table, rows[i]!)),
        err instanceof RowEncodeError ? err.cause : err,
      );
    }
    const requests = splitIntoRequests(raw, this.#maxRows, this.#maxBytes);
    const rejected: string[] = [];
    let rejectReason = "";
    let failure: unknown;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length && failure === undefined) {
        const batch = requests[next++]!;
        try {
          await target.insert(batch, INSERT_OPTIONS);
        } catch (err) {
          const invalid = invalidRowKeys(table, err);
          if (invalid) {
            rejected.push(...invalid.keys);
            rejectReason ||= invalid.reason;
          } else {
            failure ??= err;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, requests.length) }, worker));
    // Rejections first: the caller can dead-letter those rows, and a retry of the rest will
    // meet any transient failure again.
    if (rejected.length > 0) throw rejectedError(BACKEND, table, rejected, new Error(rejectReason));
    if (failure !== undefined) throw this.#mapError(failure, `insert into ${table.name} failed`);
  }

  #mapError(err: unknown, what: string): PaystreamError {
    if (isPaystreamError(err)) return err;
    return unavailableError(BACKEND, what, err, classifyBigQueryError(err) === "transient", {
      project: this.projectId,
      dataset: this.datasetId,
    });
  }

  // --------------------------------------------------------------------------- read side (query jobs)

  async #query(sql: string): Promise<Record<string, unknown>[]> {
    try {
      return await this.#run(sql);
    } catch (err) {
      throw this.#mapError(err, "query failed");
    }
  }

  async countTransactions(): Promise<number> {
    return Number((await this.#query("SELECT COUNT(*) AS n FROM transactions"))[0]?.n ?? 0);
  }

  async countAlerts(): Promise<number> {
    return Number((await this.#query("SELECT COUNT(*) AS n FROM fraud_alerts"))[0]?.n ?? 0);
  }

  /** Not empty when insertId dedup missed a replay (see the header). */
  async duplicateTransactionIds(): Promise<string[]> {
    const rows = await this.#query(
      "SELECT transaction_id AS id FROM transactions GROUP BY transaction_id HAVING COUNT(*) > 1 ORDER BY id",
    );
    return rows.map((r) => String(r.id));
  }

  /** Every stored alert_id, sorted; an id stored twice appears twice. */
  async alertIds(): Promise<string[]> {
    const rows = await this.#query("SELECT alert_id AS id FROM fraud_alerts ORDER BY id");
    return rows.map((r) => String(r.id));
  }

  /**
   * Rows per key. The runner takes no query parameters, so keys are inlined as escaped string
   * literals, `IN UNNEST([...])`, at most 10,000 keys and ~900 KB of SQL per query (BigQuery's
   * limit is 1 MB), a few queries in flight. Each query scans the key column: on a large table
   * that is billed per query, see docs/verify.md.
   */
  async countByKey(table: KeyedTableName, keys: readonly string[]): Promise<Map<string, number>> {
    const column = keyColumnOf(table);
    const out = new Map<string, number>();
    const queries = countByKeyQueries(table, column, keys);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < queries.length) {
        const sql = queries[next++]!;
        for (const r of await this.#query(sql)) {
          const k = String(r.k);
          out.set(k, (out.get(k) ?? 0) + Number(r.n));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queries.length) }, worker));
    return out;
  }

  async close(): Promise<void> {}
}

const BQ_KEYS_PER_QUERY = 10_000;
const BQ_MAX_SQL_CHARS = 900_000;

/** A GoogleSQL string literal: quotes, backslashes and control characters escaped. */
export function bigQueryStringLiteral(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
  return `'${s.replace(/[\\'\u0000-\u001f\u007f]/g, (c) => (c === "'" || c === "\\" ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`))}'`;
}

/** The SELECT statements countByKey runs: keys split by count and by SQL length. */
export function countByKeyQueries(table: KeyedTableName, column: string, keys: readonly string[]): string[] {
  const head = `SELECT ${column} AS k, COUNT(*) AS n FROM ${table} WHERE ${column} IN UNNEST([`;
  const tail = "]) GROUP BY k";
  const out: string[] = [];
  let parts: string[] = [];
  let chars = 0;
  const flush = () => {
    if (parts.length > 0) out.push(head + parts.join(",") + tail);
    parts = [];
    chars = 0;
  };
  for (const key of keys) {
    const lit = bigQueryStringLiteral(key);
    if (parts.length >= BQ_KEYS_PER_QUERY || chars + lit.length + 1 > BQ_MAX_SQL_CHARS) flush();
    parts.push(lit);
    chars += lit.length + 1;
  }
  flush();
  return out;
}

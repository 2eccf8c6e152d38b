/**
 * The one logical schema of the warehouse: two tables, `transactions` and `fraud_alerts`,
 * as column lists with logical types. Every dialect's DDL (PostgreSQL, DuckDB, BigQuery),
 * every sink's row encoding and every read-back derive from these lists, so the three
 * backends cannot drift apart: a column added here is added everywhere (plus a versioned
 * migration per dialect, see migrations/).
 *
 * Logical values (what `Column.get` returns) are deliberately plain:
 *   text, json        string (json: JSON text)
 *   int32, float64    number
 *   int64             number, or a decimal string where the TS field is one (kafka_offset)
 *   decimal           exact decimal string ("12.30"), numeric(18,2)
 *   bool              boolean
 *   timestamp         epoch milliseconds (an instant; stored as timestamptz / TIMESTAMPTZ / TIMESTAMP)
 * null for a SQL NULL.
 *
 * Over 500 lines: the three backends' column types stand side by side, so a column change is
 * made in one place for all of them.
 */
import type { Alert } from "../../contracts/alert.ts";
import type { FraudCase } from "../../contracts/case.ts";
import type { KeyedTableName } from "../../contracts/ports.ts";
import type { TransactionRow } from "../../contracts/rows.ts";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";

export const DIALECTS = ["postgres", "duckdb", "bigquery"] as const;
export type Dialect = (typeof DIALECTS)[number];

export const LOGICAL_TYPES = [
  "text",
  "int32",
  "int64",
  "float64",
  "decimal",
  "bool",
  "timestamp",
  "json",
] as const;
export type LogicalType = (typeof LOGICAL_TYPES)[number];

export type LogicalValue = string | number | boolean | null;

/** Precision and scale of `decimal`: amounts up to 10^16 units with cents (schema v1 has 2 places). */
export const DECIMAL_PRECISION = 18;
export const DECIMAL_SCALE = 2;

/** What DDL and value normalisation need of a column (a Column without its getter). */
export interface ColumnShape {
  readonly name: string;
  readonly type: LogicalType;
  readonly nullable: boolean;
  readonly jsString?: boolean;
  readonly check?: string;
}

/** What DDL needs of a table, whatever its row type. */
export interface TableShape {
  readonly name: string;
  readonly key: string;
  readonly columns: readonly ColumnShape[];
  readonly partitionBy: string;
  readonly clusterBy: string;
}

export interface Column<R> extends ColumnShape {
  readonly name: string;
  readonly type: LogicalType;
  readonly nullable: boolean;
  /** For int64 columns whose TS field is a decimal string (int64 does not fit a JS number). */
  readonly jsString?: boolean;
  /**
   * A SQL boolean expression over this column that must hold, written in the SQL common to
   * PostgreSQL and DuckDB. BigQuery has no CHECK constraints: there it is documentation only.
   */
  readonly check?: string;
  /** The column's logical value for a row (undefined is treated as NULL). */
  readonly get: (row: R) => LogicalValue | undefined;
}

export interface TableDef<R> {
  readonly name: "transactions" | "fraud_alerts" | "fraud_cases";
  /** The primary key column: writes are idempotent on it. */
  readonly key: string;
  /** The name used for a list of offending keys in error details. */
  readonly keyDetail: "transactionIds" | "alertIds" | "caseIds";
  readonly columns: readonly Column<R>[];
  /** BigQuery: PARTITION BY DATE(partitionBy) CLUSTER BY clusterBy. */
  readonly partitionBy: string;
  readonly clusterBy: string;
}

/** A `fraud_alerts` row in logical form (see alertToRow). */
export interface AlertRow {
  alert_id: string;
  rule_id: string;
  rule_type: string;
  severity: string;
  account_id: string;
  transaction_id: string;
  /** Epoch ms of the triggering transaction. */
  event_time: number;
  /** Epoch ms of detection. */
  detected_at: number;
  card_bin: string | null;
  card_last4: string | null;
  card_token: string | null;
  /** The rule's figures as JSON text. */
  figures: string;
  /** The rules-log version the rule came from (migration 002); null when unversioned. */
  rule_set_version: number | null;
}

/**
 * A `fraud_cases` row (migrations 002, 003): a case's hits as last filed and its status as
 * last changed. Upserted by case_id with one guard per column group (upsertCasesSql), so a
 * replay rewrites rather than adds, fewer hits never overwrite more, and an older status never
 * overwrites a newer one, whichever of the processor's filing and its status sync writes last
 * (docs/cases.md).
 */
export interface CaseRow {
  case_id: string;
  account_id: string;
  status: string;
  severity: string;
  first_seen: number;
  last_seen: number;
  /** JSON arrays as text. */
  rule_ids: string;
  alert_ids: string;
  hit_count: number;
  updated_at: number;
  /** Who set the current status, and when (epoch ms); null while it was never changed. */
  status_by: string | null;
  status_at: number | null;
  /**
   * JSON array `[{status, by, at}]`, oldest first, `at` in ISO 8601. Analysts' notes are left
   * out: free text may hold personal data, and the warehouse holds none.
   */
  status_history: string;
}

// The read side lives with the ports (services read the warehouse through it); re-exported
// here for the backends and tests that import it from their own folder.
export type { InspectableWarehouse, KeyedTableName } from "../../contracts/ports.ts";

/** The primary-key column countByKey counts by, per table. */
export function keyColumnOf(table: KeyedTableName): string {
  if (table === "transactions") return TRANSACTIONS.key;
  if (table === "fraud_alerts") return FRAUD_ALERTS.key;
  if (table === "fraud_cases") return FRAUD_CASES.key;
  throw new TypeError(`countByKey: unknown table ${JSON.stringify(table)}`);
}

/** Splits keys into chunks of at most `size` (the unit of one countByKey query). */
export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

type Tx = TransactionRow;

function text<R>(name: string & keyof R, check?: string): Column<R> {
  return { name, type: "text", nullable: false, get: (r) => r[name] as string, ...(check ? { check } : {}) };
}

export const TRANSACTIONS: TableDef<TransactionRow> = {
  name: "transactions",
  key: "transaction_id",
  keyDetail: "transactionIds",
  partitionBy: "event_time",
  clusterBy: "account_id",
  columns: [
    text<Tx>("transaction_id", "length(transaction_id) > 0"),
    text<Tx>("account_id", "length(account_id) > 0"),
    { name: "schema_version", type: "int32", nullable: false, get: (r) => r.schema_version },
    text<Tx>("card_bin"),
    text<Tx>("card_last4"),
    text<Tx>("card_token"),
    text<Tx>("name_token"),
    text<Tx>("email_token"),
    text<Tx>("ip_token"),
    text<Tx>("device_token"),
    { name: "amount", type: "decimal", nullable: false, check: "amount > 0", get: (r) => r.amount },
    {
      name: "amount_minor",
      type: "int64",
      nullable: false,
      check: "amount_minor > 0",
      get: (r) => r.amount_minor,
    },
    text<Tx>("currency"),
    text<Tx>("merchant_id"),
    text<Tx>("merchant_category"),
    text<Tx>("country"),
    text<Tx>("city"),
    { name: "lat", type: "float64", nullable: false, check: "lat BETWEEN -90 AND 90", get: (r) => r.lat },
    { name: "lon", type: "float64", nullable: false, check: "lon BETWEEN -180 AND 180", get: (r) => r.lon },
    // The instant of event_time; the original UTC offset of the wire string is not kept.
    { name: "event_time", type: "timestamp", nullable: false, get: (r) => r.event_time_ms },
    { name: "event_time_ms", type: "int64", nullable: false, get: (r) => r.event_time_ms },
    {
      name: "kafka_partition",
      type: "int32",
      nullable: false,
      check: "kafka_partition >= 0",
      get: (r) => r.kafka_partition,
    },
    {
      name: "kafka_offset",
      type: "int64",
      nullable: false,
      jsString: true,
      check: "kafka_offset >= 0",
      get: (r) => r.kafka_offset,
    },
    { name: "processed_at_ms", type: "int64", nullable: false, get: (r) => r.processed_at_ms },
    { name: "is_late", type: "bool", nullable: false, get: (r) => r.is_late },
  ],
};

export const FRAUD_ALERTS: TableDef<AlertRow> = {
  name: "fraud_alerts",
  key: "alert_id",
  keyDetail: "alertIds",
  partitionBy: "event_time",
  clusterBy: "account_id",
  columns: [
    text<AlertRow>("alert_id", "length(alert_id) > 0"),
    text<AlertRow>("rule_id"),
    text<AlertRow>("rule_type"),
    text<AlertRow>("severity", "severity IN ('low', 'medium', 'high', 'critical')"),
    text<AlertRow>("account_id"),
    text<AlertRow>("transaction_id"),
    { name: "event_time", type: "timestamp", nullable: false, get: (r) => r.event_time },
    { name: "detected_at", type: "timestamp", nullable: false, get: (r) => r.detected_at },
    { name: "card_bin", type: "text", nullable: true, get: (r) => r.card_bin },
    { name: "card_last4", type: "text", nullable: true, get: (r) => r.card_last4 },
    { name: "card_token", type: "text", nullable: true, get: (r) => r.card_token },
    { name: "figures", type: "json", nullable: false, get: (r) => r.figures },
    // Added by migration 002, hence last: DuckDB's appender writes columns in table order.
    { name: "rule_set_version", type: "int32", nullable: true, get: (r) => r.rule_set_version },
  ],
};

export const TABLES: readonly TableShape[] = [TRANSACTIONS, FRAUD_ALERTS];

export const FRAUD_CASES: TableDef<CaseRow> = {
  name: "fraud_cases",
  key: "case_id",
  keyDetail: "caseIds",
  partitionBy: "first_seen",
  clusterBy: "account_id",
  columns: [
    text<CaseRow>("case_id", "length(case_id) > 0"),
    text<CaseRow>("account_id"),
    text<CaseRow>("status", "status IN ('open', 'acknowledged', 'resolved_fraud', 'resolved_legitimate')"),
    text<CaseRow>("severity", "severity IN ('low', 'medium', 'high', 'critical')"),
    { name: "first_seen", type: "timestamp", nullable: false, get: (r) => r.first_seen },
    { name: "last_seen", type: "timestamp", nullable: false, get: (r) => r.last_seen },
    { name: "rule_ids", type: "json", nullable: false, get: (r) => r.rule_ids },
    { name: "alert_ids", type: "json", nullable: false, get: (r) => r.alert_ids },
    { name: "hit_count", type: "int32", nullable: false, check: "hit_count > 0", get: (r) => r.hit_count },
    { name: "updated_at", type: "timestamp", nullable: false, get: (r) => r.updated_at },
    // Added by migration 003, hence last (table order).
    { name: "status_by", type: "text", nullable: true, get: (r) => r.status_by },
    { name: "status_at", type: "timestamp", nullable: true, get: (r) => r.status_at },
    { name: "status_history", type: "json", nullable: false, get: (r) => r.status_history },
  ],
};

/** The hit columns of fraud_cases: taken from the row with the most hits. */
export const CASE_HIT_COLUMNS = [
  "account_id",
  "severity",
  "first_seen",
  "last_seen",
  "rule_ids",
  "alert_ids",
  "hit_count",
] as const;
/** The status columns of fraud_cases: taken from the row whose status was set last. */
export const CASE_STATUS_COLUMNS = ["status", "status_by", "status_at", "status_history"] as const;

/** The warehouse row of a case, stamped with when it was written. Notes are never copied. */
export function caseToRow(c: FraudCase, updatedAtMs: number): CaseRow {
  const last = c.history.at(-1);
  return {
    case_id: c.caseId,
    account_id: c.accountId,
    status: c.status,
    severity: c.severity,
    first_seen: c.firstSeenMs,
    last_seen: c.lastSeenMs,
    rule_ids: JSON.stringify(c.ruleIds),
    alert_ids: JSON.stringify(c.hits.map((h) => h.alertId)),
    hit_count: c.hits.length,
    updated_at: updatedAtMs,
    status_by: last?.by ?? null,
    status_at: last?.atMs ?? null,
    status_history: JSON.stringify(
      c.history.map((h) => ({ status: h.status, by: h.by, at: new Date(h.atMs).toISOString() })),
    ),
  };
}

/**
 * `incoming` merged over `stored` as upsertCasesSql merges rows: the hit columns of the one
 * with more hits, the status columns of the one whose status was set later (a never-changed
 * status counts as set at the epoch); ties go to `incoming`, like a replay.
 */
export function mergeCaseRows(stored: CaseRow, incoming: CaseRow): CaseRow {
  const out: CaseRow = { ...stored, updated_at: incoming.updated_at };
  const set = out as unknown as Record<string, unknown>;
  const from = incoming as unknown as Record<string, unknown>;
  if (incoming.hit_count >= stored.hit_count) for (const k of CASE_HIT_COLUMNS) set[k] = from[k];
  if ((incoming.status_at ?? 0) >= (stored.status_at ?? 0))
    for (const k of CASE_STATUS_COLUMNS) set[k] = from[k];
  return out;
}

/**
 * One row per case for a batch, merged as the upsert would merge them one after another:
 * one statement may not upsert a key twice.
 */
export function latestCaseRows(cases: readonly FraudCase[], updatedAtMs: number): CaseRow[] {
  const out = new Map<string, CaseRow>();
  for (const c of cases) {
    const row = caseToRow(c, updatedAtMs);
    const prev = out.get(c.caseId);
    out.set(c.caseId, prev ? mergeCaseRows(prev, row) : row);
  }
  return [...out.values()];
}

/** The warehouse row of an alert. Same facts as alertToJson (the external JSON shape), flattened. */
export function alertToRow(a: Alert): AlertRow {
  const card = a.maskedCard;
  return {
    alert_id: a.alertId,
    rule_id: a.ruleId,
    rule_type: a.ruleType,
    severity: a.severity,
    account_id: a.accountId,
    transaction_id: a.transactionId,
    event_time: a.eventTimeMs,
    detected_at: a.detectedAtMs,
    card_bin: card?.bin ?? null,
    card_last4: card?.last4 ?? null,
    card_token: card?.token ?? null,
    figures: JSON.stringify(a.figures),
    rule_set_version: a.ruleSetVersion ?? null,
  };
}

/**
 * PostgreSQL/DuckDB upsert of `rows` case rows ($1... parameters, caseRowParams order), with
 * a guard per column group instead of one for the row, because two writers race on a case:
 * the processor filing hits (its copy's status may predate an analyst's change) and the
 * status sync (its copy's hits may predate the latest filing). The hit columns take the
 * incoming values only with at least as many hits as stored, the status columns only with a
 * status set at least as late (NULL status_at: never changed, as old as the epoch),
 * updated_at always. Either write order ends in the same row; a replay rewrites it unchanged.
 */
export function upsertCasesSql(dialect: "postgres" | "duckdb", rows: number): string {
  const cols = FRAUD_CASES.columns;
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    const ps = cols.map((c, i) => `$${r * cols.length + i + 1}::${SQL_TYPES[dialect][c.type]}`);
    values.push(`(${ps.join(", ")})`);
  }
  // Every SET expression sees the stored row as it was before the update, in both dialects.
  const ts = SQL_TYPES[dialect].timestamp;
  const epoch = `'1970-01-01T00:00:00Z'::${ts}`;
  const guarded = (cond: string, names: readonly string[]) =>
    names.map((n) => `${n} = CASE WHEN ${cond} THEN excluded.${n} ELSE fraud_cases.${n} END`);
  const set = [
    ...guarded("excluded.hit_count >= fraud_cases.hit_count", CASE_HIT_COLUMNS),
    ...guarded(
      `coalesce(excluded.status_at, ${epoch}) >= coalesce(fraud_cases.status_at, ${epoch})`,
      CASE_STATUS_COLUMNS,
    ),
    "updated_at = excluded.updated_at",
  ];
  return (
    `INSERT INTO fraud_cases (${columnNames(FRAUD_CASES)}) VALUES ${values.join(", ")} ` +
    `ON CONFLICT (case_id) DO UPDATE SET ${set.join(", ")}`
  );
}

/** The parameters of upsertCasesSql: text for text and JSON, ISO 8601 for timestamps. */
export function caseRowParams(rows: readonly CaseRow[]): (string | number | null)[] {
  const out: (string | number | null)[] = [];
  for (const r of rows) {
    for (const c of FRAUD_CASES.columns) {
      const v = c.get(r) as string | number | null;
      out.push(c.type === "timestamp" && v !== null ? new Date(v).toISOString() : v);
    }
  }
  return out;
}

// ----------------------------------------------------------------------------- logical records

export type LogicalRecord = Record<string, LogicalValue>;

/** A row as {column: logical value}, in column order. */
export function toLogical<R>(table: TableDef<R>, row: R): LogicalRecord {
  const rec: LogicalRecord = {};
  for (const c of table.columns) rec[c.name] = c.get(row) ?? null;
  return rec;
}

/**
 * A value read back from a database into its logical form. Each sink first turns its
 * driver's representations into string | number | bigint | boolean | Date | null.
 */
export function normalizeValue(
  col: ColumnShape,
  v: string | number | bigint | boolean | Date | null | undefined,
): LogicalValue {
  if (v === null || v === undefined) return null;
  switch (col.type) {
    case "int32":
    case "float64":
      return Number(v);
    case "int64":
      return col.jsString ? String(v) : Number(v);
    case "timestamp":
      return v instanceof Date ? v.getTime() : typeof v === "string" ? Date.parse(v) : Number(v);
    case "bool":
      return typeof v === "boolean" ? v : v === "t" || v === "true";
    case "decimal":
      return formatDecimal(String(v));
    case "json":
      return typeof v === "string" ? v : JSON.stringify(v);
    default:
      return String(v);
  }
}

/** "12.3" → "12.30", "5" → "5.00": the decimal at DECIMAL_SCALE places, as the wire formats it. */
function formatDecimal(s: string): string {
  const dot = s.indexOf(".");
  if (dot < 0) return `${s}.${"0".repeat(DECIMAL_SCALE)}`;
  const frac = s.length - dot - 1;
  return frac >= DECIMAL_SCALE ? s.slice(0, dot + 1 + DECIMAL_SCALE) : s + "0".repeat(DECIMAL_SCALE - frac);
}

const MAX_FAST_ISO_MS = 253_402_300_800_000; // 10000-01-01: toISOString's format changes there
let isoMinute = Number.NaN;
let isoPrefix = "";

/**
 * new Date(ms).toISOString(), about 4x faster for the common case: the "YYYY-MM-DDTHH:MM:"
 * prefix is cached per minute (rows of a batch share a few minutes). Throws RangeError on NaN.
 */
export function isoFromMs(ms: number): string {
  if (!(ms >= 0 && ms < MAX_FAST_ISO_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const minute = Math.floor(ms / 60_000);
  if (minute !== isoMinute) {
    isoPrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
    isoMinute = minute;
  }
  const rem = ms - minute * 60_000;
  const sec = Math.floor(rem / 1000);
  const milli = rem - sec * 1000;
  return `${isoPrefix}${sec < 10 ? "0" : ""}${sec}.${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

/** The TransactionRow a logical record stands for (event_time comes back as UTC ISO 8601). */
export function transactionFromLogical(rec: LogicalRecord): TransactionRow {
  const row: Record<string, LogicalValue> = {};
  for (const c of TRANSACTIONS.columns) row[c.name] = rec[c.name] ?? null;
  row.event_time = isoFromMs(rec.event_time as number);
  return row as unknown as TransactionRow;
}

export function alertRowFromLogical(rec: LogicalRecord): AlertRow {
  const row: Record<string, LogicalValue> = {};
  for (const c of FRAUD_ALERTS.columns) row[c.name] = rec[c.name] ?? null;
  return row as unknown as AlertRow;
}

/**
 * The scaled integer of a decimal string at `scale` places ("12.3" → 1230n at scale 2).
 * Throws on anything that is not a plain decimal, or has more places than the scale.
 */
export function parseScaledDecimal(s: string, scale: number = DECIMAL_SCALE): bigint {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) throw new RangeError(`not a decimal: ${JSON.stringify(s)}`);
  const frac = m[3] ?? "";
  if (frac.length > scale) throw new RangeError(`more than ${scale} decimal places: ${s}`);
  const scaled = BigInt(m[2]! + frac.padEnd(scale, "0"));
  return m[1] === "-" ? -scaled : scaled;
}

// ----------------------------------------------------------------------------- DDL

export const SQL_TYPES: Record<Dialect, Record<LogicalType, string>> = {
  postgres: {
    text: "text",
    int32: "integer",
    int64: "bigint",
    float64: "double precision",
    decimal: `numeric(${DECIMAL_PRECISION},${DECIMAL_SCALE})`,
    bool: "boolean",
    timestamp: "timestamptz",
    json: "jsonb",
  },
  duckdb: {
    text: "VARCHAR",
    int32: "INTEGER",
    int64: "BIGINT",
    float64: "DOUBLE",
    decimal: `DECIMAL(${DECIMAL_PRECISION},${DECIMAL_SCALE})`,
    bool: "BOOLEAN",
    timestamp: "TIMESTAMPTZ",
    json: "JSON",
  },
  bigquery: {
    text: "STRING",
    int32: "INT64",
    int64: "INT64",
    float64: "FLOAT64",
    decimal: `NUMERIC(${DECIMAL_PRECISION},${DECIMAL_SCALE})`,
    bool: "BOOL",
    timestamp: "TIMESTAMP",
    json: "JSON",
  },
};

export function columnDdl(dialect: Dialect, c: ColumnShape): string {
  let s = `${c.name} ${SQL_TYPES[dialect][c.type]}`;
  if (!c.nullable) s += " NOT NULL";
  if (c.check && dialect !== "bigquery") s += ` CHECK (${c.check})`;
  return s;
}

export function createTableSql(dialect: Dialect, table: TableShape): string {
  const cols = table.columns.map((c) => `  ${columnDdl(dialect, c)},`);
  if (dialect === "bigquery") {
    return [
      `CREATE TABLE IF NOT EXISTS ${table.name} (`,
      ...cols,
      `  PRIMARY KEY (${table.key}) NOT ENFORCED`,
      ")",
      `PARTITION BY DATE(${table.partitionBy})`,
      `CLUSTER BY ${table.clusterBy};`,
    ].join("\n");
  }
  return [`CREATE TABLE ${table.name} (`, ...cols, `  PRIMARY KEY (${table.key})`, ");"].join("\n");
}

/** Secondary indexes beyond the primary keys (kept few: each one costs write throughput). */
export const INDEXES: Record<Dialect, readonly string[]> = {
  // BRIN on time: near-free to maintain for rows arriving roughly in time order.
  postgres: [
    "CREATE INDEX transactions_event_time_brin ON transactions USING brin (event_time);",
    "CREATE INDEX fraud_alerts_detected_at_idx ON fraud_alerts (detected_at);",
    "CREATE INDEX fraud_alerts_account_idx ON fraud_alerts (account_id, event_time);",
  ],
  // DuckDB relies on zone maps; extra ART indexes would slow bulk inserts.
  duckdb: [],
  // Partitioning and clustering do the job.
  bigquery: [],
};

/**
 * The text of migration 001 for a dialect, as committed in migrations/<dialect>/001_init.sql.
 * Migrations are immutable once released: a later schema change is a new file (002_...), and
 * this function is then only the generator of 001.
 */
export function renderInitMigration(dialect: Dialect): string {
  const header = [
    `-- paystream warehouse, ${dialect}: migration 001 (initial schema).`,
    "-- Generated from src/adapters/warehouse/schema.ts (renderInitMigration); do not edit once",
    "-- released: change the schema with a new numbered migration instead.",
  ];
  if (dialect === "bigquery") {
    header.push("-- Run with the target dataset as the default dataset. CHECK constraints do not exist in");
    header.push(
      "-- BigQuery and primary keys are NOT ENFORCED: dedup is insertId (best effort) + query time.",
    );
  }
  const parts = [header.join("\n"), ...TABLES.map((t) => createTableSql(dialect, t))];
  if (INDEXES[dialect].length > 0) parts.push(INDEXES[dialect].join("\n"));
  return `${parts.join("\n\n")}\n`;
}

/**
 * SQL predicate true for a staged row that the real table would refuse: a NULL in a NOT NULL
 * column or a failed CHECK. Used to name the offending rows after a rejected batch.
 */
export function violationPredicate(table: TableShape): string {
  const terms: string[] = [];
  for (const c of table.columns) {
    if (!c.nullable) terms.push(`${c.name} IS NULL`);
    if (c.check) terms.push(`NOT COALESCE((${c.check}), TRUE)`);
  }
  return terms.join(" OR ");
}

export function columnNames(table: TableShape): string {
  return table.columns.map((c) => c.name).join(", ");
}

// ----------------------------------------------------------------------------- errors

/**
 * The database refused rows of a batch (constraint or type error): not retriable. The
 * offending keys are in details[table.keyDetail] (transactionIds / alertIds) when the sink
 * could identify them, so the caller can dead-letter exactly those and write the rest.
 */
export function rejectedError<R>(
  backend: string,
  table: TableDef<R>,
  offenders: readonly string[],
  cause: unknown,
  extra: Record<string, unknown> = {},
): PaystreamError {
  const reason = (cause as Error)?.message ?? String(cause);
  const named =
    offenders.length > 0
      ? `; offending ${table.key}: ${offenders.slice(0, 10).join(", ")}${offenders.length > 10 ? ` (+${offenders.length - 10} more)` : ""}`
      : "";
  return new PaystreamError(
    ErrorCodes.WAREHOUSE_REJECTED,
    `${backend} rejected rows of ${table.name}: ${reason}${named}`,
    {
      cause,
      retriable: false,
      details: { backend, table: table.name, [table.keyDetail]: [...offenders], ...extra },
    },
  );
}

/** The warehouse cannot take writes now (retriable) or at all until an operator acts (not retriable). */
export function unavailableError(
  backend: string,
  what: string,
  cause: unknown,
  retriable: boolean,
  extra: Record<string, unknown> = {},
): PaystreamError {
  return new PaystreamError(
    ErrorCodes.WAREHOUSE_UNAVAILABLE,
    `${backend} ${what}: ${(cause as Error)?.message ?? String(cause)}`,
    { cause, retriable, details: { backend, ...extra } },
  );
}

/** A row that could not be encoded for the database (e.g. a timestamp that is not a number). */
export class RowEncodeError extends Error {
  readonly index: number;
  constructor(index: number, cause: unknown) {
    super(`row ${index}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "RowEncodeError";
    this.index = index;
  }
}

/**
 * Indexes of rows for which `encodeOne` throws: the slow path after a batch failed to encode,
 * to name every bad row rather than only the first.
 */
export function findUnencodable<R>(rows: readonly R[], encodeOne: (row: R) => void): number[] {
  const bad: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    try {
      encodeOne(rows[i]!);
    } catch {
      bad.push(i);
    }
  }
  return bad;
}

/** The key of a row, as a string for error details. */
export function keyOf<R>(table: TableDef<R>, row: R): string {
  return String((row as Record<string, unknown>)[table.key]);
}

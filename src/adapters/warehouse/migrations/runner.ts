/**
 * A tiny versioned-migration runner. Migrations are files `<dialect>/NNN_name.sql` next to
 * this module, applied in version order, each in its own transaction together with its row
 * in `schema_migrations(version, applied_at)`, so a crash leaves either all or none of a
 * migration. Re-running is a no-op.
 *
 * - PostgreSQL: concurrent starts (N processors) serialise on a session advisory lock keyed
 *   by the target schema; the loser waits, then finds nothing to do.
 * - DuckDB: one process owns the file (DuckDB's own file lock), so no lock is needed.
 * - BigQuery: no transactions or locks for DDL; its 001 uses IF NOT EXISTS so concurrent or
 *   repeated runs are harmless. Versions are recorded the same way.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { DuckDBConnection } from "@duckdb/node-api";
import type pg from "pg";
import type { Dialect } from "../schema.ts";

export interface Migration {
  readonly version: number;
  /** File name, e.g. "001_init.sql". */
  readonly name: string;
  readonly sql: string;
}

export interface MigrationReport {
  /** Versions applied by this run (empty on a re-run). */
  readonly applied: number[];
  /** Every version recorded in schema_migrations after the run. */
  readonly current: number[];
}

const FILE = /^(\d{3,})_[a-z0-9_]+\.sql$/;

/** The migrations of a dialect, sorted by version. Throws on a malformed name or a duplicate version. */
export function loadMigrations(
  dialect: Dialect,
  dir: URL = new URL(`./${dialect}/`, import.meta.url),
): Migration[] {
  const out: Migration[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith(".sql")) continue;
    const m = FILE.exec(name);
    if (!m) throw new Error(`migration file name must be NNN_name.sql: ${dialect}/${name}`);
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new Error(`duplicate migration version ${version}`);
    out.push({ version, name, sql: readFileSync(new URL(name, dir), "utf8") });
  }
  return out.sort((a, b) => a.version - b.version);
}

/** Fails when a migration cannot be applied: the message names the file. */
export class MigrationError extends Error {
  readonly migration: string;
  constructor(migration: string, cause: unknown) {
    super(`migration ${migration} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "MigrationError";
    this.migration = migration;
  }
}

/** Two int4 keys for pg_advisory_lock: a fixed class id, and the schema hashed server-side. */
const PG_LOCK_CLASS = 0x70_73_6d_67; // "psmg"

/**
 * Applies pending PostgreSQL migrations. `schema`, when given, is created if missing and must
 * be the first entry of the pool's search_path (PostgresWarehouse arranges that).
 */
export async function migratePostgres(
  pool: pg.Pool,
  opts: { schema?: string; migrations?: Migration[] } = {},
): Promise<MigrationReport> {
  const migrations = opts.migrations ?? loadMigrations("postgres");
  if (opts.schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(opts.schema)) {
    throw new Error(`invalid schema name ${JSON.stringify(opts.schema)}`);
  }
  const client = await pool.connect();
  let broken: unknown;
  try {
    const lockKey = `paystream.warehouse/${opts.schema ?? "(search_path)"}`;
    await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [PG_LOCK_CLASS, lockKey]);
    try {
      if (opts.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
      );
      const done = new Set(
        (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
          (r) => r.version,
        ),
      );
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query("INSERT INTO schema_migrations (version) VALUES ($1)", [m.version]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK").catch(() => {});
          throw new MigrationError(m.name, err);
        }
        applied.push(m.version);
        done.add(m.version);
      }
      return { applied, current: [...done].sort((a, b) => a - b) };
    } finally {
      await client.query("SELECT pg_advisory_unlock($1, hashtext($2))", [PG_LOCK_CLASS, lockKey]);
    }
  } catch (err) {
    broken = err;
    throw err;
  } finally {
    // A failed session is discarded: that also drops its advisory lock if unlock did not run.
    client.release(broken instanceof Error && !(broken instanceof MigrationError) ? broken : undefined);
  }
}

/** Applies pending DuckDB migrations on a connection (the process holds the file's lock). */
export async function migrateDuckDb(
  conn: DuckDBConnection,
  migrations: Migration[] = loadMigrations("duckdb"),
): Promise<MigrationReport> {
  await conn.run(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)",
  );
  const rows = (await conn.runAndReadAll("SELECT version FROM schema_migrations")).getRows();
  const done = new Set(rows.map((r) => Number(r[0])));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    await conn.run("BEGIN TRANSACTION");
    try {
      await conn.run(m.sql);
      await conn.run(`INSERT INTO schema_migrations (version) VALUES (${m.version})`);
      await conn.run("COMMIT");
    } catch (err) {
      await conn.run("ROLLBACK").catch(() => {});
      throw new MigrationError(m.name, err);
    }
    applied.push(m.version);
    done.add(m.version);
  }
  return { applied, current: [...done].sort((a, b) => a - b) };
}

/** Runs one BigQuery SQL script (with the target dataset as default dataset) and returns its rows. */
export type BigQueryRunner = (sql: string) => Promise<Record<string, unknown>[]>;

/** Applies pending BigQuery migrations through `run` (no transactions: the DDL is idempotent). */
export async function migrateBigQuery(
  run: BigQueryRunner,
  migrations: Migration[] = loadMigrations("bigquery"),
): Promise<MigrationReport> {
  await run(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INT64 NOT NULL, applied_at TIMESTAMP NOT NULL)",
  );
  const done = new Set((await run("SELECT version FROM schema_migrations")).map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    try {
      await run(m.sql);
      await run(
        `INSERT INTO schema_migrations (version, applied_at) VALUES (${m.version}, CURRENT_TIMESTAMP())`,
      );
    } catch (err) {
      throw new MigrationError(m.name, err);
    }
    applied.push(m.version);
    done.add(m.version);
  }
  return { applied, current: [...done].sort((a, b) => a - b) };
}

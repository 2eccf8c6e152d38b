/**
 * Picks the warehouse sink from one URL (config field "warehouse", env PAYSTREAM_WAREHOUSE):
 *
 *   duckdb:./data/paystream.duckdb   or any path ending .duckdb     → DuckDB (embedded, default)
 *   postgres://user@host:5432/db[?schema=name]  (postgresql:// too) → PostgreSQL
 *   bigquery://project/dataset                                      → BigQuery
 *     (bigquery:// alone takes PAYSTREAM_BIGQUERY_PROJECT / PAYSTREAM_BIGQUERY_DATASET;
 *      credentials come from GOOGLE_APPLICATION_CREDENTIALS, as for every Google client)
 *
 * Anything else is a ConfigError naming "warehouse". Every backend applies its pending
 * migrations at open. Backend modules are imported only when chosen, so a PostgreSQL
 * deployment never loads DuckDB or the Google client.
 */
import { ConfigError } from "../../core/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { redactUrl } from "../../lib/url.ts";
import type { MigrationReport } from "./migrations/runner.ts";
import type { InspectableWarehouse } from "./schema.ts";

export type { InspectableWarehouse } from "./schema.ts";

export const DEFAULT_WAREHOUSE_URL = "duckdb:./data/paystream.duckdb";

export type WarehouseTarget =
  | { kind: "duckdb"; path: string }
  | { kind: "postgres"; url: string; schema?: string }
  | { kind: "bigquery"; projectId: string; datasetId: string };

export interface OpenWarehouseOptions {
  /** PostgreSQL schema (overrides ?schema= in the URL). */
  schema?: string;
  /** PostgreSQL pool size (default 4). */
  poolSize?: number;
  /** Apply pending migrations at open (default true). */
  migrate?: boolean;
  /** BigQuery dataset location (e.g. "EU"); default PAYSTREAM_BIGQUERY_LOCATION. */
  location?: string;
  /** Where PAYSTREAM_BIGQUERY_* fallbacks are read (default process.env). */
  env?: Record<string, string | undefined>;
  /** Logs which backend was opened and which migrations were applied. */
  log?: Logger;
}

const BQ_NAME = /^[A-Za-z0-9_-]{1,1024}$/;
const BQ_DATASET = /^[A-Za-z0-9_]{1,1024}$/;

/** Parses a warehouse URL without opening anything. Errors never echo a password. */
export function parseWarehouseUrl(
  url: string,
  env: Record<string, string | undefined> = process.env,
): WarehouseTarget {
  const s = url.trim();
  if (s === "") throw new ConfigError("warehouse", `is empty (e.g. ${DEFAULT_WAREHOUSE_URL})`);
  if (s.startsWith("duckdb:")) {
    const path = s.slice("duckdb:".length).replace(/^\/\/(?=\/|\.)/, "");
    if (path === "")
      throw new ConfigError("warehouse", "duckdb: needs a file path, e.g. duckdb:./data/paystream.duckdb");
    return { kind: "duckdb", path };
  }
  if (/^postgres(ql)?:\/\//i.test(s)) {
    let u: URL;
    try {
      u = new URL(s);
    } catch (err) {
      throw new ConfigError("warehouse", "is not a valid PostgreSQL URL", { cause: err });
    }
    if (!u.hostname && !u.searchParams.get("host")) {
      throw new ConfigError("warehouse", `PostgreSQL URL has no host: ${redactUrl(s)}`);
    }
    const schema = u.searchParams.get("schema") ?? undefined;
    u.searchParams.delete("schema");
    return { kind: "postgres", url: u.toString(), ...(schema ? { schema } : {}) };
  }
  if (/^bigquery:\/\//i.test(s)) {
    const [project = "", dataset = "", ...rest] = s.slice("bigquery://".length).split("/");
    const projectId = project || env.PAYSTREAM_BIGQUERY_PROJECT || "";
    const datasetId = dataset || env.PAYSTREAM_BIGQUERY_DATASET || "";
    if (rest.some((x) => x !== "")) {
      throw new ConfigError("warehouse", "BigQuery URL is bigquery://project/dataset");
    }
    if (!BQ_NAME.test(projectId)) {
      throw new ConfigError(
        "warehouse",
        "BigQuery needs a project: bigquery://project/dataset or PAYSTREAM_BIGQUERY_PROJECT",
      );
    }
    if (!BQ_DATASET.test(datasetId)) {
      throw new ConfigError(
        "warehouse",
        "BigQuery needs a dataset (letters, digits, _): bigquery://project/dataset or PAYSTREAM_BIGQUERY_DATASET",
      );
    }
    return { kind: "bigquery", projectId, datasetId };
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && s.toLowerCase().endsWith(".duckdb")) {
    return { kind: "duckdb", path: s };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(s)?.[1];
  throw new ConfigError(
    "warehouse",
    `${scheme ? `unsupported scheme "${scheme}:"` : "unrecognised value"}; use duckdb:<path>, a path ending .duckdb, postgres://… or bigquery://project/dataset`,
  );
}

/** Opens the warehouse a URL names and applies its pending migrations. */
export async function openWarehouse(
  url: string,
  opts: OpenWarehouseOptions = {},
): Promise<InspectableWarehouse> {
  const target = parseWarehouseUrl(url, opts.env ?? process.env);
  const wh = await openTarget(target, opts);
  opts.log?.info(
    {
      warehouse: wh.name,
      ...(target.kind === "postgres" ? { url: redactUrl(target.url) } : {}),
      ...(target.kind === "duckdb" ? { path: target.path } : {}),
      ...(target.kind === "bigquery" ? { project: target.projectId, dataset: target.datasetId } : {}),
      migrationsApplied: wh.migrations?.applied ?? [],
      schemaVersion: wh.migrations?.current.at(-1),
    },
    "warehouse open",
  );
  return wh;
}

async function openTarget(
  target: WarehouseTarget,
  opts: OpenWarehouseOptions,
): Promise<InspectableWarehouse & { migrations: MigrationReport | undefined }> {
  const env = opts.env ?? process.env;
  switch (target.kind) {
    case "duckdb": {
      const { DuckDbWarehouse } = await import("./duckdb.ts");
      return DuckDbWarehouse.open(target.path, opts.migrate === undefined ? {} : { migrate: opts.migrate });
    }
    case "postgres": {
      const { PostgresWarehouse } = await import("./postgres-sink.ts");
      const schema = opts.schema ?? target.schema;
      return PostgresWarehouse.open(target.url, {
        ...(schema ? { schema } : {}),
        ...(opts.poolSize ? { poolSize: opts.poolSize } : {}),
        ...(opts.migrate === undefined ? {} : { migrate: opts.migrate }),
      });
    }
    case "bigquery": {
      const { BigQueryWarehouse } = await import("./bigquery.ts");
      const location = opts.location ?? env.PAYSTREAM_BIGQUERY_LOCATION;
      return BigQueryWarehouse.open({
        projectId: target.projectId,
        datasetId: target.datasetId,
        ...(location ? { location } : {}),
        ...(opts.migrate === undefined ? {} : { migrate: opts.migrate }),
      });
    }
  }
}

/**
 * The warehouse port (DuckDB, PostgreSQL or BigQuery) from one URL. Writers open it with
 * pending migrations applied (a DuckDB file and its folder are created); `paystream verify`
 * opens it read side only and refuses a DuckDB file that is not there (it would create an
 * empty one and then report every row missing).
 */
import { existsSync } from "node:fs";
import { openWarehouse, parseWarehouseUrl } from "../adapters/warehouse/index.ts";
import type { InspectableWarehouse } from "../contracts/ports.ts";
import { ConfigError } from "../core/errors.ts";
import type { Logger } from "../lib/log.ts";

/** Fails on a malformed URL without opening anything: checked before slower connections. */
export function checkWarehouseUrl(url: string): void {
  parseWarehouseUrl(url, process.env);
}

export function openWarehouseForWriting(url: string, log: Logger): Promise<InspectableWarehouse> {
  return openWarehouse(url, { log });
}

/** Opens the warehouse for reading; a DuckDB path that does not exist is a ConfigError (not created). */
export async function openWarehouseForReading(url: string): Promise<InspectableWarehouse> {
  const target = parseWarehouseUrl(url);
  if (target.kind === "duckdb" && target.path !== ":memory:" && !existsSync(target.path)) {
    throw new ConfigError("warehouse", `no DuckDB file at ${target.path}`);
  }
  return openWarehouse(url, { migrate: false });
}

/**
 * PostgreSQL connection pool with errors that name the (password-less) address.
 */
import pg from "pg";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
import { redactUrl } from "../../lib/url.ts";

export type PgPool = pg.Pool;

export async function connectPostgres(url: string, max = 4): Promise<PgPool> {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5000 });
  // A client losing its connection must not crash the process, whether idle (the pool's
  // 'error') or checked out between two queries (the client's own 'error', which has no
  // listener then): the next query on it fails and reports the outage.
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  try {
    await pool.query("select 1");
  } catch (err) {
    await pool.end().catch(() => {});
    throw new PaystreamError(
      ErrorCodes.WAREHOUSE_UNAVAILABLE,
      `cannot reach PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`,
      { cause: err, retriable: true, details: { url: redactUrl(url) } },
    );
  }
  return pool;
}

/**
 * The local services as the benchmarks use them: a Redis database of their own, throwaway
 * PostgreSQL databases, and the pids of the broker and Redis for CPU accounting.
 */
import { readdirSync, readFileSync } from "node:fs";
import pg from "pg";
import { createClient } from "redis";
import { deferCleanup } from "./proc.ts";
import type { ServiceAddresses } from "./types.ts";

const MARKER = "paystream:bench:db";

/**
 * The benchmark's Redis database (BENCH_REDIS_DB, default 13). The processor claims every
 * transaction id there (millions of dedup keys) and writes alerts; keeping them out of db 0
 * keeps them away from everyone else's tests and dashboards. A database that holds data and
 * not our marker is refused rather than flushed.
 */
export async function prepareRedisDb(base: string, db: number): Promise<{ url: string; pid?: number }> {
  const url = `${base.replace(/\/\d*$/, "")}/${db}`;
  const client = createClient({ url });
  await client.connect();
  try {
    const size = await client.dbSize();
    if (size > 0 && (await client.exists(MARKER)) === 0) {
      throw new Error(
        `Redis database ${db} holds ${size} keys that are not the benchmark's; choose another with BENCH_REDIS_DB`,
      );
    }
    await client.set(MARKER, "1");
    const info = await client.info("server");
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    return { url, ...(pid ? { pid } : {}) };
  } finally {
    client.destroy();
  }
}

/** Empties the benchmark's Redis database (only ever ours: prepareRedisDb checked the marker). */
export async function flushRedisDb(url: string): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    if ((await client.exists(MARKER)) === 1) {
      await client.flushDb();
      await client.set(MARKER, "1");
    }
  } finally {
    client.destroy();
  }
}

/** Creates a database for one run; returns its URL and a drop function (also run on Ctrl-C). */
export async function createPgDatabase(
  adminUrl: string,
  name: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  let unregister = () => {};
  const drop = async () => {
    unregister();
    await run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  };
  unregister = deferCleanup(drop);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop };
}

export async function postgresVersion(url: string): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: url });
  try {
    await c.connect();
    const r = await c.query<{ server_version: string }>("SHOW server_version");
    return r.rows[0]?.server_version;
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function redisVersion(url: string): Promise<string | undefined> {
  const client = createClient({ url });
  try {
    await client.connect();
    return /redis_version:(\S+)/.exec(await client.info("server"))?.[1];
  } catch {
    return undefined;
  } finally {
    client.destroy();
  }
}

/**
 * The local broker's pid and Kafka version, from the JVM running kafka.Kafka: the version is
 * the one in the kafka_<scala>-<version>.jar on its classpath (the broker API does not say).
 */
export function findKafka(): { pid?: number; version?: string } {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!argv.includes("kafka.Kafka")) continue;
    const cp = argv[argv.indexOf("-cp") + 1] ?? "";
    let version: string | undefined;
    for (const part of cp.split(":")) {
      const dir = part.replace(/\/\*$/, "");
      try {
        for (const f of readdirSync(dir)) {
          const m = /^kafka_[\d.]+-(\d+\.\d+\.\d+[^/]*?)\.jar$/.exec(f);
          if (m) version = m[1];
        }
      } catch {
        // Not a directory.
      }
    }
    return { pid: Number(entry), ...(version ? { version } : {}) };
  }
  return {};
}

export type { ServiceAddresses };

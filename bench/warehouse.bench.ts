/**
 * Warehouse sink throughput: 200,000 TransactionRows written in batches of 5,000, one batch
 * at a time (as the processor does per partition batch), to DuckDB (a file in a temp dir) and
 * to the local PostgreSQL (a fresh schema, dropped afterwards). Then the same rows again: a
 * full replay, which must insert nothing. Rows are generated before the clock starts.
 * No assertions: it prints a table.
 *
 * CPU is this process's (process.cpuUsage: the JavaScript thread, V8's helpers, and DuckDB's
 * native work, which runs on threads of this process; PostgreSQL's server CPU is not in it) and
 * the JavaScript thread's alone (process.threadCpuUsage), per row; "box" is the whole
 * machine's (/proc/stat: this process, PostgreSQL's server, and any other load), per row.
 *
 *   npx node bench/warehouse.bench.ts [rows] [batch] [--staged] [--duckdb-only]
 *
 * --staged adds DuckDB and PostgreSQL with every batch written through the staged INSERT …
 * ON CONFLICT (the path before direct writes: `directAppend` / `directCopy: false`), on a file
 * or schema of its own, each run before its default path: a before/after from one run.
 * --duckdb-only skips PostgreSQL.
 *
 * Needs the local PostgreSQL (scripts/services.sh up) unless --duckdb-only;
 * PAYSTREAM_TEST_POSTGRES overrides it. `npm run bench` calls runWarehouseBench() in a process
 * of its own.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { DuckDbWarehouse } from "../src/adapters/warehouse/duckdb.ts";
import { openWarehouse } from "../src/adapters/warehouse/index.ts";
import { PostgresWarehouse } from "../src/adapters/warehouse/postgres-sink.ts";
import type { InspectableWarehouse } from "../src/adapters/warehouse/schema.ts";
import type { TransactionRow } from "../src/contracts/rows.ts";
import { formatMinor } from "../src/core/schema.ts";
import { machineCpu } from "./lib/proc.ts";

const ACCOUNTS = 50_000;
const POSTGRES = process.env.PAYSTREAM_TEST_POSTGRES ?? "postgres://paystream@127.0.0.1:5432/paystream";
const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const RUN = `bench-${Date.now().toString(36)}`;

const tokens = new Map<string, string>();
function token(kind: string, id: number): string {
  const k = `${kind}:${id}`;
  let t = tokens.get(k);
  if (t === undefined) {
    t = randomBytes(16).toString("base64url");
    tokens.set(k, t);
  }
  return t;
}

/** A realistic masked row: per-account tokens, ~100K rows/s of event time. */
function makeRow(i: number): TransactionRow {
  const acct = (i * 2_654_435_761) % ACCOUNTS;
  const minor = 100 + ((i * 7919) % 250_000);
  const t = T0 + Math.floor(i / 100);
  return {
    transaction_id: `${RUN}-${i.toString(36)}-${token("tx", i % 1000).slice(0, 8)}`,
    account_id: `acct-${acct}`,
    schema_version: 1,
    card_bin: "411111",
    card_last4: String(1000 + (acct % 9000)),
    card_token: token("card", acct),
    name_token: token("name", acct),
    email_token: token("email", acct),
    ip_token: token("ip", acct % 20_000),
    device_token: token("device", acct),
    amount: formatMinor(minor),
    amount_minor: minor,
    currency: "EUR",
    merchant_id: `m-${i % 5003}`,
    merchant_category: "5411",
    country: "FR",
    city: "Paris",
    lat: 48.8566 + (acct % 1000) / 1e5,
    lon: 2.3522 - (acct % 1000) / 1e5,
    event_time: new Date(t).toISOString(),
    event_time_ms: t,
    kafka_partition: acct % 24,
    kafka_offset: String(i),
    processed_at_ms: t + 120,
    is_late: i % 97 === 0,
  };
}

export interface WarehouseResult {
  backend: string;
  phase: string;
  rows: number;
  seconds: number;
  rowsPerS: number;
  /** Process CPU (all threads) per row, µs. */
  cpuUsPerRow: number;
  /** The JavaScript thread's CPU per row, µs. */
  mainUsPerRow: number;
  /** The whole machine's CPU per row: PostgreSQL's server included (and any other load). */
  boxUsPerRow: number;
  /** Batch latency, ms. */
  p50: number;
  max: number;
}

async function run(
  wh: InspectableWarehouse,
  batches: TransactionRow[][],
  phase: string,
  backend: string = wh.name,
): Promise<WarehouseResult> {
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const box0 = machineCpu();
  const t0 = performance.now();
  for (const b of batches) {
    const t = performance.now();
    await wh.writeTransactions(b);
    lat.push(performance.now() - t);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  const box1 = machineCpu();
  lat.sort((a, b) => a - b);
  const rows = batches.reduce((n, b) => n + b.length, 0);
  return {
    backend,
    phase,
    rows,
    seconds,
    rowsPerS: Math.round(rows / seconds),
    cpuUsPerRow: (cpu.user + cpu.system) / rows,
    mainUsPerRow: (main.user + main.system) / rows,
    // /proc/stat counts in USER_HZ (100 per second on Linux).
    boxUsPerRow: ((box1.busy - box0.busy) * 10_000) / rows,
    p50: lat[Math.floor(lat.length / 2)] ?? 0,
    max: lat.at(-1) ?? 0,
  };
}

interface Target {
  backend: string;
  open(): Promise<InspectableWarehouse>;
}

export async function runWarehouseBench(
  opts: { rows?: number; batch?: number; print?: boolean; staged?: boolean; duckdbOnly?: boolean } = {},
): Promise<WarehouseResult[]> {
  const ROWS = opts.rows ?? 200_000;
  const BATCH = opts.batch ?? 5_000;
  const batches: TransactionRow[][] = [];
  for (let start = 0; start < ROWS; start += BATCH) {
    const b: TransactionRow[] = [];
    for (let i = start; i < Math.min(ROWS, start + BATCH); i++) b.push(makeRow(i));
    batches.push(b);
  }

  const dir = mkdtempSync(join(tmpdir(), "paystream-bench-"));
  const schema = `bench_${RUN.replaceAll("-", "_")}`;
  const results: WarehouseResult[] = [];
  const targets: Target[] = [
    ...(opts.staged
      ? [
          {
            backend: "duckdb (staged)",
            open: () => DuckDbWarehouse.open(join(dir, "staged.duckdb"), { directAppend: false }),
          },
        ]
      : []),
    { backend: "duckdb", open: () => openWarehouse(`duckdb:${join(dir, "bench.duckdb")}`) },
    ...(opts.duckdbOnly
      ? []
      : [
          ...(opts.staged
            ? [
                {
                  backend: "postgres (staged)",
                  open: () =>
                    PostgresWarehouse.open(POSTGRES, { schema: `${schema}_staged`, directCopy: false }),
                },
              ]
            : []),
          { backend: "postgres", open: () => openWarehouse(POSTGRES, { schema }) },
        ]),
  ];
  try {
    for (const target of targets) {
      const wh = await target.open();
      try {
        results.push(await run(wh, batches, "fresh", target.backend));
        results.push(await run(wh, batches, "replay (all duplicates)", target.backend));
        const count = await wh.countTransactions();
        if (count !== ROWS)
          process.stdout.write(`WARNING: ${target.backend} holds ${count} rows, expected ${ROWS}\n`);
      } finally {
        await wh.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (!opts.duckdbOnly) {
      await dropSchema(schema);
      if (opts.staged) await dropSchema(`${schema}_staged`);
    }
  }

  if (opts.print !== false) {
    process.stdout.write(
      `\nwarehouse sinks: ${ROWS.toLocaleString("en")} rows in batches of ${BATCH.toLocaleString("en")}, one batch at a time (node ${process.version}; ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? "?"}; load ${os.loadavg()[0]!.toFixed(2)} at the end)\n\n`,
    );
    const header = [
      "backend",
      "phase",
      "rows",
      "seconds",
      "rows/s",
      "CPU µs/row",
      "JS thread µs/row",
      "box µs/row",
      "batch p50 ms",
      "batch max ms",
    ];
    const table = results.map((r) => [
      r.backend,
      r.phase,
      r.rows.toLocaleString("en"),
      r.seconds.toFixed(2),
      r.rowsPerS.toLocaleString("en"),
      r.cpuUsPerRow.toFixed(1),
      r.mainUsPerRow.toFixed(1),
      r.boxUsPerRow.toFixed(1),
      r.p50.toFixed(1),
      r.max.toFixed(1),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |\n`;
    process.stdout.write(line(header));
    process.stdout.write(line(widths.map((w) => "-".repeat(w))));
    for (const row of table) process.stdout.write(line(row));
  }
  return results;
}

async function dropSchema(schema: string): Promise<void> {
  const pool = new pg.Pool({ connectionString: POSTGRES, max: 1 });
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await pool.end();
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const [rows, batch] = args.filter((a) => !a.startsWith("--"));
  await runWarehouseBench({
    rows: Number(rows ?? 200_000),
    batch: Number(batch ?? 5_000),
    staged: args.includes("--staged"),
    duckdbOnly: args.includes("--duckdb-only"),
  });
}

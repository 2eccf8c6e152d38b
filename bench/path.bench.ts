/**
 * The processor's per-record path in one process, without servers: the real Processor
 * (decode, dedup, windows + the default rules, masking, alert JSON, row building) fed batches
 * of generator records as Kafka would hand them over, with ports that do the CPU part of each
 * output and no I/O: the warehouse encodes its rows (PostgreSQL COPY text, or DuckDB data
 * chunks), the alert store builds each alert's JSON; dedup is the window's (the default).
 * What it measures is the JavaScript thread's cost per record, which is what caps one
 * processor (docs/benchmarks.md); the sinks' own work (Redis, PostgreSQL, DuckDB's insert) is
 * not in it.
 *
 *   npx node bench/path.bench.ts [pg|duckdb|none] [records] [accounts] [window|shared]
 *   (shared: with the `--dedup-shared` tier, its store answering "new" for every claim)
 *   npx node --cpu-prof --cpu-prof-dir=/tmp/prof bench/path.bench.ts pg   # and a profile
 *
 * Prints CPU µs per record (process CPU: JavaScript thread plus GC and compiler helpers) and
 * wall µs per record, median of the timed rounds.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { collectChunks } from "../src/adapters/warehouse/duckdb.ts";
import { encodeCopyText } from "../src/adapters/warehouse/postgres-sink.ts";
import { alertToRow, FRAUD_ALERTS, TRANSACTIONS } from "../src/adapters/warehouse/schema.ts";
import { TrafficGenerator } from "../src/collector/generator.ts";
import type { Alert } from "../src/contracts/alert.ts";
import { alertToJson } from "../src/contracts/alert.ts";
import type { InRecord, RecordSource, SourceHandlers, Warehouse } from "../src/contracts/ports.ts";
import type { TransactionRow } from "../src/contracts/rows.ts";
import { type DedupClaim, Deduper, type SharedDedupStore } from "../src/core/dedup.ts";
import { Masker } from "../src/core/masking.ts";
import { parseRules } from "../src/core/rules.ts";
import type { Logger } from "../src/lib/log.ts";
import { createRegistry } from "../src/lib/metrics.ts";
import { createProcessorMetrics } from "../src/processor/metrics.ts";
import { Processor } from "../src/processor/processor.ts";

const BATCH = 5000;
const PARTITIONS = 24;
const RATE = 20_000;

export interface PathBenchResult {
  sink: string;
  records: number;
  accounts: number;
  rounds: number;
  cpuUsPerRecord: number;
  wallUsPerRecord: number;
  alerts: number;
}

/** FNV-1a of the key, so an account stays in one partition (Kafka uses murmur2; any stable hash will do here). */
function partitionOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % PARTITIONS;
}

function makeBatches(total: number, accounts: number, t0: number): InRecord[][] {
  const gen = new TrafficGenerator({ accounts, seed: 7 });
  const next = new Array<bigint>(PARTITIONS).fill(0n);
  const batches: InRecord[][] = [];
  const out: { key: string; value: string }[] = [];
  let now = t0;
  for (let done = 0; done < total; done += BATCH) {
    gen.fill(out as never, BATCH, now);
    const batch: InRecord[] = [];
    for (const r of out) {
      const partition = partitionOf(r.key);
      const offset = next[partition]!;
      next[partition] = offset + 1n;
      // A view into a larger buffer, as the Kafka client hands values over.
      const bytes = Buffer.from(` ${r.value}`);
      batch.push({
        topic: "bench",
        partition,
        offset,
        key: r.key,
        value: bytes.subarray(1),
        timestamp: now,
      });
    }
    // Partition order within a fetch, as the consumer delivers.
    batch.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
    batches.push(batch);
    now += (BATCH / RATE) * 1000;
  }
  return batches;
}

class NewIdStore implements SharedDedupStore {
  claim(claims: readonly DedupClaim[]): Promise<boolean[]> {
    return Promise.resolve(claims.map(() => true));
  }
}

function encodingWarehouse(sink: string): Warehouse {
  const encode = <R>(table: typeof TRANSACTIONS | typeof FRAUD_ALERTS, rows: R[]) => {
    if (sink === "pg") encodeCopyText(table as never, rows);
    else if (sink === "duckdb") collectChunks(table as never, rows);
  };
  return {
    name: sink,
    writeTransactions: async (rows: TransactionRow[]) => encode(TRANSACTIONS, rows),
    writeAlerts: async (alerts: Alert[]) => encode(FRAUD_ALERTS, alerts.map(alertToRow)),
    close: async () => {},
  };
}

const quietLog = { info() {}, warn() {}, error() {}, debug() {}, child: () => quietLog } as unknown as Logger;

export async function runPathBench(
  opts: { sink?: string; records?: number; accounts?: number; sharedDedup?: boolean; print?: boolean } = {},
): Promise<PathBenchResult> {
  const sink = opts.sink ?? "pg";
  const total = opts.records ?? 300_000;
  const accounts = opts.accounts ?? 1_000_000;
  const t0 = Date.UTC(2026, 10, 25, 10, 0, 0);
  const batches = makeBatches(total, accounts, t0);
  const rules = parseRules(
    parseYaml(readFileSync(new URL("../config/rules.default.yaml", import.meta.url), "utf8")),
  );
  let clock = t0;
  let handlers: SourceHandlers | undefined;
  const source: RecordSource = {
    start: async (h) => {
      handlers = h;
    },
    stop: async () => {},
    commit: async () => {},
    lag: async () => new Map(),
    close: async () => {},
  };
  const processor = new Processor(
    {
      source,
      sink: { send: async () => {}, close: async () => {} },
      alertStore: {
        writeAlerts: async (alerts) => {
          for (const a of alerts) alertToJson(a);
        },
        close: async () => {},
      },
      warehouse: encodingWarehouse(sink),
      // As `--dedup-shared`: the Redis tier's local cache and claims, the store answering "new".
      ...(opts.sharedDedup ? { deduper: new Deduper(new NewIdStore()) } : {}),
      masker: new Masker(Buffer.alloc(32, 7)),
      metrics: createProcessorMetrics(createRegistry("bench", false)),
      log: quietLog,
      now: () => clock,
    },
    { rules },
  );
  await processor.start();
  // The first fifth warms the JIT and fills the windows; the rest is timed in rounds.
  const warm = Math.max(1, Math.floor(batches.length / 5));
  const perRound = Math.max(1, Math.floor((batches.length - warm) / 5));
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let b = 0; b < batches.length; ) {
    const timed = b >= warm;
    const end = timed ? Math.min(batches.length, b + perRound) : warm;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    let n = 0;
    for (; b < end; b++) {
      clock = batches[b]![0]!.timestamp;
      n += batches[b]!.length;
      await handlers!.onBatch(batches[b]!);
    }
    await processor.drain();
    const c = process.cpuUsage(c0);
    if (timed) {
      cpu.push((c.user + c.system) / n);
      wall.push(((performance.now() - w0) * 1000) / n);
    }
  }
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
  const result: PathBenchResult = {
    sink,
    records: total,
    accounts,
    rounds: cpu.length,
    cpuUsPerRecord: Math.round(median(cpu) * 100) / 100,
    wallUsPerRecord: Math.round(median(wall) * 100) / 100,
    alerts: processor.totals.alerts,
  };
  if (opts.print) {
    console.log(
      `path (${sink}, ${opts.sharedDedup ? "shared" : "window"} dedup): ${result.cpuUsPerRecord} µs CPU/record, ${result.wallUsPerRecord} µs wall/record ` +
        `(median of ${result.rounds} rounds; all: ${cpu.map((x) => x.toFixed(1)).join(" ")}); ` +
        `${total.toLocaleString("en-US")} records, ${accounts.toLocaleString("en-US")} accounts, ${result.alerts} alerts`,
    );
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sink, records, accounts, dedup] = process.argv.slice(2);
  await runPathBench({
    sink: sink ?? "pg",
    records: records ? Number(records) : undefined,
    accounts: accounts ? Number(accounts) : undefined,
    sharedDedup: dedup === "shared",
    print: true,
  });
}

/**
 * `npm run bench`: every benchmark, one results table, one JSON file.
 *
 *   npm run bench                          full run (~8 min)
 *   npm run bench -- --quick               shorter durations (~2.5 min): a smoke test of the numbers
 *   npm run bench -- --only=processor-throughput,e2e-latency   (a prefix such as --only=collector works)
 *   npm run bench -- --profile             also CPU-profile the collector and the processor (adds ~2 min)
 *   npm run bench -- --no-save             print only (while working on a benchmark)
 *   npm run bench -- --list | --summary | --help
 *
 * Results go to bench/results/<YYYY-MM-DD>-<hostname>.json (UTC date), which collects every run
 * of that day on that host with the median and range per figure, and to bench/results/latest.json.
 * Benchmarks measure and never assert: a missed goal is reported, not failed. The exit code
 * is non-zero only when a benchmark could not run.
 *
 * Services: Kafka BENCH_KAFKA (127.0.0.1:9092), Redis BENCH_REDIS (redis://127.0.0.1:6379)
 * database BENCH_REDIS_DB (13), PostgreSQL BENCH_POSTGRES (postgres://paystream@127.0.0.1:5432/paystream);
 * start them with `bash scripts/services.sh up`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { checkKafka } from "../src/adapters/kafka/client.ts";
import { collectorRateAccuracy, collectorThroughput } from "./collector.bench.ts";
import { e2eLatency } from "./e2e.bench.ts";
import { describeMachine, type Machine } from "./lib/machine.ts";
import {
  busyShare,
  deferCleanup,
  exitWithMain,
  installCleanupHandlers,
  machineCpu,
  ROOT,
} from "./lib/proc.ts";
import { findKafka, flushRedisDb, prepareRedisDb } from "./lib/services.ts";
import { fmt, sleep, spread } from "./lib/stats.ts";
import type { Bench, BenchContext, Metric, ServiceAddresses } from "./lib/types.ts";
import { microBench, warehouseBench, windowMemoryBench } from "./micro.ts";
import { processorThroughput } from "./processor.bench.ts";
import { recoveryBench } from "./recovery.bench.ts";

const BENCHES: Bench[] = [
  microBench,
  collectorThroughput,
  collectorRateAccuracy,
  processorThroughput,
  e2eLatency,
  recoveryBench,
  windowMemoryBench,
  warehouseBench,
];
/** Benchmarks that write to Redis through a processor. */
const NEEDS_REDIS = new Set(["processor-throughput", "e2e-latency", "recovery"]);
const NEEDS_KAFKA = new Set(["collector-throughput", "collector-rate-accuracy", ...NEEDS_REDIS]);

const RESULTS = join(ROOT, "bench/results");

interface MetricResult extends Metric {
  met?: boolean;
}

interface BenchRecord {
  name: string;
  ok: boolean;
  /** Share of all CPUs busy in the 1 s before the benchmark started: other people's load. */
  backgroundBusy: number;
  error?: string;
  durationS: number;
  metrics: MetricResult[];
  details?: unknown;
}

interface RunRecord {
  startedAt: string;
  durationS: number;
  flags: { quick: boolean; only: string[] | null; profile: boolean };
  machine: Machine;
  loadAverageAtEnd: number[];
  benchmarks: BenchRecord[];
}

interface Summary {
  [metricKey: string]: { median: number; min: number; max: number; n: number; unit: string; label: string };
}

interface ResultsFile {
  schema: 1;
  host: string;
  date: string;
  /** Median and range per figure over this day's runs of the same code (src/, config/, lockfile) and --quick setting as the last run. */
  summary: { commit: string; codeHash: string; quick: boolean; runs: number; figures: Summary };
  runs: RunRecord[];
}

// ----------------------------------------------------------------------------- arguments

function parseArgs(argv: string[]) {
  const flags = {
    quick: false,
    profile: false,
    list: false,
    help: false,
    summary: false,
    save: true,
    only: null as string[] | null,
  };
  for (const a of argv) {
    if (a === "--quick") flags.quick = true;
    else if (a === "--profile") flags.profile = true;
    else if (a === "--list") flags.list = true;
    else if (a === "--summary") flags.summary = true;
    else if (a === "--no-save") flags.save = false;
    else if (a === "--help" || a === "-h") flags.help = true;
    else if (a.startsWith("--only=")) flags.only = a.slice(7).split(",").filter(Boolean);
    else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return flags;
}

function select(only: string[] | null): Bench[] {
  if (!only) return BENCHES;
  const chosen = BENCHES.filter((b) => only.some((o) => b.name === o || b.name.startsWith(o)));
  const unknown = only.filter((o) => !BENCHES.some((b) => b.name === o || b.name.startsWith(o)));
  if (unknown.length) {
    throw new Error(
      `unknown benchmark ${unknown.join(", ")}; one of ${BENCHES.map((b) => b.name).join(", ")}`,
    );
  }
  return chosen;
}

// ----------------------------------------------------------------------------- output

function table(rows: string[][], header: string[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function status(m: MetricResult): string {
  if (!m.goal) return "";
  if (m.met === undefined) return "not measured";
  return m.met ? "met" : "MISSED";
}

function resultsTable(benches: BenchRecord[]): string {
  const rows: string[][] = [];
  for (const b of benches) {
    if (!b.ok) {
      rows.push([b.name, `ERROR: ${(b.error ?? "").split("\n")[0]}`, "", "", "", "", ""]);
      continue;
    }
    for (const m of b.metrics) {
      rows.push([b.name, m.label, fmt(m.value), m.unit, m.goal?.text ?? "", status(m), m.note ?? ""]);
    }
  }
  return table(rows, ["benchmark", "figure", "value", "unit", "goal", "status", "notes"]);
}

function summaryTable(file: ResultsFile): string {
  const rows = Object.entries(file.summary.figures).map(([key, s]) => [
    key.split("/")[0]!,
    s.label,
    fmt(s.median),
    s.n > 1 ? `${fmt(s.min)} – ${fmt(s.max)}` : "",
    s.unit,
    String(s.n),
  ]);
  return table(rows, ["benchmark", "figure", "median", "range", "unit", "runs"]);
}

function summarize(file: ResultsFile): void {
  const last = file.runs.at(-1);
  if (!last) return;
  // Same code, not same commit: others commit while benchmarks run, and uncommitted changes count.
  const code = (r: RunRecord) => r.machine.git.codeHash ?? r.machine.git.commit;
  const comparable = file.runs.filter((r) => r.flags.quick === last.flags.quick && code(r) === code(last));
  const values = new Map<string, { xs: number[]; unit: string; label: string }>();
  for (const r of comparable) {
    for (const b of r.benchmarks) {
      for (const m of b.metrics) {
        if (m.value === null || !Number.isFinite(m.value)) continue;
        const key = `${b.name}/${m.key}`;
        const v = values.get(key) ?? { xs: [], unit: m.unit, label: m.label };
        v.xs.push(m.value);
        values.set(key, v);
      }
    }
  }
  const figures: Summary = {};
  for (const [key, v] of values) figures[key] = { ...spread(v.xs), unit: v.unit, label: v.label };
  file.summary = {
    commit: last.machine.git.commit,
    codeHash: code(last),
    quick: last.flags.quick,
    runs: comparable.length,
    figures,
  };
}

function writeResults(run: RunRecord, machine: Machine): string {
  mkdirSync(RESULTS, { recursive: true });
  const date = run.startedAt.slice(0, 10);
  const host = machine.hostname.replace(/[^A-Za-z0-9._-]/g, "_");
  const path = join(RESULTS, `${date}-${host}.json`);
  let file: ResultsFile = {
    schema: 1,
    host,
    date,
    summary: { commit: "", codeHash: "", quick: false, runs: 0, figures: {} },
    runs: [],
  };
  if (existsSync(path)) {
    try {
      const prev = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
      if (prev.schema === 1 && Array.isArray(prev.runs)) file = prev;
    } catch {
      // An unreadable file is replaced rather than appended to.
    }
  }
  file.runs.push(run);
  summarize(file);
  const text = `${JSON.stringify(file, null, 2)}\n`;
  writeFileSync(path, text);
  writeFileSync(join(RESULTS, "latest.json"), text);
  return path;
}

function describe(m: Machine): string {
  return [
    `host ${m.hostname}: ${m.cpuModel}, ${m.cores} logical CPUs, ${m.ramGiB} GiB RAM, ${m.os} (kernel ${m.kernel})`,
    `Node ${m.node}, Kafka ${m.kafka}, Redis ${m.redis}, PostgreSQL ${m.postgres}, ${m.duckdb}`,
    `git ${m.git.commit} (code ${m.git.codeHash})${m.git.dirty.length ? ` + uncommitted changes in ${m.git.dirty.join(", ")}` : ""}; load average at start ${m.loadAverageAtStart.join(" / ")}`,
  ].join("\n");
}

// ----------------------------------------------------------------------------- main

async function main(): Promise<number> {
  const flags = parseArgs(process.argv.slice(2));
  if (flags.help) {
    const doc = readFileSync(new URL(import.meta.url), "utf8");
    process.stdout.write(
      `${/\/\*\*([\s\S]*?)\*\//
        .exec(doc)?.[1]
        ?.replace(/^ \* ?/gm, "")
        .trim()}\n`,
    );
    return 0;
  }
  if (flags.list) {
    for (const b of BENCHES) {
      process.stdout.write(
        `${b.name.padEnd(24)} ~${b.estimateS[0]} s (quick ~${b.estimateS[1]} s)  ${b.description}\n`,
      );
    }
    return 0;
  }
  if (flags.summary) {
    const path = join(RESULTS, "latest.json");
    const file = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
    process.stdout.write(
      `${file.date} ${file.host}: ${file.summary.runs} run(s) of code ${file.summary.codeHash} (commit ${file.summary.commit})${file.summary.quick ? " (--quick)" : ""}\n\n${summaryTable(file)}\n`,
    );
    return 0;
  }
  const benches = select(flags.only);
  installCleanupHandlers();

  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const runDir = mkdtempSync(join(os.tmpdir(), `paystream-bench-${runId}-`));
  // Interrupted: DuckDB files and logs of a half run are not worth keeping.
  deferCleanup(async () => rmSync(runDir, { recursive: true, force: true }));
  const brokers = (process.env.BENCH_KAFKA ?? "127.0.0.1:9092").split(",");
  const redisBase = process.env.BENCH_REDIS ?? "redis://127.0.0.1:6379";
  const postgresUrl = process.env.BENCH_POSTGRES ?? "postgres://paystream@127.0.0.1:5432/paystream";
  const machine = await describeMachine(redisBase, postgresUrl);
  const started = new Date();
  const estimate = benches.reduce((s, b) => s + b.estimateS[flags.quick ? 1 : 0], 0);
  process.stdout.write(`${describe(machine)}\n`);
  process.stdout.write(
    `running ${benches.map((b) => b.name).join(", ")}${flags.quick ? " (--quick)" : ""}, about ${estimate < 90 ? `${estimate} s` : `${Math.round(estimate / 60)} min`}\n`,
  );

  const services: ServiceAddresses = {
    brokers,
    redisUrl: redisBase,
    postgresUrl,
    kafkaPid: findKafka().pid,
    redisPid: undefined,
  };
  // A missing service fails the benchmarks that need it, with the fix, not the whole run.
  let serviceError: string | undefined;
  if (benches.some((b) => NEEDS_KAFKA.has(b.name))) {
    try {
      await checkKafka({ brokers, clientId: "paystream-bench-probe" });
    } catch (err) {
      serviceError = `${(err as Error).message} (start the services: bash scripts/services.sh up)`;
    }
  }
  if (!serviceError && benches.some((b) => NEEDS_REDIS.has(b.name))) {
    try {
      const db = Number(process.env.BENCH_REDIS_DB ?? 13);
      const r = await prepareRedisDb(redisBase, db);
      services.redisUrl = r.url;
      services.redisPid = r.pid;
    } catch (err) {
      serviceError = `Redis: ${(err as Error).message} (start the services: bash scripts/services.sh up)`;
    }
  }

  const ctx: BenchContext = {
    quick: flags.quick,
    profile: flags.profile,
    runId,
    runDir,
    services,
    log: (m) => process.stdout.write(`  ${m}\n`),
  };
  const records: BenchRecord[] = [];
  for (const b of benches) {
    process.stdout.write(`\n== ${b.name}: ${b.description}\n`);
    const idle0 = machineCpu();
    await sleep(1000);
    const backgroundBusy = Math.round(busyShare(idle0, machineCpu()) * 100) / 100;
    process.stdout.write(
      `  machine ${Math.round(backgroundBusy * 100)}% busy before starting (other load)\n`,
    );
    const t0 = performance.now();
    const rec: BenchRecord = { name: b.name, ok: true, backgroundBusy, durationS: 0, metrics: [] };
    try {
      if (serviceError && NEEDS_KAFKA.has(b.name)) throw new Error(serviceError);
      const out = await b.run(ctx);
      rec.metrics = out.metrics.map((m) => ({
        ...m,
        ...(m.goal && m.value !== null
          ? { met: m.goal.op === ">=" ? m.value >= m.goal.target : m.value <= m.goal.target }
          : {}),
      }));
      rec.details = out.details;
    } catch (err) {
      rec.ok = false;
      rec.error = (err as Error).stack ?? String(err);
      process.stdout.write(`  FAILED: ${rec.error}\n`);
    }
    rec.durationS = Math.round((performance.now() - t0) / 100) / 10;
    process.stdout.write(`  (${rec.durationS} s)\n`);
    records.push(rec);
  }
  if (services.redisPid !== undefined) await flushRedisDb(services.redisUrl).catch(() => {});

  const run: RunRecord = {
    startedAt: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    flags: { quick: flags.quick, only: flags.only, profile: flags.profile },
    machine,
    loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
    benchmarks: records,
  };
  process.stdout.write(
    `\n${describe(machine)}\nload average at end ${run.loadAverageAtEnd.join(" / ")}; ${run.durationS} s\n\n`,
  );
  process.stdout.write(`${resultsTable(records)}\n`);
  if (flags.save) {
    const path = writeResults(run, machine);
    const file = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
    if (file.summary.runs > 1) {
      process.stdout.write(
        `\nmedian and range over the ${file.summary.runs} comparable runs of ${file.date} (commit ${file.summary.commit}, code ${file.summary.codeHash}${file.summary.quick ? ", --quick" : ""}):\n\n${summaryTable(file)}\n`,
      );
    }
    process.stdout.write(`\nwrote ${path} and bench/results/latest.json\n`);
  }

  const failed = records.filter((r) => !r.ok);
  if (failed.length) {
    process.stdout.write(`logs of the failed run kept in ${runDir}\n`);
    return 1;
  }
  rmSync(runDir, { recursive: true, force: true });
  return 0;
}

exitWithMain("bench", main);

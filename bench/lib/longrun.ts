/**
 * What `npm run spike` and `npm run soak` share: flags, the run's own topics / Redis
 * database / PostgreSQL database, `paystream verify` at the end, and the results files.
 *
 * Isolation is bench/'s: topics `paystream-bench-<run id>-<kind>-*` and a consumer group of
 * the run (deleted at the end, also on Ctrl-C), a PostgreSQL database `bench_<run id>_<kind>`
 * (dropped), a Redis database of the run's kind (BENCH_REDIS_DB is the benchmarks'; the spike
 * and soak take their own so they can run beside `npm run bench`), refused when it holds data
 * that is not a benchmark's and emptied before and after. Children run through guarded-main.ts,
 * so nothing reaches the shared payments.* topics.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { checkKafka } from "../../src/adapters/kafka/client.ts";
import { formatDuration, parseDuration } from "../../src/lib/config.ts";
import { renderTable } from "../../src/verify/reconcile.ts";
import type { VerifyReport } from "../../src/verify/report.ts";
import { BenchKafka, type RunTopics } from "./kafka.ts";
import { describeMachine, type Machine } from "./machine.ts";
import { childEnv, deferCleanup, installCleanupHandlers, ROOT } from "./proc.ts";
import { createPgDatabase, findKafka, flushRedisDb, prepareRedisDb } from "./services.ts";
import { round } from "./stats.ts";
import type { BenchContext } from "./types.ts";

// ----------------------------------------------------------------------------- flags

export interface FlagSpec {
  kind: "duration" | "number" | "int" | "boolean" | "string";
  /** Durations in seconds. */
  default: number | boolean | string;
  help: string;
  /** Smallest accepted value (inclusive); durations in seconds. */
  min?: number;
  /** The value must be above 0. */
  positive?: boolean;
  max?: number;
}

export type FlagValues<T extends Record<string, FlagSpec>> = {
  [K in keyof T]: T[K]["kind"] extends "boolean" ? boolean : T[K]["kind"] extends "string" ? string : number;
};

export class UsageError extends Error {}

function describeKind(s: FlagSpec): string {
  const sign = s.positive ? "positive " : "";
  if (s.kind === "duration") return `a ${sign}duration with a unit (90s, 2m, 1.5m)`;
  if (s.kind === "int") return `a ${sign}whole number`;
  return `a ${sign}number`;
}

/** --name value / --name=value / --flag / --no-flag; every error names the flag. */
export function parseFlags<T extends Record<string, FlagSpec>>(
  argv: readonly string[],
  specs: T,
): FlagValues<T> {
  const out: Record<string, number | boolean | string> = {};
  for (const [k, s] of Object.entries(specs)) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--(no-)?([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (!m)
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (flags start with --; see --help)`);
    const [, no, name, inline] = m;
    const spec = specs[name!];
    if (!spec) throw new UsageError(`--${name}: unknown flag (see --help)`);
    if (spec.kind === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      out[name!] = !no;
      continue;
    }
    if (no) throw new UsageError(`--no-${name}: only on/off flags can be negated`);
    const raw = inline ?? argv[++i];
    if (raw === undefined || (inline === undefined && raw.startsWith("--"))) {
      throw new UsageError(`--${name} needs a value: ${describeKind(spec)}`);
    }
    if (spec.kind === "string") {
      out[name!] = raw;
      continue;
    }
    let v: number;
    if (spec.kind === "duration") {
      const ms = parseDuration(raw);
      if (ms === undefined) {
        const hint = /^\d+(\.\d+)?$/.test(raw.trim()) ? ` (write ${raw.trim()}s for seconds)` : "";
        throw new UsageError(`--${name}: expected ${describeKind(spec)}, got ${JSON.stringify(raw)}${hint}`);
      }
      v = ms / 1000;
    } else {
      v = raw.trim() === "" ? Number.NaN : Number(raw);
      if (!Number.isFinite(v) || (spec.kind === "int" && !Number.isInteger(v))) {
        throw new UsageError(`--${name}: expected ${describeKind(spec)}, got ${JSON.stringify(raw)}`);
      }
    }
    if (spec.positive && !(v > 0)) {
      throw new UsageError(`--${name}: must be greater than 0, got ${JSON.stringify(raw)}`);
    }
    const show = (x: number) => (spec.kind === "duration" ? formatDuration(x * 1000) : String(x));
    if (spec.min !== undefined && v < spec.min)
      throw new UsageError(`--${name}: must be at least ${show(spec.min)}, got ${JSON.stringify(raw)}`);
    if (spec.max !== undefined && v > spec.max)
      throw new UsageError(`--${name}: must be at most ${show(spec.max)}, got ${JSON.stringify(raw)}`);
    out[name!] = v;
  }
  return out as FlagValues<T>;
}

/** Flags every long-run script takes; `rateFlag` is the flag the population follows. */
export function commonFlags(kind: string, redisDb: number, rateFlag: string) {
  return {
    accounts: {
      kind: "int",
      default: 0,
      min: 0,
      help: `collector population; 0 = max(100,000, 50 × ${rateFlag}): normal traffic stays under the rules' thresholds`,
    },
    "drain-timeout": {
      kind: "duration",
      default: 600,
      positive: true,
      help: "longest wait for lag 0 after the collector stops",
    },
    "redis-db": {
      kind: "int",
      default: redisDb,
      min: 0,
      max: 15,
      help: "Redis database of the run (emptied before and after)",
    },
    save: {
      kind: "boolean",
      default: true,
      help: `write bench/results/${kind}-<date>.json/.svg (--no-save: print only)`,
    },
    replot: { kind: "string", default: "", help: "redraw the .svg of an earlier run's .json; runs nothing" },
  } as const satisfies Record<string, FlagSpec>;
}

/**
 * The flags of a long-run script, or the exit code when it only printed --help or redrew a
 * plot (--replot <json>; the script's FLAGS must declare `replot` as a string flag).
 */
export function cli<T extends Record<string, FlagSpec>>(
  scriptUrl: string,
  specs: T,
  draw: (file: unknown) => string,
): FlagValues<T> | number {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText(scriptUrl, specs));
    return 0;
  }
  const f = parseFlags(argv, specs);
  const replotPath = (f as Record<string, unknown>).replot;
  if (typeof replotPath === "string" && replotPath !== "") return replot(replotPath, draw);
  return f;
}

/**
 * Accounts for a collector at `rate` tx/s: the generator keeps every account 20 s apart only
 * up to about accounts / 50 tx/s (docs/collector.md); beyond it normal traffic trips the
 * velocity rules and the alert figures stop meaning fraud.
 */
export function cleanPopulation(rate: number): number {
  return Math.max(100_000, 50 * rate);
}

/** The script's leading doc comment, then its flags with their defaults. */
export function helpText(scriptUrl: string, specs: Record<string, FlagSpec>): string {
  const doc = readFileSync(new URL(scriptUrl), "utf8");
  const head =
    /\/\*\*([\s\S]*?)\*\//
      .exec(doc)?.[1]
      ?.replace(/^ \* ?/gm, "")
      .trim() ?? "";
  const rows = Object.entries(specs).map(([k, s]) => {
    const name =
      s.kind === "boolean" ? `--${k} / --no-${k}` : s.kind === "string" ? `--${k} <file>` : `--${k}`;
    const d =
      s.kind === "boolean" || s.kind === "string"
        ? ""
        : ` (default ${s.kind === "duration" ? formatDuration((s.default as number) * 1000) : s.default})`;
    return `  ${name.padEnd(30)} ${s.help}${d}`;
  });
  return `${head}\n\nFlags:\n${rows.join("\n")}\n`;
}

// ----------------------------------------------------------------------------- the run's services

export interface LongRun {
  kind: string;
  runId: string;
  startedAt: Date;
  ctx: BenchContext;
  kafka: BenchKafka;
  topics: RunTopics;
  group: string;
  /** The run's Redis database URL (dedup claims and alerts). */
  redisUrl: string;
  redisDb: number;
  /** The run's PostgreSQL database (the warehouse). */
  warehouse: string;
  /** One PII key for every replica of the run, as a Kubernetes Secret would give them. */
  piiKey: string;
  machine: Machine;
  close(opts?: { keepLogs?: boolean }): Promise<void>;
}

export async function openLongRun(kind: string, redisDb: number): Promise<LongRun> {
  installCleanupHandlers();
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const runDir = mkdtempSync(join(os.tmpdir(), `paystream-${kind}-${runId}-`));
  const removeDir = deferCleanup(async () => rmSync(runDir, { recursive: true, force: true }));
  const brokers = (process.env.BENCH_KAFKA ?? "127.0.0.1:9092").split(",");
  const redisBase = process.env.BENCH_REDIS ?? "redis://127.0.0.1:6379";
  const postgresUrl = process.env.BENCH_POSTGRES ?? "postgres://paystream@127.0.0.1:5432/paystream";
  const fix = "(start the services: bash scripts/services.sh up)";
  await checkKafka({ brokers, clientId: `paystream-${kind}-probe` }).catch((err: Error) => {
    throw new Error(`Kafka at ${brokers.join(",")}: ${err.message} ${fix}`);
  });
  const redis = await prepareRedisDb(redisBase, redisDb).catch((err: Error) => {
    throw new Error(`Redis: ${err.message} ${fix}`);
  });
  // Left over by a run that was killed: the counts of this run must start from an empty database.
  await flushRedisDb(redis.url);
  const machine = await describeMachine(redisBase, postgresUrl);
  const kafka = new BenchKafka(brokers, runId);
  const base = `paystream-bench-${runId}-${kind}`;
  const group = kafka.group(`${base}-proc`);
  let topics: RunTopics;
  let pg: Awaited<ReturnType<typeof createPgDatabase>>;
  try {
    topics = await kafka.createRunTopics(base);
    pg = await createPgDatabase(postgresUrl, `bench_${runId}_${kind}`);
  } catch (err) {
    // Half made: what exists goes now, not only on Ctrl-C.
    await kafka.close().catch(() => {});
    removeDir();
    rmSync(runDir, { recursive: true, force: true });
    throw err;
  }
  const ctx: BenchContext = {
    quick: false,
    profile: false,
    runId,
    runDir,
    services: { brokers, redisUrl: redis.url, postgresUrl, kafkaPid: findKafka().pid, redisPid: redis.pid },
    log: (m) => process.stdout.write(`  ${m}\n`),
  };
  return {
    kind,
    runId,
    startedAt: new Date(),
    ctx,
    kafka,
    topics,
    group,
    redisUrl: redis.url,
    redisDb,
    warehouse: pg.url,
    piiKey: randomBytes(32).toString("hex"),
    machine,
    async close(opts = {}) {
      await kafka.close().catch(() => {});
      await pg.drop().catch(() => {});
      await flushRedisDb(redis.url).catch(() => {});
      removeDir();
      if (opts.keepLogs) process.stdout.write(`logs kept in ${runDir}\n`);
      else rmSync(runDir, { recursive: true, force: true });
    },
  };
}

/** One line per fact, for the console and the JSON's readers. */
export function describeMachineLines(m: Machine): string[] {
  return [
    `host ${m.hostname}: ${m.cpuModel}, ${m.cores} logical CPUs, ${m.ramGiB} GiB RAM, ${m.os} (kernel ${m.kernel})`,
    `Node ${m.node}, Kafka ${m.kafka}, Redis ${m.redis}, PostgreSQL ${m.postgres}`,
    `git ${m.git.commit} (code ${m.git.codeHash})${m.git.dirty.length ? ` + uncommitted changes in ${m.git.dirty.join(", ")}` : ""}; load average at start ${m.loadAverageAtStart.join(" / ")}`,
  ];
}

/** Polls the group's lag until it is 0 (everything processed and committed) or timeoutS passes. */
export async function waitForDrain(
  run: LongRun,
  timeoutS: number,
): Promise<{ lag: number; seconds: number }> {
  const t0 = performance.now();
  for (;;) {
    const lag = await run.kafka.lag(run.group, run.topics.transactions);
    const seconds = (performance.now() - t0) / 1000;
    if (lag === 0 || seconds > timeoutS) return { lag, seconds };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * The end of a run, once the collector has stopped: waits for lag 0 (every record processed
 * and committed), calls afterDrain (which stops the replicas gracefully), then runs verify.
 * Both are printed.
 */
export async function drainAndVerify(
  run: LongRun,
  timeoutS: number,
  afterDrain: () => Promise<unknown>,
): Promise<{ drain: { lag: number; seconds: number }; verify: VerifyResult }> {
  const drain = await waitForDrain(run, timeoutS);
  await afterDrain();
  process.stdout.write(
    drain.lag === 0
      ? `  drained in ${drain.seconds.toFixed(0)} s\n`
      : `  lag still ${drain.lag.toLocaleString("en-US")} after ${drain.seconds.toFixed(0)} s: verify will report what is in flight\n`,
  );
  process.stdout.write(`\npaystream verify:\n`);
  const verify = await runVerify(run);
  process.stdout.write(`${verify.table.replace(/^/gm, "  ")}\n\n`);
  return { drain, verify };
}

// ----------------------------------------------------------------------------- verify

export interface VerifyResult {
  exitCode: number | null;
  clean: boolean;
  verdict: string;
  durationMs?: number;
  summary?: VerifyReport["summary"];
  checks?: VerifyReport["rows"];
  table: string;
}

/** `paystream verify` on the run's topics, Redis database and warehouse, as a child process (--json). */
export async function runVerify(run: LongRun): Promise<VerifyResult> {
  const args = [
    join(ROOT, "src/cli/main.ts"),
    "verify",
    "--json",
    "--kafka",
    run.ctx.services.brokers.join(","),
    "--topic",
    run.topics.transactions,
    "--labels-topic",
    run.topics.labels,
    "--dlq-topic",
    run.topics.dlq,
    "--alerts-topic",
    run.topics.alerts,
    "--redis",
    run.redisUrl,
    "--warehouse",
    run.warehouse,
    "--group",
    run.group,
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: childEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    for (const line of d.split("\n")) if (line.trim()) process.stdout.write(`  ${line}\n`);
  });
  const exitCode = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const j = JSON.parse(stdout) as {
      clean: boolean;
      exitCode: 0 | 1;
      verdict: string;
      durationMs: number;
      summary: VerifyReport["summary"];
      checks: VerifyReport["rows"];
      examples: VerifyReport["examples"];
    };
    const report: VerifyReport = {
      clean: j.clean,
      exitCode: j.exitCode,
      verdict: j.verdict,
      rows: j.checks,
      summary: j.summary,
      examples: j.examples,
    };
    return {
      exitCode,
      clean: j.clean,
      verdict: j.verdict,
      durationMs: j.durationMs,
      summary: j.summary,
      checks: j.checks,
      table: renderTable(report),
    };
  } catch {
    // No JSON: verify could not reach a verdict (exit 2); its stderr says why.
    const why = stderr.trim().split("\n").at(-1) ?? "";
    return {
      exitCode,
      clean: false,
      verdict: `could not verify (exit ${exitCode}): ${why}`,
      table: stderr.trim(),
    };
  }
}

// ----------------------------------------------------------------------------- results

/** --replot: the .svg beside an earlier run's .json, redrawn with today's plotter. */
export function replot(jsonPath: string, draw: (file: unknown) => string): number {
  let file: unknown;
  try {
    file = JSON.parse(readFileSync(jsonPath, "utf8"));
  } catch (err) {
    throw new UsageError(`--replot: cannot read ${jsonPath}: ${(err as Error).message}`);
  }
  const svg = jsonPath.replace(/\.json$/, "") + ".svg";
  writeFileSync(svg, draw(file));
  process.stdout.write(`wrote ${svg}\n`);
  return 0;
}

/** The fields every results file starts with: what ran, when, where, with which flags. */
export function resultsHeader<F>(run: LongRun, flags: F) {
  return {
    schema: 1,
    kind: run.kind,
    startedAt: run.startedAt.toISOString(),
    durationS: round((Date.now() - run.startedAt.getTime()) / 1000, 1),
    machine: run.machine,
    flags,
  };
}

/** bench/results/<kind>-<YYYY-MM-DD-HHMM>.json and .svg (UTC, the run's start), and says so. */
export function writeResults(run: LongRun, json: unknown, svg: string): { json: string; svg: string } {
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const iso = run.startedAt.toISOString();
  const stamp = `${iso.slice(0, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}`;
  const paths = { json: join(dir, `${run.kind}-${stamp}.json`), svg: join(dir, `${run.kind}-${stamp}.svg`) };
  writeFileSync(paths.json, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(paths.svg, svg);
  process.stdout.write(`\nwrote ${paths.json}\n  and ${paths.svg}\n`);
  return paths;
}

/** A Markdown table (pastes into the docs as it is). */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? "").padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Runs main, prints a usage error as one line (exit 2) and anything else with its stack (exit 1). */
export async function runMain(name: string, main: () => Promise<number>): Promise<never> {
  let code = 1;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      code = 2;
    } else {
      process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
  return new Promise<never>(() => process.stdout.write("", () => process.exit(code)));
}

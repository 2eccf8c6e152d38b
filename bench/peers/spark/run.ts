/**
 * `npm run bench:spark`: paystream's processor side by side with the deployment guide's own
 * engine, a PySpark Structured Streaming job (bench/peers/spark/job.py), on the same box in
 * one run. See bench/peers/spark/README.md.
 *
 *   1. drain: the collector pre-fills a fresh 24-partition topic with --records records
 *      over 1M accounts (as the processor-throughput benchmark does); one `paystream
 *      processor` (PostgreSQL warehouse, Redis) drains it, then the Spark job drains the
 *      same topic. For each: records/s (wall), the engine's CPU per record, and whole-box
 *      CPU per record (every process: broker, Redis, PostgreSQL, the engine, the kernel).
 *   2. live: for each engine in turn, a fresh topic, the engine consuming it live and the
 *      collector at --live-rate tx/s for --live-seconds (same seed both times). Alert
 *      latency = the alert record's Kafka append time minus its triggering transaction's
 *      (both topics use LogAppendTime), for alerts whose transaction came after the warm-up.
 *
 *   npm run bench:spark                      full run (~11 min on 2 cores)
 *   npm run bench:spark -- --records 200000 --live-seconds 40 --no-save   a smoke run
 *   npm run bench:spark -- --help
 *
 * Heavy: wrap it in `flock /tmp/paystream-heavy.lock` on a shared machine. Services as for
 * `npm run bench` (BENCH_KAFKA, BENCH_REDIS, BENCH_REDIS_DB, BENCH_POSTGRES); Java 17+ and
 * python3 for Spark (setup.sh installs pyspark and the Kafka connector on first use).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from "@platformatic/kafka";
import { checkKafka, createAdmin, createConsumer } from "../../../src/adapters/kafka/client.ts";
import { BenchKafka, type RunTopics } from "../../lib/kafka.ts";
import { describeMachine, type Machine } from "../../lib/machine.ts";
import { type ProcessorProc, startCollector, startProcessor } from "../../lib/pipeline.ts";
import {
  busyShare,
  deferCleanup,
  exitWithMain,
  installCleanupHandlers,
  machineCpu,
  ROOT,
  stopChild,
} from "../../lib/proc.ts";
import { createPgDatabase, findKafka, flushRedisDb, prepareRedisDb } from "../../lib/services.ts";
import { fmt, round, sleep } from "../../lib/stats.ts";
import type { BenchContext } from "../../lib/types.ts";
import { BoxSampler, type CpuWindow, type Groups } from "./cpu.ts";
import { SparkJob, type SparkSettings, sparkInstall } from "./spark.ts";

// ----------------------------------------------------------------------------- arguments

interface Flags {
  records: number;
  liveRate: number;
  liveSeconds: number;
  warmupSeconds: number;
  liveAccounts: number;
  scenarioRate: number;
  seed: number;
  sparkMemory: string;
  sparkShufflePartitions: number;
  sparkMaxOffsets: number;
  sparkTriggerDrain: string;
  sparkTriggerLive: string;
  sparkDistinctRules: boolean;
  only: Set<string>;
  engines: ("paystream" | "spark")[];
  save: boolean;
}

const USAGE = `usage: npm run bench:spark -- [flags]
  --records N               pre-filled records for the drain (default 1000000)
  --live-rate N             collector rate in the live phase, tx/s (default 2000)
  --live-seconds N          collector run time in the live phase (default 80)
  --warmup-seconds N        live alerts of the first N seconds are not measured (default 20)
  --live-accounts N         accounts in the live traffic (default 100000)
  --scenario-rate X         fraud incidents per type, fraction of accounts per hour (default 0.05)
  --seed N                  traffic seed of the live phase, the same for both engines (default 9009)
  --spark-memory SIZE       spark.driver.memory: the whole local-mode heap (default 4g)
  --spark-shuffle-partitions N  spark.sql.shuffle.partitions (default 2: one per core)
  --spark-max-offsets N     maxOffsetsPerTrigger (default 250000)
  --spark-trigger-drain T   processing-time trigger while draining (default "0 seconds")
  --spark-trigger-live T    processing-time trigger in the live phase (default "0 seconds")
  --spark-distinct-rules    also merchant_spread and distinct countries in Spark (collect_set)
  --only drain|live         one phase only
  --engine paystream|spark  one engine only
  --no-save                 print only, write no JSON`;

function parseFlags(argv: string[]): Flags | undefined {
  const f: Flags = {
    records: 1_000_000,
    liveRate: 2000,
    liveSeconds: 80,
    warmupSeconds: 20,
    liveAccounts: 100_000,
    scenarioRate: 0.05,
    seed: 9009,
    sparkMemory: "4g",
    sparkShufflePartitions: 2,
    sparkMaxOffsets: 250_000,
    sparkTriggerDrain: "0 seconds",
    sparkTriggerLive: "0 seconds",
    sparkDistinctRules: false,
    only: new Set(["drain", "live"]),
    engines: ["paystream", "spark"],
    save: true,
  };
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => argv[++i];
    if (a === "--help" || a === "-h") return undefined;
    else if (a === "--records") f.records = num(a, v());
    else if (a === "--live-rate") f.liveRate = num(a, v());
    else if (a === "--live-seconds") f.liveSeconds = num(a, v());
    else if (a === "--warmup-seconds") f.warmupSeconds = num(a, v());
    else if (a === "--live-accounts") f.liveAccounts = num(a, v());
    else if (a === "--scenario-rate") f.scenarioRate = num(a, v());
    else if (a === "--seed") f.seed = num(a, v());
    else if (a === "--spark-memory") f.sparkMemory = String(v());
    else if (a === "--spark-shuffle-partitions") f.sparkShufflePartitions = num(a, v());
    else if (a === "--spark-max-offsets") f.sparkMaxOffsets = num(a, v());
    else if (a === "--spark-trigger-drain") f.sparkTriggerDrain = String(v());
    else if (a === "--spark-trigger-live") f.sparkTriggerLive = String(v());
    else if (a === "--spark-distinct-rules") f.sparkDistinctRules = true;
    else if (a === "--only") f.only = new Set([String(v())]);
    else if (a === "--engine") {
      const e = String(v());
      if (e !== "paystream" && e !== "spark") throw new Error("--engine is paystream or spark");
      f.engines = [e];
    } else if (a === "--no-save") f.save = false;
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (f.warmupSeconds >= f.liveSeconds) throw new Error("--warmup-seconds must be below --live-seconds");
  return f;
}

// ----------------------------------------------------------------------------- Kafka helpers

/** Admin calls time out now and then while the broker is busy (5 s, 2 retries): try again. */
async function retry<T>(what: string, fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      const e = err as Error & { errors?: Error[] };
      process.stdout.write(`  ${what} failed (${e.errors?.[0]?.message ?? e.message}); again in 2 s\n`);
      await sleep(2000);
    }
  }
}

/** Broker-side timestamps: a record's timestamp is then its append time, whoever produced it. */
async function setAppendTime(brokers: string[], topics: string[]): Promise<void> {
  const admin = createAdmin({ brokers, clientId: "paystream-bench-spark" });
  try {
    await admin.incrementalAlterConfigs({
      resources: topics.map((t) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: t,
        configs: [
          {
            name: "message.timestamp.type",
            configOperation: IncrementalAlterConfigOperationTypes.SET,
            value: "LogAppendTime",
          },
        ],
      })),
    });
  } finally {
    await admin.close().catch(() => {});
  }
}

interface Rec {
  partition: number;
  offset: bigint;
  timestamp: number;
  value: Buffer;
}

/** Reads a topic from the start until `expected` records were seen (or the timeout). */
async function readTopic(
  kafka: BenchKafka,
  topic: string,
  expected: number,
  onRecord: (r: Rec) => void,
  timeoutMs = 120_000,
): Promise<number> {
  if (expected === 0) return 0;
  const consumer = createConsumer(kafka.conn, kafka.group(`${topic}-reader`), { maxBytes: 32 << 20 });
  const stream = await consumer.consume({ topics: [topic], mode: "earliest" });
  const timer = setTimeout(() => void stream.close(), timeoutMs);
  let n = 0;
  try {
    for await (const m of stream) {
      onRecord({ partition: m.partition, offset: m.offset, timestamp: Number(m.timestamp), value: m.value });
      if (++n >= expected) break;
    }
  } finally {
    clearTimeout(timer);
    await stream.close().catch(() => {});
    await consumer.close(true).catch(() => {});
  }
  return n;
}

// ----------------------------------------------------------------------------- results

interface CpuFigures {
  engineCores: number;
  engineUsPerRecord: number;
  /** Every process on the machine and the kernel (other people's work included: see backgroundBusy). */
  boxUsPerRecord: number;
  /** Engine + broker + Redis + PostgreSQL: the pipeline's processes only. */
  pipelineUsPerRecord: number;
  brokerCores: number;
  redisCores: number;
  postgresCores: number;
  otherCores: number;
  machineBusy: number;
}

function cpuFigures(w: CpuWindow, records: number): CpuFigures {
  const per = (s: number) => round((s / records) * 1e6, 1);
  const cores = (s: number) => round(s / w.elapsed, 2);
  const pipeline = w.cpu.engine + w.cpu.broker + w.cpu.redis + w.cpu.postgres;
  return {
    engineCores: cores(w.cpu.engine),
    engineUsPerRecord: per(w.cpu.engine),
    boxUsPerRecord: per(w.machine),
    pipelineUsPerRecord: per(pipeline),
    brokerCores: cores(w.cpu.broker),
    redisCores: cores(w.cpu.redis),
    postgresCores: cores(w.cpu.postgres),
    otherCores: cores(w.cpu.other),
    machineBusy: round(w.machineBusy, 3),
  };
}

interface DrainResult {
  engine: string;
  records: number;
  seconds: number;
  recordsPerS: number;
  /** Seconds from launch to the first record processed (JVM, session, query planning for Spark). */
  startupS: number;
  cpu: CpuFigures;
  rowsWritten: number;
  alertRecords: number;
  backgroundBusy: number;
  details?: unknown;
}

interface LatencyStats {
  alerts: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

interface LiveResult {
  engine: string;
  rate: number;
  produced: number;
  processedPerS: number;
  alertRecords: number;
  /** First alert per (account, rule), trigger appended after the warm-up: what the latency is over. */
  latency: LatencyStats;
  byRule: Record<string, number>;
  cpu: CpuFigures;
  backgroundBusy: number;
  details?: unknown;
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function backgroundBusy(): Promise<number> {
  const a = machineCpu();
  await sleep(1000);
  return round(busyShare(a, machineCpu()), 2);
}

// ----------------------------------------------------------------------------- phases

interface Env {
  flags: Flags;
  ctx: BenchContext;
  kafka: BenchKafka;
  sampler: BoxSampler;
  groups: Groups;
  install: { python: string; jars: string[] };
  settings: (live: boolean) => SparkSettings;
}

async function prefill(env: Env, topics: RunTopics): Promise<number> {
  const c = await startCollector(env.ctx, "collector-prefill", topics, [
    "--rate",
    "1000000",
    "--max-rate",
    "1000000",
    "--count",
    String(env.flags.records),
    "--accounts",
    "1000000",
  ]);
  const t0 = Date.now();
  const { code } = await c.child.exited;
  if (code !== 0) throw new Error(`pre-fill collector exited with ${code}`);
  const n = await env.kafka.recordCount(topics.transactions);
  env.ctx.log(
    `pre-filled ${n.toLocaleString("en-US")} records over 1M accounts in ${round((Date.now() - t0) / 1000, 1)} s`,
  );
  return n;
}

async function drainProcessor(env: Env, topics: RunTopics, total: number): Promise<DrainResult> {
  const { ctx, kafka } = env;
  await flushRedisDb(ctx.services.redisUrl);
  const db = await createPgDatabase(ctx.services.postgresUrl, `bench_${ctx.runId}_spark_peer_drain`);
  const busy = await backgroundBusy();
  const launched = Date.now();
  let p: ProcessorProc | undefined;
  try {
    const group = kafka.group(`paystream-bench-${ctx.runId}-spark-peer-drain`);
    p = await startProcessor(ctx, "processor-drain", { topics, group, warehouse: db.url });
    let start: { t: number; records: number } | undefined;
    let status = await p.status();
    let last = -1;
    let lastChange = Date.now();
    for (;;) {
      const t0 = Date.now();
      status = await p.status();
      const t = (t0 + Date.now()) / 2;
      const r = status.totals.records;
      if (start === undefined && r > 0) start = { t, records: r };
      if (r !== last) {
        last = r;
        lastChange = Date.now();
      }
      if (r >= total) {
        const s = start!;
        const records = total - s.records;
        const w = env.sampler.window(s.t, t, { ...env.groups, engine: p.child.pid });
        const seconds = (t - s.t) / 1000;
        const alerts = await kafka.recordCount(topics.alerts);
        return {
          engine: "paystream",
          records,
          seconds: round(seconds, 2),
          recordsPerS: Math.round(records / seconds),
          startupS: round((s.t - launched) / 1000, 1),
          cpu: cpuFigures(w, records),
          rowsWritten: status.totals.ok,
          alertRecords: alerts,
          backgroundBusy: busy,
          details: { totals: status.totals, recordsAtFirstPoll: s.records },
        };
      }
      if (p.child.done) throw new Error(`processor exited after ${r} of ${total} records`);
      if (Date.now() - lastChange > 60_000) throw new Error(`processor: no progress for 60 s at ${r}`);
      await sleep(200);
    }
  } finally {
    await p?.stop();
    await db.drop().catch(() => {});
  }
}

function sparkBatches(job: SparkJob) {
  return job.progress.map((p) => ({
    query: p.query,
    batch: p.batch,
    rows: p.rows,
    ms: p.ms,
    addBatchMs: p.durations.addBatch,
    state: p.state.map((s) => ({ op: s.op, updated: s.updated, removed: s.removed, memBytes: s.memBytes })),
  }));
}

/** Rows the rows query emitted: the dedup operator's new keys per batch. */
function sparkRows(job: SparkJob): number {
  let n = 0;
  for (const p of job.progress) {
    if (p.query !== "rows") continue;
    for (const s of p.state) if (s.op.startsWith("dedupe")) n += s.updated;
  }
  return n;
}

async function drainSpark(env: Env, topics: RunTopics, total: number): Promise<DrainResult> {
  const { ctx, kafka } = env;
  const alertsTopic = await retry("creating the Spark alerts topic", () =>
    kafka.createTopic(`paystream-bench-${ctx.runId}-spark-drain-spark-alerts`, 6),
  );
  const busy = await backgroundBusy();
  const launched = Date.now();
  const job = new SparkJob(env.install, {
    name: "spark-drain",
    runDir: ctx.runDir,
    bootstrap: ctx.services.brokers.join(","),
    topic: topics.transactions,
    alertsTopic,
    startingOffsets: "earliest",
    settings: env.settings(false),
  });
  try {
    await job.waitStarted();
    const t1 = await job.waitConsumed(topics.transactions, total, ["rows", "alerts"], 1_200_000);
    const t0 = Math.min(...job.progress.filter((p) => p.batch === 0).map((p) => p.start));
    const w = env.sampler.window(t0, t1, { ...env.groups, engine: job.pid });
    const seconds = (t1 - t0) / 1000;
    const alerts = await kafka.recordCount(alertsTopic);
    return {
      engine: `Spark ${job.sparkVersion}`,
      records: total,
      seconds: round(seconds, 2),
      recordsPerS: Math.round(total / seconds),
      startupS: round((t0 - launched) / 1000, 1),
      cpu: cpuFigures(w, total),
      rowsWritten: sparkRows(job),
      alertRecords: alerts,
      backgroundBusy: busy,
      details: { settings: env.settings(false), batches: sparkBatches(job) },
    };
  } finally {
    await job.stop();
  }
}

/** Alert records of one engine: latency of the first alert per (account, rule) after the warm-up. */
async function alertLatency(
  env: Env,
  topics: RunTopics,
  measureFrom: number,
  pointer: (alert: Record<string, unknown>) => { txId?: string; pos?: string },
): Promise<{
  latency: LatencyStats;
  byRule: Record<string, number>;
  alertRecords: number;
  unresolved: number;
}> {
  const { kafka } = env;
  const nAlerts = await kafka.recordCount(topics.alerts);
  const firsts = new Map<string, { ts: number; txId?: string; pos?: string; rule: string }>();
  await readTopic(kafka, topics.alerts, nAlerts, (r) => {
    let a: Record<string, unknown>;
    try {
      a = JSON.parse(r.value.toString()) as Record<string, unknown>;
    } catch {
      return;
    }
    const rule = String(a.rule_type ?? a.rule_id);
    const key = `${String(a.account_id)}|${rule}`;
    const prev = firsts.get(key);
    if (prev && prev.ts <= r.timestamp) return;
    firsts.set(key, { ts: r.timestamp, rule, ...pointer(a) });
  });
  const ids = new Set<string>();
  const positions = new Set<string>();
  for (const f of firsts.values()) {
    if (f.txId) ids.add(f.txId);
    if (f.pos) positions.add(f.pos);
  }
  const txTs = new Map<string, number>();
  const nTx = await kafka.recordCount(topics.transactions);
  const ID = /"transaction_id":"([^"]+)"/;
  await readTopic(kafka, topics.transactions, nTx, (r) => {
    const pos = `${r.partition}:${r.offset}`;
    if (positions.has(pos)) txTs.set(pos, r.timestamp);
    if (ids.size) {
      const id = ID.exec(r.value.toString("latin1", 0, 120))?.[1];
      if (id !== undefined && ids.has(id) && !txTs.has(id)) txTs.set(id, r.timestamp);
    }
  });
  const lat: number[] = [];
  const byRule: Record<string, number> = {};
  let unresolved = 0;
  for (const f of firsts.values()) {
    const t = txTs.get(f.pos ?? f.txId ?? "");
    if (t === undefined) {
      unresolved++;
      continue;
    }
    if (t < measureFrom) continue;
    lat.push(f.ts - t);
    byRule[f.rule] = (byRule[f.rule] ?? 0) + 1;
  }
  lat.sort((a, b) => a - b);
  return {
    latency: {
      alerts: lat.length,
      p50Ms: quantile(lat, 0.5),
      p90Ms: quantile(lat, 0.9),
      p99Ms: quantile(lat, 0.99),
      maxMs: lat.length ? lat[lat.length - 1]! : null,
    },
    byRule,
    alertRecords: nAlerts,
    unresolved,
  };
}

async function live(env: Env, engine: "paystream" | "spark"): Promise<LiveResult> {
  const { ctx, kafka, flags } = env;
  const topics = await retry("creating topics", () =>
    kafka.createRunTopics(`paystream-bench-${ctx.runId}-spark-live-${engine}`),
  );
  await retry("setting LogAppendTime", () =>
    setAppendTime(ctx.services.brokers, [topics.transactions, topics.alerts]),
  );
  let stopEngine = async () => {};
  let enginePid: number;
  let waitCaughtUp: (produced: number) => Promise<void> = async () => {};
  let job: SparkJob | undefined;
  let processedAtEnd = () => Promise.resolve(0);
  const busy = await backgroundBusy();
  if (engine === "paystream") {
    await flushRedisDb(ctx.services.redisUrl);
    const db = await createPgDatabase(ctx.services.postgresUrl, `bench_${ctx.runId}_spark_peer_live`);
    const p = await startProcessor(ctx, "processor-live", {
      topics,
      group: kafka.group(`paystream-bench-${ctx.runId}-spark-peer-live`),
      warehouse: db.url,
    });
    enginePid = p.child.pid;
    stopEngine = async () => {
      await p.stop();
      await db.drop().catch(() => {});
    };
    processedAtEnd = async () => (await p.status()).totals.records;
    waitCaughtUp = async (produced) => {
      const deadline = Date.now() + 120_000;
      while ((await p.status()).totals.records < produced && Date.now() < deadline) await sleep(200);
    };
  } else {
    const j = new SparkJob(env.install, {
      name: "spark-live",
      runDir: ctx.runDir,
      bootstrap: ctx.services.brokers.join(","),
      topic: topics.transactions,
      alertsTopic: topics.alerts,
      startingOffsets: "earliest",
      settings: env.settings(true),
    });
    job = j;
    enginePid = j.pid;
    stopEngine = () => j.stop();
    await j.waitStarted();
    // Both queries planned and idle on the empty topic before traffic starts.
    await sleep(5000);
    processedAtEnd = async () => Math.min(...Object.values(j.consumed(topics.transactions)));
    waitCaughtUp = async (produced) => {
      await j.waitConsumed(topics.transactions, produced, ["rows", "alerts"], 300_000);
    };
  }
  try {
    const c = await startCollector(ctx, `collector-live-${engine}`, topics, [
      "--rate",
      String(flags.liveRate),
      "--max-rate",
      String(flags.liveRate),
      "--accounts",
      String(flags.liveAccounts),
      "--scenario-rate",
      String(flags.scenarioRate),
      "--seed",
      String(flags.seed),
      "--duration",
      `${flags.liveSeconds}s`,
    ]);
    const tStart = Date.now();
    const timer = setTimeout(() => void stopChild(c.child), (flags.liveSeconds + 30) * 1000);
    await c.child.exited;
    clearTimeout(timer);
    const tEnd = Date.now();
    const produced = await kafka.recordCount(topics.transactions);
    const processed = await processedAtEnd();
    const w = env.sampler.window(tStart + flags.warmupSeconds * 1000, tEnd, {
      ...env.groups,
      engine: enginePid,
    });
    await waitCaughtUp(produced);
    // The last batch's alerts are written before its progress is reported; a margin all the same.
    await sleep(3000);
    await stopEngine();
    stopEngine = async () => {};
    const measuredSeconds = flags.liveSeconds - flags.warmupSeconds;
    const a = await alertLatency(env, topics, tStart + flags.warmupSeconds * 1000, (al) =>
      engine === "spark"
        ? { pos: `${String(al.source_partition)}:${String(al.source_offset)}` }
        : { txId: String(al.transaction_id) },
    );
    return {
      engine: engine === "spark" ? `Spark ${job?.sparkVersion}` : "paystream",
      rate: flags.liveRate,
      produced,
      processedPerS: Math.round(processed / ((tEnd - tStart) / 1000)),
      alertRecords: a.alertRecords,
      latency: a.latency,
      byRule: a.byRule,
      // Per record produced in the measured window (an engine that falls behind processed fewer).
      cpu: cpuFigures(w, Math.max(1, flags.liveRate * measuredSeconds)),
      backgroundBusy: busy,
      details: {
        unresolvedAlerts: a.unresolved,
        ...(job ? { settings: env.settings(true), batches: sparkBatches(job) } : {}),
      },
    };
  } finally {
    await stopEngine();
  }
}

// ----------------------------------------------------------------------------- output

function table(rows: string[][], header: string[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function report(drain: DrainResult[], lives: LiveResult[]): string {
  const rows: string[][] = [];
  const pair = (label: string, f: (d: DrainResult) => string) => {
    if (drain.length) rows.push([label, ...drain.map(f)]);
  };
  const livePair = (label: string, f: (d: LiveResult) => string) => {
    if (lives.length) rows.push([label, ...lives.map(f)]);
  };
  const header = ["figure", ...(drain.length ? drain : lives).map((d) => d.engine)];
  pair("drain: records", (d) => d.records.toLocaleString("en-US"));
  pair("drain: records/s (wall)", (d) => fmt(d.recordsPerS));
  pair("drain: engine CPU µs/record", (d) => `${fmt(d.cpu.engineUsPerRecord)} (${d.cpu.engineCores} cores)`);
  pair(
    "drain: whole-box CPU µs/record",
    (d) => `${fmt(d.cpu.boxUsPerRecord)} (${Math.round(d.cpu.machineBusy * 100)}% busy)`,
  );
  pair("drain: pipeline CPU µs/record (engine+broker+Redis+PG)", (d) => fmt(d.cpu.pipelineUsPerRecord));
  pair("drain: broker / Redis / PG / other cores", (d) =>
    [d.cpu.brokerCores, d.cpu.redisCores, d.cpu.postgresCores, d.cpu.otherCores].join(" / "),
  );
  pair(
    "drain: rows written / alert records",
    (d) => `${d.rowsWritten.toLocaleString("en-US")} / ${d.alertRecords}`,
  );
  pair("drain: launch → first record processed", (d) => `${d.startupS} s`);
  pair("drain: machine busy before (other load)", (d) => `${Math.round(d.backgroundBusy * 100)}%`);
  livePair("live: rate / processed per s", (l) => `${l.rate} / ${l.processedPerS}`);
  livePair("live: alert p50 / p99 (ms)", (l) => `${fmt(l.latency.p50Ms)} / ${fmt(l.latency.p99Ms)}`);
  livePair("live: alert p90 / max (ms)", (l) => `${fmt(l.latency.p90Ms)} / ${fmt(l.latency.maxMs)}`);
  livePair("live: alerts measured (first per account+rule)", (l) => String(l.latency.alerts));
  livePair("live: alert records written", (l) => String(l.alertRecords));
  livePair(
    "live: engine cores / box busy",
    (l) => `${l.cpu.engineCores} / ${Math.round(l.cpu.machineBusy * 100)}%`,
  );
  return table(rows, header);
}

function describe(m: Machine): string {
  return [
    `host ${m.hostname}: ${m.cpuModel}, ${m.cores} logical CPUs, ${m.ramGiB} GiB RAM, ${m.os} (kernel ${m.kernel})`,
    `Node ${m.node}, Kafka ${m.kafka}, Redis ${m.redis}, PostgreSQL ${m.postgres}`,
    `git ${m.git.commit} (code ${m.git.codeHash})${m.git.dirty.length ? ` + uncommitted changes in ${m.git.dirty.join(", ")}` : ""}; load average at start ${m.loadAverageAtStart.join(" / ")}`,
  ].join("\n");
}

// ----------------------------------------------------------------------------- main

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (!flags) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  installCleanupHandlers();
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const runDir = mkdtempSync(join(os.tmpdir(), `paystream-bench-spark-${runId}-`));
  deferCleanup(async () => rmSync(runDir, { recursive: true, force: true }));
  const brokers = (process.env.BENCH_KAFKA ?? "127.0.0.1:9092").split(",");
  const redisBase = process.env.BENCH_REDIS ?? "redis://127.0.0.1:6379";
  const postgresUrl = process.env.BENCH_POSTGRES ?? "postgres://paystream@127.0.0.1:5432/paystream";
  await checkKafka({ brokers, clientId: "paystream-bench-probe" });
  const redis = await prepareRedisDb(redisBase, Number(process.env.BENCH_REDIS_DB ?? 13));
  const machine = await describeMachine(redisBase, postgresUrl);
  process.stdout.write(`${describe(machine)}\n`);
  process.stdout.write("Spark: checking the install (bench/peers/spark/setup.sh)\n");
  const install = sparkInstall(false);
  const started = new Date();
  const kafkaPid = findKafka().pid;
  const ctx: BenchContext = {
    quick: false,
    profile: false,
    runId,
    runDir,
    services: { brokers, redisUrl: redis.url, postgresUrl, kafkaPid, redisPid: redis.pid },
    log: (m) => process.stdout.write(`  ${m}\n`),
  };
  const sampler = new BoxSampler();
  sampler.start();
  const kafka = new BenchKafka(brokers, runId);
  const env: Env = {
    flags,
    ctx,
    kafka,
    sampler,
    groups: { broker: kafkaPid, redis: redis.pid },
    install,
    settings: (isLive) => ({
      driverMemory: flags.sparkMemory,
      shufflePartitions: flags.sparkShufflePartitions,
      maxOffsetsPerTrigger: flags.sparkMaxOffsets,
      trigger: isLive ? flags.sparkTriggerLive : flags.sparkTriggerDrain,
      distinctRules: flags.sparkDistinctRules,
    }),
  };
  const drains: DrainResult[] = [];
  const lives: LiveResult[] = [];
  let failure: string | undefined;
  try {
    if (flags.only.has("drain")) {
      process.stdout.write(`\n== drain: ${flags.records.toLocaleString("en-US")} records, 24 partitions\n`);
      const topics = await retry("creating topics", () =>
        kafka.createRunTopics(`paystream-bench-${runId}-spark-drain`),
      );
      await retry("setting LogAppendTime", () =>
        setAppendTime(brokers, [topics.transactions, topics.alerts]),
      );
      const total = await prefill(env, topics);
      for (const engine of flags.engines) {
        const d =
          engine === "paystream"
            ? await drainProcessor(env, topics, total)
            : await drainSpark(env, topics, total);
        drains.push(d);
        ctx.log(
          `${d.engine}: ${fmt(d.recordsPerS)} rec/s over ${d.seconds} s, ${d.cpu.engineUsPerRecord} µs engine CPU/record, box ${d.cpu.boxUsPerRecord} µs/record`,
        );
      }
      await kafka.deleteRunTopics(topics);
    }
    if (flags.only.has("live")) {
      for (const engine of flags.engines) {
        process.stdout.write(
          `\n== live: ${engine}, collector at ${flags.liveRate} tx/s for ${flags.liveSeconds} s (first ${flags.warmupSeconds} s not measured)\n`,
        );
        const l = await live(env, engine);
        lives.push(l);
        const b = (l.details as { batches?: { query: string; rows: number; ms: number }[] }).batches;
        if (b) {
          for (const q of ["rows", "alerts"]) {
            const xs = b.filter((x) => x.query === q && x.rows > 0);
            const med = (f: (x: { rows: number; ms: number }) => number) =>
              xs.length ? xs.map(f).sort((x, y) => x - y)[xs.length >> 1] : 0;
            ctx.log(
              `  Spark ${q} query: ${xs.length} batches with data, median ${med((x) => x.ms)} ms for ${med((x) => x.rows)} records`,
            );
          }
        }
        ctx.log(
          `${l.engine}: alert p50 ${fmt(l.latency.p50Ms)} ms, p99 ${fmt(l.latency.p99Ms)} ms over ${l.latency.alerts} alerts (${JSON.stringify(l.byRule)}); processed ${l.processedPerS}/s; engine ${l.cpu.engineCores} cores`,
        );
      }
    }
  } catch (err) {
    failure = (err as Error).stack ?? String(err);
    process.stdout.write(`FAILED: ${failure}\nlogs kept in ${runDir}\n`);
  } finally {
    sampler.stop();
    await kafka.close();
    await flushRedisDb(redis.url).catch(() => {});
  }

  const run = {
    startedAt: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    flags: { ...flags, only: [...flags.only] },
    machine,
    spark: { install: { python: install.python, jars: install.jars.map((j) => j.split("/").pop()) } },
    loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    drain: drains,
    live: lives,
    ...(failure ? { error: failure } : {}),
  };
  process.stdout.write(
    `\n${describe(machine)}\nload average at end ${run.loadAverageAtEnd.join(" / ")}; ${run.durationS} s\n\n`,
  );
  if (drains.length || lives.length) process.stdout.write(`${report(drains, lives)}\n`);
  if (flags.save && (drains.length || lives.length)) {
    const dir = join(ROOT, "bench/results");
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `spark-peer-${run.startedAt.slice(0, 10)}.json`);
    let file: { schema: 1; runs: unknown[] } = { schema: 1, runs: [] };
    if (existsSync(path)) {
      try {
        const prev = JSON.parse(readFileSync(path, "utf8")) as typeof file;
        if (Array.isArray(prev.runs)) file = prev;
      } catch {
        // unreadable: replaced
      }
    }
    file.runs.push(run);
    writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path}\n`);
  }
  if (failure) return 1;
  rmSync(runDir, { recursive: true, force: true });
  return 0;
}

exitWithMain("bench:spark", main);

/**
 * processor-throughput: one `paystream processor` (the CLI, every feature on: validation and
 * DLQ, Redis dedup, windows and the six default rules, masking, alerts to Redis and Kafka,
 * rows to the warehouse, commits after durability) draining a pre-filled 24-partition topic.
 *
 * The topic is filled once by the collector at full speed (1M accounts, so that replaying a
 * burst does not turn every account into a velocity alert) and read twice by fresh consumer
 * groups: once with DuckDB, once with PostgreSQL (a database created for the run and dropped).
 * The bench's Redis database is emptied in between so both start without dedup claims.
 * With --profile, both are run once more under `node --cpu-prof`; the profiles are kept in
 * bench/results/tmp/ (git-ignored) and their top self-time functions go to the JSON.
 */
import { join } from "node:path";
import type { Sample } from "../src/lib/prom-text.ts";
import { BenchKafka } from "./lib/kafka.ts";
import { type ProcessorProc, startCollector, startProcessor } from "./lib/pipeline.ts";
import { CpuMeter, diffThreads, threadCpu } from "./lib/proc.ts";
import { keepProfile, type ProfileSummary } from "./lib/profile.ts";
import { batchStats, sinkInFlight } from "./lib/prom.ts";
import { createPgDatabase, flushRedisDb } from "./lib/services.ts";
import { round, sleep } from "./lib/stats.ts";
import type { Bench, BenchContext, BenchOutput, Metric } from "./lib/types.ts";

const STALL_MS = 60_000;

interface Point {
  t: number;
  records: number;
}

/** Seconds at which `records` first reached `target`, interpolated between polls. */
function timeAt(series: Point[], target: number): number | undefined {
  for (let i = 1; i < series.length; i++) {
    const a = series[i - 1]!;
    const b = series[i]!;
    if (b.records >= target) {
      if (b.records === a.records) return b.t;
      return a.t + ((target - a.records) / (b.records - a.records)) * (b.t - a.t);
    }
  }
  return undefined;
}

interface RunResult {
  warehouse: string;
  records: number;
  seconds: number;
  txPerS: number;
  steadyTxPerS: number;
  committedS: number | undefined;
  cpuUsPerRecord: number;
  processorCores: number;
  mainThreadShare: number;
  threads: Record<string, number>;
  brokerCores: number;
  redisCores: number;
  machineBusy: number;
  /** Sum of write latencies over the drain time, per sink: the mean number of writes in flight. */
  sinkBusyShare: Record<string, number>;
  batchRecordsMean: number;
  batchSecondsMean: number;
  totals: Record<string, number>;
  profile?: ProfileSummary;
}

async function drain(
  ctx: BenchContext,
  kafka: BenchKafka,
  p: ProcessorProc,
  topic: string,
  group: string,
  total: number,
  label: string,
): Promise<Omit<RunResult, "warehouse" | "profile"> & { windowUs: [number, number] }> {
  const series: Point[] = [];
  let start:
    | { t: number; records: number; hr: bigint; prom: Sample[]; threads: Map<string, number> }
    | undefined;
  let meter: CpuMeter | undefined;
  let lastProgress = performance.now();
  let last = -1;
  let status = await p.status();
  // Poll fast: the start and end of consumption are read from these samples.
  for (;;) {
    const t0 = performance.now();
    status = await p.status();
    const t = (t0 + performance.now()) / 2000;
    const records = status.totals.records;
    series.push({ t, records });
    if (start === undefined && records > 0) {
      meter = new CpuMeter({
        processor: p.child.pid,
        broker: ctx.services.kafkaPid,
        redis: ctx.services.redisPid,
      });
      start = {
        t,
        records,
        hr: process.hrtime.bigint(),
        prom: await p.metrics(),
        threads: threadCpu(p.child.pid),
      };
    }
    if (records !== last) {
      last = records;
      lastProgress = performance.now();
    }
    if (records >= total) break;
    if (p.child.done) throw new Error(`${label}: processor exited after ${records} of ${total} records`);
    if (performance.now() - lastProgress > STALL_MS) {
      throw new Error(`${label}: no progress for ${STALL_MS / 1000} s at ${records} of ${total} records`);
    }
    await sleep(200);
  }
  const end = { t: series.at(-1)!.t, hr: process.hrtime.bigint() };
  const use = meter!.read();
  const threadsEnd = threadCpu(p.child.pid);
  const promEnd = await p.metrics();
  // Durable and committed: the group's lag reaches zero once the last batch's writes are acknowledged.
  let committedS: number | undefined;
  for (let i = 0; i < 150; i++) {
    if ((await kafka.lag(group, topic)) === 0) {
      committedS = performance.now() / 1000 - start!.t;
      break;
    }
    await sleep(200);
  }
  const s = start!;
  const seconds = end.t - s.t;
  const processed = total - s.records;
  const cpu = use.cpu.processor ?? Number.NaN;
  const threads = diffThreads(s.threads, threadsEnd);
  const t10 = timeAt(series, total * 0.1);
  const t90 = timeAt(series, total * 0.9);
  const batches = batchStats(s.prom, promEnd);
  return {
    records: processed,
    seconds: round(seconds, 2),
    txPerS: Math.round(processed / seconds),
    steadyTxPerS:
      t10 !== undefined && t90 !== undefined && t90 > t10
        ? Math.round((total * 0.8) / (t90 - t10))
        : Number.NaN,
    committedS: committedS === undefined ? undefined : round(committedS, 2),
    cpuUsPerRecord: round((cpu / processed) * 1e6, 2),
    processorCores: round(cpu / use.elapsed, 2),
    mainThreadShare: round((threads.main ?? 0) / use.elapsed, 2),
    threads,
    brokerCores: round((use.cpu.broker ?? Number.NaN) / use.elapsed, 2),
    redisCores: round((use.cpu.redis ?? Number.NaN) / use.elapsed, 2),
    machineBusy: round(use.machineBusy, 3),
    sinkBusyShare: sinkInFlight(s.prom, promEnd, seconds),
    batchRecordsMean: batches.meanRecords,
    batchSecondsMean: batches.meanMs,
    totals: status.totals,
    windowUs: [Number(s.hr / 1000n), Number(end.hr / 1000n)],
  };
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  // 1M, not more: at the ~20-30K tx/s measured here each drain then takes 35-50 s, and two of
  // them plus the pre-fill must fit the 10-minute budget. BENCH_PROCESSOR_RECORDS overrides.
  const total = Number(process.env.BENCH_PROCESSOR_RECORDS ?? (ctx.quick ? 200_000 : 1_000_000));
  const kafka = new BenchKafka(ctx.services.brokers, ctx.runId);
  const metrics: Metric[] = [];
  const details: Record<string, unknown> = {};
  const base = `paystream-bench-${ctx.runId}-pt`;
  const topics = await kafka.createRunTopics(base);
  const topic = topics.transactions;
  try {
    // ------------------------------------------------------------------ pre-fill
    const c = await startCollector(ctx, "collector-prefill", topics, [
      "--rate",
      "1000000",
      "--max-rate",
      "1000000",
      "--count",
      String(total),
      "--accounts",
      "1000000",
    ]);
    const first = await c.sample();
    let lastSample = first;
    while (!c.child.done) {
      await sleep(250);
      try {
        lastSample = await c.sample();
      } catch {
        break; // the collector closed its API on the way out
      }
    }
    const { code } = await c.stop();
    if (code !== 0) throw new Error(`pre-fill collector exited with ${code}`);
    const inTopic = await kafka.recordCount(topic);
    const prefillRate = (lastSample.produced - first.produced) / (lastSample.t - first.t);
    details.prefill = { records: inTopic, collectorTxPerS: Math.round(prefillRate), accounts: 1_000_000 };
    ctx.log(
      `pre-filled ${inTopic.toLocaleString("en-US")} records (collector at full speed, 1M accounts: ${Math.round(prefillRate).toLocaleString("en-US")} tx/s)`,
    );
    metrics.push({
      key: "prefill.tx_per_s",
      label: "collector at full speed while pre-filling (1M accounts)",
      value: Math.round(prefillRate),
      unit: "tx/s",
    });

    // ------------------------------------------------------------------ drains
    const variants: { tag: string; label: string; profile: boolean }[] = [
      { tag: "duckdb", label: "DuckDB", profile: false },
      { tag: "postgres", label: "PostgreSQL", profile: false },
      ...(ctx.profile
        ? [
            { tag: "duckdb-profile", label: "DuckDB under --cpu-prof", profile: true },
            { tag: "postgres-profile", label: "PostgreSQL under --cpu-prof", profile: true },
          ]
        : []),
    ];
    for (const v of variants) {
      await flushRedisDb(ctx.services.redisUrl);
      const group = kafka.group(`${base}-${v.tag}`);
      const profDir = join(ctx.runDir, `prof-${v.tag}`);
      let warehouse: string;
      let drop = async () => {};
      if (v.tag.startsWith("postgres")) {
        const db = await createPgDatabase(
          ctx.services.postgresUrl,
          `bench_${ctx.runId}_${v.tag}`.replace(/-/g, "_"),
        );
        warehouse = db.url;
        drop = db.drop;
      } else {
        warehouse = `duckdb:${join(ctx.runDir, `${v.tag}.duckdb`)}`;
      }
      try {
        const p = await startProcessor(ctx, `processor-${v.tag}`, {
          topics,
          group,
          warehouse,
          ...(v.profile ? { nodeFlags: ["--cpu-prof", "--cpu-prof-dir", profDir] } : {}),
        });
        let r: Awaited<ReturnType<typeof drain>>;
        try {
          r = await drain(ctx, kafka, p, topic, group, inTopic, v.label);
        } finally {
          await p.stop();
        }
        const profile = v.profile
          ? keepProfile(ctx, profDir, `processor-${v.tag}-${ctx.runId}`, r.windowUs)
          : undefined;
        const { windowUs: _w, ...rest } = r;
        const result: RunResult = { warehouse: v.label, ...rest, ...(profile ? { profile } : {}) };
        details[v.tag] = result;
        const sinks = Object.entries(result.sinkBusyShare)
          .map(([k, x]) => `${k} ${x}`)
          .join(", ");
        ctx.log(
          `${v.label}: ${result.txPerS.toLocaleString("en-US")} tx/s over ${result.seconds} s ` +
            `(10–90%: ${result.steadyTxPerS.toLocaleString("en-US")} tx/s), ${result.cpuUsPerRecord} µs CPU/record, ` +
            `processor ${result.processorCores} cores (JS thread ${result.mainThreadShare}), broker ${result.brokerCores}, ` +
            `redis ${result.redisCores}, machine ${Math.round(100 * result.machineBusy)}% busy; ` +
            `writes in flight ${sinks}; batches ~${result.batchRecordsMean} records, ${result.batchSecondsMean} ms; ` +
            `alerts ${result.totals.alerts}, duplicates ${result.totals.duplicates}, invalid ${result.totals.invalid}`,
        );
        if (v.profile) {
          metrics.push({
            key: `${v.tag}.tx_per_s`,
            label: `processor under --cpu-prof, ${v.label.replace(" under --cpu-prof", "")}`,
            value: result.txPerS,
            unit: "tx/s",
            note: "profiler overhead included",
          });
          continue;
        }
        metrics.push({
          key: `${v.tag}.tx_per_s`,
          label: `processor, every feature on, ${v.label} warehouse`,
          value: result.txPerS,
          unit: "tx/s",
          goal: { op: ">=", target: 100_000, text: "≥ 100,000 tx/s" },
          note: `10–90%: ${result.steadyTxPerS.toLocaleString("en-US")} tx/s; ${inTopic.toLocaleString("en-US")} records`,
        });
        metrics.push({
          key: `${v.tag}.cpu_us_per_record`,
          label: `processor CPU per record, ${v.label}`,
          value: result.cpuUsPerRecord,
          unit: "µs",
          note: `${result.processorCores} cores, JS thread ${Math.round(100 * result.mainThreadShare)}% busy; machine ${Math.round(100 * result.machineBusy)}% busy`,
        });
        const whSink = result.sinkBusyShare[v.tag];
        metrics.push({
          key: `${v.tag}.warehouse_in_flight`,
          label: `mean ${v.label} writes in flight (the processor waits at 4)`,
          value: whSink ?? null,
          unit: "",
          note: `sum of write seconds / drain seconds, per sink: ${sinks}`,
        });
      } finally {
        await drop().catch(() => {});
      }
    }
  } finally {
    await kafka.close();
  }
  return { metrics, details };
}

export const processorThroughput: Bench = {
  name: "processor-throughput",
  description: "one processor draining a pre-filled 24-partition topic, DuckDB then PostgreSQL",
  estimateS: [130, 25],
  run,
};

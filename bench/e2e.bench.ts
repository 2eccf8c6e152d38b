/**
 * e2e-latency: collector and processor live together, at 1K, 20K and 50K tx/s. After a
 * warm-up at each rate, the processor's paystream_e2e_latency_seconds histogram is scraped at
 * the start and end of the measurement window; the difference holds exactly the window's
 * observations, and p50/p99 are interpolated within its buckets (as histogram_quantile does).
 *
 * The clock starts at the record's Kafka timestamp, which the producer sets when it sends
 * (CreateTime), so the figure includes the collector's produce round trip.
 *
 * Traffic: 1M accounts (so 50K tx/s stays within the generator's 20 s per-account rest gap,
 * instead of every account turning into a velocity alert), scenario rate 0.05 so that a
 * 30 s window holds a few thousand alerts: enough for a p99. DuckDB warehouse.
 */
import { join } from "node:path";
import {
  bucketQuantile,
  type Histogram,
  histogram,
  histogramDelta,
  type Sample,
  sampleSum,
  shareAtMost,
} from "../src/lib/prom-text.ts";
import { BenchKafka } from "./lib/kafka.ts";
import { type CollectorProc, type ProcessorProc, startCollector, startProcessor } from "./lib/pipeline.ts";
import { CpuMeter, diffThreads, threadCpu } from "./lib/proc.ts";
import { batchStats, sinkInFlight } from "./lib/prom.ts";
import { flushRedisDb } from "./lib/services.ts";
import { round, sleep } from "./lib/stats.ts";
import type { Bench, BenchContext, BenchOutput, Metric } from "./lib/types.ts";

const RATES = [1000, 20_000, 50_000];
const GOAL_MS = 25;

function ms(h: Histogram, q: number): { value: number | null; capped: boolean } {
  const r = bucketQuantile(h.buckets, q);
  return r ? { value: round(r.value * 1000, 2), capped: r.capped } : { value: null, capped: false };
}

function e2e(before: Sample[], after: Sample[], output: string): Histogram {
  const name = "paystream_e2e_latency_seconds";
  return histogramDelta(histogram(before, name, { output }), histogram(after, name, { output }));
}

async function step(
  ctx: BenchContext,
  kafka: BenchKafka,
  c: CollectorProc,
  p: ProcessorProc,
  topic: string,
  group: string,
  rate: number,
) {
  const warmupS = ctx.quick ? 4 : 10;
  const measureS = ctx.quick ? 8 : 30;
  await c.setRate(rate);
  await sleep(warmupS * 1000);
  const meter = new CpuMeter({
    collector: c.child.pid,
    processor: p.child.pid,
    broker: ctx.services.kafkaPid,
    redis: ctx.services.redisPid,
  });
  const th0 = threadCpu(p.child.pid);
  const [m0, s0, c0] = await Promise.all([p.metrics(), p.status(), c.sample()]);
  await sleep(measureS * 1000);
  const [m1, s1, c1] = await Promise.all([p.metrics(), p.status(), c.sample()]);
  const use = meter.read();
  const threads = diffThreads(th0, threadCpu(p.child.pid));
  const lag = await kafka.lag(group, topic);
  const alerts = e2e(m0, m1, "alert_store");
  const rows = e2e(m0, m1, "warehouse");
  const cores = (k: string) => round((use.cpu[k] ?? Number.NaN) / use.elapsed, 2);
  return {
    rate,
    seconds: round(c1.t - c0.t, 1),
    producedPerS: Math.round((c1.produced - c0.produced) / (c1.t - c0.t)),
    processedPerS: Math.round((s1.totals.records - s0.totals.records) / (c1.t - c0.t)),
    alerts: alerts.count,
    alertP50Ms: ms(alerts, 0.5),
    alertP99Ms: ms(alerts, 0.99),
    alertWithin25ms: shareAtMost(alerts.buckets, GOAL_MS / 1000),
    rows: rows.count,
    warehouseP50Ms: ms(rows, 0.5),
    warehouseP99Ms: ms(rows, 0.99),
    lagRecordsAtEnd: lag,
    lagGauge: sampleSum(m1, "paystream_consumer_lag_records"),
    cores: {
      collector: cores("collector"),
      processor: cores("processor"),
      broker: cores("broker"),
      redis: cores("redis"),
    },
    processorJsThread: round((threads.main ?? 0) / use.elapsed, 2),
    processorThreads: threads,
    batches: { ...batchStats(m0, m1), perS: round(batchStats(m0, m1).batches / use.elapsed, 1) },
    writesInFlight: sinkInFlight(m0, m1, use.elapsed),
    machineBusy: round(use.machineBusy, 3),
  };
}

function fmtMs(x: { value: number | null; capped: boolean }): string {
  if (x.value === null) return "n/a";
  return `${x.capped ? ">" : ""}${x.value} ms`;
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const kafka = new BenchKafka(ctx.services.brokers, ctx.runId);
  const base = `paystream-bench-${ctx.runId}-e2e`;
  const topics = await kafka.createRunTopics(base);
  const topic = topics.transactions;
  const group = kafka.group(`${base}-proc`);
  const metrics: Metric[] = [];
  const steps: Awaited<ReturnType<typeof step>>[] = [];
  await flushRedisDb(ctx.services.redisUrl);
  let p: ProcessorProc | undefined;
  let c: CollectorProc | undefined;
  try {
    // Processor first, so the collector's first records meet a consumer already in the group.
    p = await startProcessor(ctx, "processor-e2e", {
      topics,
      group,
      warehouse: `duckdb:${join(ctx.runDir, "e2e.duckdb")}`,
      // For experiments (e.g. BENCH_E2E_PROCESSOR_FLAGS="--max-batch 1000"); recorded in the JSON.
      flags: (process.env.BENCH_E2E_PROCESSOR_FLAGS ?? "").split(/\s+/).filter(Boolean),
    });
    c = await startCollector(ctx, "collector-e2e", topics, [
      "--rate",
      "0",
      "--max-rate",
      "1000000",
      "--accounts",
      "1000000",
      "--scenario-rate",
      "0.05",
    ]);
    for (const rate of RATES) {
      const r = await step(ctx, kafka, c, p, topic, group, rate);
      steps.push(r);
      const within = r.alertWithin25ms === undefined ? "n/a" : `${(100 * r.alertWithin25ms).toFixed(1)}%`;
      ctx.log(
        `${rate.toLocaleString("en-US")} tx/s (produced ${r.producedPerS.toLocaleString("en-US")}/s, processed ${r.processedPerS.toLocaleString("en-US")}/s): ` +
          `alert p50 ${fmtMs(r.alertP50Ms)} p99 ${fmtMs(r.alertP99Ms)} (${r.alerts} alerts, ${within} ≤ ${GOAL_MS} ms); ` +
          `warehouse p50 ${fmtMs(r.warehouseP50Ms)} p99 ${fmtMs(r.warehouseP99Ms)}; lag ${r.lagRecordsAtEnd.toLocaleString("en-US")} records; ` +
          `cores: collector ${r.cores.collector}, processor ${r.cores.processor} (JS thread ${r.processorJsThread}), broker ${r.cores.broker}, redis ${r.cores.redis}; machine ${Math.round(100 * r.machineBusy)}% busy; ` +
          `${r.batches.perS} batches/s of ~${r.batches.meanRecords} records, ${r.batches.meanMs} ms each; ` +
          `processor threads (CPU s): ${JSON.stringify(r.processorThreads)}`,
      );
      const k = rate >= 1000 ? `${rate / 1000}k` : String(rate);
      const isGoal = rate === 20_000;
      const capNote = (x: { capped: boolean }) => (x.capped ? " (above the 10 s top bucket)" : "");
      metrics.push(
        {
          key: `${k}.alert_p50_ms`,
          label: `Kafka append → alert in Redis, p50, at ${rate.toLocaleString("en-US")} tx/s`,
          value: r.alertP50Ms.value,
          unit: "ms",
          note: `${r.alerts} alerts${capNote(r.alertP50Ms)}`,
        },
        {
          key: `${k}.alert_p99_ms`,
          label: `Kafka append → alert in Redis, p99, at ${rate.toLocaleString("en-US")} tx/s`,
          value: r.alertP99Ms.value,
          unit: "ms",
          ...(isGoal ? { goal: { op: "<=" as const, target: GOAL_MS, text: "p99 < 25 ms" } } : {}),
          note: `${within} of alerts ≤ 25 ms (exact: 25 ms is a bucket bound)${capNote(r.alertP99Ms)}`,
        },
        {
          key: `${k}.warehouse_p50_ms`,
          label: `Kafka append → row durable in DuckDB, p50, at ${rate.toLocaleString("en-US")} tx/s`,
          value: r.warehouseP50Ms.value,
          unit: "ms",
          note: `${r.rows.toLocaleString("en-US")} rows${capNote(r.warehouseP50Ms)}`,
        },
        {
          key: `${k}.warehouse_p99_ms`,
          label: `Kafka append → row durable in DuckDB, p99, at ${rate.toLocaleString("en-US")} tx/s`,
          value: r.warehouseP99Ms.value,
          unit: "ms",
          ...(r.warehouseP99Ms.capped ? { note: "above the 10 s top bucket" } : {}),
        },
        {
          key: `${k}.lag_records`,
          label: `consumer lag at the end of the ${rate.toLocaleString("en-US")} tx/s step`,
          value: r.lagRecordsAtEnd,
          unit: "records",
          note: `processed ${r.processedPerS.toLocaleString("en-US")}/s of ${r.producedPerS.toLocaleString("en-US")}/s produced; machine ${Math.round(100 * r.machineBusy)}% busy`,
        },
      );
    }
  } finally {
    // Collector first: the processor then drains what is in flight and commits.
    await c?.stop();
    await p?.stop();
    await kafka.close();
  }
  return { metrics, details: { processorFlags: process.env.BENCH_E2E_PROCESSOR_FLAGS ?? "", steps } };
}

export const e2eLatency: Bench = {
  name: "e2e-latency",
  description:
    "collector + processor live at 1K / 20K / 50K tx/s: Kafka append → alert in Redis / row in DuckDB",
  estimateS: [130, 42],
  run,
};

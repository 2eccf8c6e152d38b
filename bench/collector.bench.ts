/**
 * The collector as a process: how fast one can produce (collector-throughput) and how
 * exactly it holds a target rate (collector-rate-accuracy). Each run writes to fresh topics
 * of its own (24 partitions, like payments.transactions) that are deleted afterwards.
 */
import { join } from "node:path";
import { sampleSum } from "../src/lib/prom-text.ts";
import { BenchKafka } from "./lib/kafka.ts";
import { startCollector } from "./lib/pipeline.ts";
import { CpuMeter, diffThreads, threadCpu } from "./lib/proc.ts";
import { keepProfile } from "./lib/profile.ts";
import { median, round, sleep } from "./lib/stats.ts";
import type { Bench, BenchContext, BenchOutput, Metric } from "./lib/types.ts";

/** Fresh stand-ins for the payments.* topics (24 partitions for transactions, as the real one). */
function freshTopics(kafka: BenchKafka, ctx: BenchContext, tag: string) {
  return kafka.createRunTopics(`paystream-bench-${ctx.runId}-${tag}`);
}

// ----------------------------------------------------------------------------- throughput

interface Variant {
  tag: string;
  label: string;
  flags: string[];
  profile?: boolean;
}

const VARIANTS: Variant[] = [
  { tag: "default", label: "defaults (batch 2000, no compression)", flags: [] },
  { tag: "batch5000", label: "--batch-size 5000", flags: ["--batch-size", "5000"] },
  { tag: "lz4", label: "--compression lz4", flags: ["--compression", "lz4"] },
];

async function throughput(ctx: BenchContext): Promise<BenchOutput> {
  const warmupS = ctx.quick ? 2 : 3;
  const measureS = ctx.quick ? 8 : 20;
  const variants = [
    ...(ctx.quick ? VARIANTS.slice(0, 1) : VARIANTS),
    ...(ctx.profile
      ? [{ tag: "profile", label: "defaults under --cpu-prof", flags: [], profile: true }]
      : []),
  ];
  const kafka = new BenchKafka(ctx.services.brokers, ctx.runId);
  const metrics: Metric[] = [];
  const details: unknown[] = [];
  try {
    for (const v of variants) {
      const topics = await freshTopics(kafka, ctx, `ct-${v.tag}`);
      // Far above what one process can do: the figure is the ceiling, not the target.
      const profDir = join(ctx.runDir, `prof-collector-${v.tag}`);
      const c = await startCollector(
        ctx,
        `collector-${v.tag}`,
        topics,
        ["--rate", "300000", "--max-rate", "1000000", ...v.flags],
        v.profile ? ["--cpu-prof", "--cpu-prof-dir", profDir] : [],
      );
      let windowUs: [number, number] | undefined;
      try {
        await sleep(warmupS * 1000);
        const meter = new CpuMeter({
          collector: c.child.pid,
          broker: ctx.services.kafkaPid,
          redis: ctx.services.redisPid,
        });
        const th0 = threadCpu(c.child.pid);
        const first = await c.sample();
        const hr0 = process.hrtime.bigint();
        const perSecond: number[] = [];
        let prev = first;
        for (let i = 0; i < measureS; i++) {
          await sleep(1000);
          const s = await c.sample();
          perSecond.push((s.produced - prev.produced) / (s.t - prev.t));
          prev = s;
        }
        windowUs = [Number(hr0 / 1000n), Number(process.hrtime.bigint() / 1000n)];
        const use = meter.read();
        const threads = diffThreads(th0, threadCpu(c.child.pid));
        const prom = await c.metrics();
        const stats = await c.stats();
        const produced = prev.produced - first.produced;
        const seconds = prev.t - first.t;
        const rate = produced / seconds;
        const cpu = use.cpu.collector ?? Number.NaN;
        const r = {
          variant: v.label,
          flags: v.flags,
          seconds: round(seconds, 2),
          produced,
          txPerS: Math.round(rate),
          perSecond: {
            min: Math.round(Math.min(...perSecond)),
            median: Math.round(median(perSecond)),
            max: Math.round(Math.max(...perSecond)),
          },
          actualRateGauge: Math.round(sampleSum(prom, "paystream_collector_actual_rate")),
          collectorCpuS: round(cpu, 2),
          cpuUsPerRecord: round((cpu / produced) * 1e6, 2),
          collectorCores: round(cpu / use.elapsed, 2),
          jsThreadShare: round((threads.main ?? 0) / use.elapsed, 2),
          threads,
          brokerCores: round((use.cpu.broker ?? Number.NaN) / use.elapsed, 2),
          machineBusy: round(use.machineBusy, 3),
          sendErrors: stats.sendErrors,
        };
        if (v.profile) {
          details.push(r);
          metrics.push({
            key: "profile.tx_per_s",
            label: "sustained rate, defaults, under --cpu-prof",
            value: r.txPerS,
            unit: "tx/s",
            note: "profiler overhead included",
          });
        } else {
          details.push(r);
          ctx.log(
            `collector ${v.label}: ${r.txPerS.toLocaleString("en-US")} tx/s (per-second ${r.perSecond.min.toLocaleString("en-US")}–${r.perSecond.max.toLocaleString("en-US")}), ` +
              `${r.cpuUsPerRecord} µs CPU/record, collector ${r.collectorCores} cores (JS thread ${r.jsThreadShare}), broker ${r.brokerCores} cores, machine ${(100 * r.machineBusy).toFixed(0)}% busy`,
          );
          const isDefault = v.tag === "default";
          metrics.push({
            key: `${v.tag}.tx_per_s`,
            label: `sustained rate, ${v.label}`,
            value: r.txPerS,
            unit: "tx/s",
            ...(isDefault ? { goal: { op: ">=" as const, target: 100_000, text: "≥ 100,000 tx/s" } } : {}),
            note: `per-second ${r.perSecond.min.toLocaleString("en-US")}–${r.perSecond.max.toLocaleString("en-US")}`,
          });
          metrics.push({
            key: `${v.tag}.cpu_us_per_record`,
            label: `collector CPU per record, ${v.label}`,
            value: r.cpuUsPerRecord,
            unit: "µs",
            note: `collector ${r.collectorCores} cores (JS thread ${Math.round(100 * r.jsThreadShare)}% busy) + broker ${r.brokerCores}; machine ${(100 * r.machineBusy).toFixed(0)}% busy`,
          });
        }
      } finally {
        await c.stop();
        await kafka.deleteRunTopics(topics);
      }
      if (v.profile && windowUs) {
        const profile = keepProfile(ctx, profDir, `collector-${ctx.runId}`, windowUs);
        if (profile) details.push({ profile });
      }
    }
  } finally {
    await kafka.close();
  }
  return { metrics, details };
}

// ----------------------------------------------------------------------------- rate accuracy

const TARGETS = [100, 1000, 10_000, 50_000];

/**
 * How long after a rate change the acknowledged count follows the new rate. With records
 * acknowledged L after they are sent and the switch taking effect d after the request, the
 * count t seconds after the request is behind an instant switch by (new − old)·(d + L); that
 * deficit over (new − old), taken at several points 1 s and later after the change, is d + L.
 */
async function switchDelayMs(
  c: Awaited<ReturnType<typeof startCollector>>,
  from: number,
  to: number,
  settleS: number,
): Promise<{ delayMs: number; samples: number }> {
  const before = await c.sample();
  await c.setRate(to);
  const estimates: number[] = [];
  const end = before.t + settleS;
  for (;;) {
    await sleep(20);
    const s = await c.sample();
    if (s.t > end) break;
    const dt = s.t - before.t;
    if (dt < 1) continue;
    const deficit = to * dt - (s.produced - before.produced);
    estimates.push((deficit / (to - from)) * 1000);
  }
  return { delayMs: round(median(estimates), 1), samples: estimates.length };
}

async function rateAccuracy(ctx: BenchContext): Promise<BenchOutput> {
  const windowS = 10;
  const windows = ctx.quick ? 1 : 2;
  const settleS = ctx.quick ? 1.2 : 3;
  const kafka = new BenchKafka(ctx.services.brokers, ctx.runId);
  const metrics: Metric[] = [];
  const details: unknown[] = [];
  const topics = await freshTopics(kafka, ctx, "ra");
  try {
    // Starts idle: every step, the first one included, is a rate change through the API.
    const c = await startCollector(ctx, "collector-rate", topics, ["--rate", "0", "--max-rate", "1000000"]);
    try {
      let current = 0;
      for (const target of TARGETS) {
        const sw = await switchDelayMs(c, current, target, settleS);
        current = target;
        const ratios: number[] = [];
        for (let w = 0; w < windows; w++) {
          const a = await c.sample();
          await sleep(windowS * 1000);
          const b = await c.sample();
          ratios.push((b.produced - a.produced) / (b.t - a.t) / target);
        }
        const worst = Math.max(...ratios.map((r) => Math.abs(r - 1)));
        const gauge = sampleSum(await c.metrics(), "paystream_collector_actual_rate");
        details.push({
          target,
          windowS,
          ratios: ratios.map((r) => round(r, 4)),
          switchDelayMs: sw.delayMs,
          actualRateGauge: Math.round(gauge),
        });
        ctx.log(
          `rate ${target.toLocaleString("en-US")} tx/s: actual/target per ${windowS} s window ${ratios.map((r) => r.toFixed(4)).join(", ")}; ` +
            `change took ${sw.delayMs} ms to show`,
        );
        metrics.push({
          key: `r${target}.worst_deviation_pct`,
          label: `worst ${windowS} s window, deviation from ${target.toLocaleString("en-US")} tx/s`,
          value: round(worst * 100, 3),
          unit: "%",
          goal: { op: "<=", target: 2, text: "within ±2%" },
          note: `actual/target ${ratios.map((r) => r.toFixed(4)).join(", ")}`,
        });
        metrics.push({
          key: `r${target}.switch_delay_ms`,
          label: `rate change → visible in acked count, to ${target.toLocaleString("en-US")} tx/s`,
          value: sw.delayMs,
          unit: "ms",
        });
      }
      // A decrease as well: the pacer must stop at once, not drain a backlog.
      const down = await switchDelayMs(c, current, 1000, settleS);
      details.push({ decrease: { from: current, to: 1000, switchDelayMs: down.delayMs } });
      metrics.push({
        key: "down.switch_delay_ms",
        label: `rate change → visible in acked count, ${current.toLocaleString("en-US")} → 1,000 tx/s`,
        value: down.delayMs,
        unit: "ms",
      });
      const stats = await c.stats();
      if (stats.sendErrors) details.push({ sendErrors: stats.sendErrors });
    } finally {
      await c.stop();
    }
  } finally {
    await kafka.close();
  }
  return { metrics, details };
}

export const collectorThroughput: Bench = {
  name: "collector-throughput",
  description: "one collector process far above its ceiling: sustained tx/s and CPU per record",
  estimateS: [85, 14],
  run: throughput,
};

export const collectorRateAccuracy: Bench = {
  name: "collector-rate-accuracy",
  description:
    "targets 100 / 1K / 10K / 50K tx/s set live: actual/target per 10 s window, time to follow a change",
  estimateS: [100, 48],
  run: rateAccuracy,
};

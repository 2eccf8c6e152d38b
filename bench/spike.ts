/**
 * `npm run spike`: the deployment guide's load test (1K → 50K → 1K msgs/s, the HPA scaling on
 * lag), scaled to one 2-core machine. Real Kafka, Redis and PostgreSQL.
 *
 * A collector (fraud scenarios, duplicates, late, out-of-order and malformed records on, as by
 * default) is driven through its control API (POST /config/rate): --base-rate for --warmup,
 * --peak-rate for --spike, --base-rate again for --cooldown. Processor replicas are separate
 * `paystream processor` processes in one consumer group, each with its own metrics port,
 * added and removed by bench/lib/supervisor.ts with KEDA's Kafka-lag formula and the chart's
 * HPA behaviour (lagThreshold and the scale-down stabilization window from
 * deploy/helm/paystream/values.yaml, the rate policies from the ScaledObject template),
 * bounded to --min-replicas..--max-replicas. Scale-down stops a replica with SIGTERM.
 *
 * At the end the collector stops, the replicas drain the lag to 0, and `paystream verify`
 * must pass: nothing lost, nothing doubled, one alert per labelled incident.
 *
 * Every --sample: rate in (collector), rate out (processors), total lag (brokers), replicas,
 * alert p99 (processors' histograms, rolling 30 s). Written to bench/results/spike-<date>.json
 * and .svg; the table gives time to scale up, peak lag, time back to the warm-up's lag after
 * the spike, max replicas, alert p99 per phase and the verify result.
 *
 *   flock /tmp/paystream-heavy.lock npm run spike
 *   npm run spike -- --peak-rate 8000 --spike 90s --no-save
 *
 * Services: BENCH_KAFKA, BENCH_REDIS, BENCH_POSTGRES as for `npm run bench`; Redis database
 * --redis-db (11), never one holding data that is not a benchmark's.
 */
import { fileURLToPath } from "node:url";
import { TopicLayout, Topics } from "../src/contracts/topics.ts";
import {
  cleanPopulation,
  cli,
  commonFlags,
  describeMachineLines,
  drainAndVerify,
  type FlagSpec,
  type FlagValues,
  type LongRun,
  markdownTable,
  openLongRun,
  resultsHeader,
  runMain,
  UsageError,
  type VerifyResult,
  writeResults,
} from "./lib/longrun.ts";
import { type CollectorProc, type ProcessorProc, startCollector, startProcessor } from "./lib/pipeline.ts";
import { commonPanels, meanRate, rowPanel, type SampleRow, Sampler } from "./lib/sampler.ts";
import { fmt, round, sleep } from "./lib/stats.ts";
import {
  CHART_SCALE_DOWN_POLICIES,
  CHART_SCALE_UP_POLICIES,
  HPA_TOLERANCE,
  Hpa,
  readChartAutoscaling,
  type ScaleEvent,
  type ScalerConfig,
  Supervisor,
} from "./lib/supervisor.ts";
import { type Marker, type Panel, renderSvg } from "./lib/svg-plot.ts";

const CHART = readChartAutoscaling(
  fileURLToPath(new URL("../deploy/helm/paystream/values.yaml", import.meta.url)),
);
const PARTITIONS = TopicLayout[Topics.transactions].partitions;
/** Plotted alert p99: alerts arrive a few per second, so a 2 s interval alone holds too few. */
const ROLLING_S = 30;

const FLAGS = {
  "base-rate": { kind: "int", default: 1000, positive: true, help: "tx/s before and after the spike" },
  "peak-rate": { kind: "int", default: 18000, positive: true, help: "tx/s during the spike" },
  warmup: { kind: "duration", default: 60, positive: true, help: "first phase, at --base-rate" },
  spike: { kind: "duration", default: 120, positive: true, help: "second phase, at --peak-rate" },
  cooldown: { kind: "duration", default: 300, positive: true, help: "third phase, at --base-rate again" },
  "lag-threshold": {
    kind: "int",
    default: CHART.lagThreshold,
    positive: true,
    help: "records of lag per replica (KEDA lagThreshold; chart value)",
  },
  "min-replicas": { kind: "int", default: 1, min: 1, help: "fewest processor replicas" },
  "max-replicas": {
    kind: "int",
    default: 4,
    min: 1,
    max: PARTITIONS,
    help: `most replicas (at most the ${PARTITIONS} partitions)`,
  },
  "scale-down-stabilization": {
    kind: "duration",
    default: CHART.scaleDownStabilizationSeconds,
    min: 0,
    help: "HPA scale-down stabilization window (chart value)",
  },
  poll: {
    kind: "duration",
    default: 5,
    positive: true,
    help: "how often the supervisor reads the lag and decides",
  },
  sample: { kind: "duration", default: 2, positive: true, help: "sampling interval of the time series" },
  ...commonFlags("spike", 11, "--peak-rate"),
} satisfies Record<string, FlagSpec>;

interface Phase {
  name: string;
  rate: number;
  startS: number;
  endS: number;
}

interface ReplicaLife {
  index: number;
  startedS: number;
  readyS?: number;
  stoppedS?: number;
  exitCode?: number | null;
}

function phaseOf(phases: Phase[], t: number): Phase | undefined {
  return phases.find((p) => t > p.startS && t <= p.endS);
}

function progress(phases: Phase[], r: SampleRow): string {
  const n = (v: number | null) => (v === null ? "-" : Math.round(v).toLocaleString("en-US"));
  return (
    `[${r.t.toFixed(0).padStart(4)} s] ${(phaseOf(phases, r.t)?.name ?? "").padEnd(8)} in ${n(r.inPerS)}/s  out ${n(r.outPerS)}/s  ` +
    `lag ${n(r.lag)}  replicas ${r.replicas}  alert p99 ${r.alertP99Ms === null ? "-" : `${r.alertP99Ms} ms`}  machine ${Math.round(r.machineBusy * 100)}% busy`
  );
}

async function main(): Promise<number> {
  const f = cli(import.meta.url, FLAGS, (file) => plot(file as SpikeFile));
  if (typeof f === "number") return f;
  if (f["min-replicas"] > f["max-replicas"]) {
    throw new UsageError(
      `--min-replicas (${f["min-replicas"]}) must not exceed --max-replicas (${f["max-replicas"]})`,
    );
  }
  if (f["peak-rate"] <= f["base-rate"]) {
    throw new UsageError(
      `--peak-rate (${f["peak-rate"]}) must be above --base-rate (${f["base-rate"]}): there is no spike otherwise`,
    );
  }
  const accounts = f.accounts || cleanPopulation(f["peak-rate"]);
  const cfg: ScalerConfig = {
    lagThreshold: f["lag-threshold"],
    minReplicas: f["min-replicas"],
    maxReplicas: f["max-replicas"],
    partitions: PARTITIONS,
    scaleUp: { stabilizationWindowSeconds: 0, policies: CHART_SCALE_UP_POLICIES },
    scaleDown: {
      stabilizationWindowSeconds: f["scale-down-stabilization"],
      policies: CHART_SCALE_DOWN_POLICIES,
    },
    tolerance: HPA_TOLERANCE,
  };
  const planned = f.warmup + f.spike + f.cooldown;

  const run = await openLongRun("spike", f["redis-db"]);
  process.stdout.write(`${describeMachineLines(run.machine).join("\n")}\n`);
  process.stdout.write(
    `spike: ${f["base-rate"]} → ${f["peak-rate"]} → ${f["base-rate"]} tx/s for ${f.warmup} / ${f.spike} / ${f.cooldown} s (${(planned / 60).toFixed(1)} min, then drain and verify); ` +
      `replicas ${cfg.minReplicas}–${cfg.maxReplicas} on lag / ${cfg.lagThreshold.toLocaleString("en-US")}, scale-down stabilization ${cfg.scaleDown.stabilizationWindowSeconds} s, poll ${f.poll} s; ${accounts.toLocaleString("en-US")} accounts\n`,
  );

  const lives: ReplicaLife[] = [];
  let collector: CollectorProc | undefined;
  let ok = false;
  const sampler = new Sampler(
    {
      collector: () => collector,
      processors: () => supervisor.live(),
      replicas: () => supervisor.replicas,
      lag: () => run.kafka.lag(run.group, run.topics.transactions),
    },
    {
      intervalS: f.sample,
      rollingS: ROLLING_S,
      rateWindowS: Math.max(f.sample, 6),
      onRow: (r) => {
        // One line every ~10 s is enough to follow the run.
        if (Math.floor(r.t / 10) !== Math.floor((r.t - f.sample) / 10))
          process.stdout.write(`  ${progress(phases, r)}\n`);
      },
    },
  );
  const supervisor: Supervisor<ProcessorProc> = new Supervisor(new Hpa(cfg), {
    lag: () => run.kafka.lag(run.group, run.topics.transactions),
    now: () => sampler.now(),
    log: (m) => process.stdout.write(`  [${sampler.now().toFixed(0).padStart(4)} s] ${m}\n`),
    start: async (index) => {
      const life: ReplicaLife = { index, startedS: round(sampler.now(), 1) };
      lives.push(life);
      const p = await startProcessor(run.ctx, `processor-${index}`, {
        topics: run.topics,
        group: run.group,
        warehouse: run.warehouse,
        flags: ["--pii-key", run.piiKey],
      });
      life.readyS = round(sampler.now(), 1);
      return p;
    },
    stop: async (p) => {
      const life = lives.find((l) => `processor-${l.index}` === p.child.name);
      const { code } = await p.stop();
      if (life) {
        life.stoppedS = round(sampler.now(), 1);
        life.exitCode = code;
      }
    },
  });
  const phases: Phase[] = [];
  try {
    // The sampler's clock is the run's clock: started first, so replica starts are on it.
    sampler.start();
    await supervisor.startInitial();
    collector = await startCollector(run.ctx, "collector", run.topics, [
      "--rate",
      String(f["base-rate"]),
      "--max-rate",
      String(Math.max(100_000, f["peak-rate"])),
      "--accounts",
      String(accounts),
    ]);
    supervisor.run(f.poll);
    for (const [name, rate, seconds] of [
      ["warm-up", f["base-rate"], f.warmup],
      ["spike", f["peak-rate"], f.spike],
      ["cooldown", f["base-rate"], f.cooldown],
    ] as const) {
      await collector.setRate(rate);
      const startS = sampler.now();
      phases.push({ name, rate, startS: round(startS, 2), endS: round(startS + seconds, 2) });
      process.stdout.write(
        `  [${startS.toFixed(0).padStart(4)} s] ${name}: rate ${rate.toLocaleString("en-US")} tx/s for ${seconds} s\n`,
      );
      await sleep(seconds * 1000);
    }
    const stopS = sampler.now();
    await collector.stop();
    await supervisor.halt();
    process.stdout.write(
      `  [${stopS.toFixed(0).padStart(4)} s] collector stopped; ${supervisor.replicas} replica(s) drain the lag\n`,
    );
    const { verify } = await drainAndVerify(run, f["drain-timeout"], async () => {
      phases.push({ name: "drain", rate: 0, startS: round(stopS, 2), endS: round(sampler.now(), 2) });
      await sampler.stop();
      await supervisor.stopAll();
    });

    const result = summarize(f, cfg, accounts, phases, sampler, supervisor, lives, verify);
    const table = resultTable(result);
    process.stdout.write(`${describeMachineLines(run.machine).join("\n")}\n\n${table}\n`);
    const json: SpikeFile & Record<string, unknown> = {
      ...resultsHeader(run, f),
      scaler: cfg,
      accounts,
      result,
      phases,
      replicas: lives,
      scaleEvents: supervisor.events,
      decisions: supervisor.decisions,
      verify,
      samples: sampler.rows,
    };
    if (f.save) writeResults(run, json, plot(json));
    ok = verify.clean;
    return ok ? 0 : 1;
  } finally {
    await sampler.stop();
    await collector?.stop();
    await supervisor.stopAll();
    // Logs of a failed run are kept for the post-mortem.
    await run.close({ keepLogs: !ok });
  }
}

type Flags = FlagValues<typeof FLAGS>;

function summarize(
  f: Flags,
  cfg: ScalerConfig,
  accounts: number,
  phases: Phase[],
  sampler: Sampler,
  supervisor: Supervisor<ProcessorProc>,
  lives: ReplicaLife[],
  verify: VerifyResult,
) {
  const rows = sampler.rows;
  const spike = phases.find((p) => p.name === "spike")!;
  const warm = phases.find((p) => p.name === "warm-up")!;
  const inPhase = (p: Phase) => rows.filter((r) => r.t > p.startS && r.t <= p.endS);
  const firstUp = supervisor.events.find((e) => e.to > e.from && e.t >= spike.startS);
  const firstNewReady = lives.find((l) => l.startedS >= spike.startS && l.readyS !== undefined);
  const maxReplicas = Math.max(...rows.map((r) => r.replicas), ...supervisor.events.map((e) => e.to));
  const reachedMax = supervisor.events.find((e) => e.to === maxReplicas && e.t >= spike.startS);
  let peak = { lag: 0, t: 0 };
  for (const r of rows) if (r.lag !== null && r.lag > peak.lag) peak = { lag: r.lag, t: r.t };
  // Lag is end − committed offsets, so with traffic flowing it is never quite 0: the warm-up's
  // highest lag at the base rate is what "caught up" looks like on this machine.
  const warmLags = inPhase(warm)
    .filter((r) => r.t > warm.startS + Math.min(10, (warm.endS - warm.startS) / 2))
    .flatMap((r) => (r.lag === null ? [] : [r.lag]));
  const baseline = warmLags.length ? Math.max(...warmLags) : 0;
  const after = rows.filter((r) => r.t >= spike.endS && r.lag !== null);
  const backToBaseline = after.find((r) => r.lag! <= baseline);
  const zero = after.find((r) => r.lag === 0);
  // On two shared cores the backlog may be worked off while the spike is still on.
  const underThreshold = rows.find((r) => r.t > peak.t && r.lag !== null && r.lag < cfg.lagThreshold);
  const scaleDown = supervisor.events.find((e) => e.to < e.from && e.t >= spike.startS);
  // A drain that was over before the next sample has no rows of its own.
  const perPhase = phases
    .filter((p) => inPhase(p).length > 0)
    .map((p) => {
      const q99 = sampler.alertQuantile(p.startS, p.endS, 0.99);
      const q50 = sampler.alertQuantile(p.startS, p.endS, 0.5);
      const rs = inPhase(p);
      return {
        phase: p.name,
        rate: p.rate,
        seconds: round(p.endS - p.startS, 1),
        meanInPerS: meanRate(rows, "produced", p.startS, p.endS),
        meanOutPerS: meanRate(rows, "processed", p.startS, p.endS),
        maxLag: rs.reduce((m, r) => Math.max(m, r.lag ?? 0), 0),
        replicas: [Math.min(...rs.map((r) => r.replicas)), Math.max(...rs.map((r) => r.replicas))],
        alerts: q99.count,
        alertP50Ms: q50.ms,
        alertP50Capped: q50.capped,
        alertP99Ms: q99.ms,
        alertP99Capped: q99.capped,
        machineBusy: round(rs.reduce((s, r) => s + r.machineBusy, 0) / Math.max(1, rs.length), 2),
        ourCores: round(rs.reduce((s, r) => s + (r.ourCores ?? 0), 0) / Math.max(1, rs.length), 2),
      };
    });
  return {
    baseRate: f["base-rate"],
    peakRate: f["peak-rate"],
    accounts,
    lagThreshold: cfg.lagThreshold,
    scaleUpS: firstUp ? round(firstUp.t - spike.startS, 1) : null,
    firstNewReplicaReadyS:
      firstNewReady?.readyS !== undefined ? round(firstNewReady.readyS - spike.startS, 1) : null,
    maxReplicas,
    maxReplicasAtS: reachedMax ? round(reachedMax.t - spike.startS, 1) : null,
    peakLag: peak.lag,
    peakLagAtS: round(peak.t - spike.startS, 1),
    baselineLag: baseline,
    backToBaselineS: backToBaseline ? round(backToBaseline.t - spike.endS, 1) : null,
    lagZeroS: zero ? round(zero.t - spike.endS, 1) : null,
    underThresholdS:
      underThreshold && peak.lag >= cfg.lagThreshold ? round(underThreshold.t - spike.startS, 1) : null,
    firstScaleDownS: scaleDown ? round(scaleDown.t - spike.endS, 1) : null,
    scaleEvents: supervisor.events.length,
    phases: perPhase,
    verify: { clean: verify.clean, exitCode: verify.exitCode, verdict: verify.verdict },
  };
}

type Result = ReturnType<typeof summarize>;

function resultTable(r: Result): string {
  const s = (v: number | null, unit = "s") => (v === null ? "not reached" : `${fmt(v)} ${unit}`);
  const p99 = (p: Result["phases"][number]) =>
    p.alertP99Ms === null
      ? `none (0 alerts)`
      : `${p.alertP99Capped ? "> " : ""}${fmt(p.alertP99Ms)} ms (${p.alerts} alerts, p50 ${p.alertP50Capped ? "> " : ""}${fmt(p.alertP50Ms)} ms)`;
  const rows: string[][] = [
    [
      "time to scale up (rate step → replicas increased)",
      s(r.scaleUpS),
      r.scaleUpS === null
        ? `the lag never reached lagThreshold (${fmt(r.lagThreshold)}) × replicas`
        : `first new replica ready ${s(r.firstNewReplicaReadyS)} after the step`,
    ],
    [
      "max replicas",
      String(r.maxReplicas),
      r.maxReplicasAtS === null ? "" : `reached ${fmt(r.maxReplicasAtS)} s after the step`,
    ],
    [
      "peak lag",
      `${fmt(r.peakLag)} records`,
      `${fmt(r.peakLagAtS)} s after the step${r.underThresholdS === null ? "" : `; back under lagThreshold ${fmt(r.underThresholdS)} s after the step`}`,
    ],
    [
      "time back to the warm-up's lag after the spike",
      s(r.backToBaselineS),
      `lag ≤ ${fmt(r.baselineLag)} records (highest in the warm-up at ${fmt(r.baseRate)} tx/s); lag 0: ${s(r.lagZeroS)}`,
    ],
    ["first scale-down after the spike", s(r.firstScaleDownS), "SIGTERM, graceful"],
    ...r.phases.map((p) => [
      `${p.phase}: alert p99`,
      p99(p),
      `in ${p.meanInPerS === null ? "-" : `${fmt(p.meanInPerS)}/s`}, out ${fmt(p.meanOutPerS)}/s, replicas ${p.replicas[0]}–${p.replicas[1]}, machine ${Math.round(p.machineBusy * 100)}% busy (ours ${p.ourCores} cores)`,
    ]),
    ["verify", r.verify.clean ? "PASS" : "FAIL", r.verify.verdict],
  ];
  return markdownTable(["figure", "value", "notes"], rows);
}

/** What plot() reads from the results file (so --replot can redraw an old run). */
interface SpikeFile {
  startedAt: string;
  machine: LongRun["machine"];
  scaler: ScalerConfig;
  result: Result;
  phases: Phase[];
  scaleEvents: ScaleEvent[];
  samples: SampleRow[];
}

function plot(file: SpikeFile): string {
  const { result: r, phases, samples: rows, scaler: cfg } = file;
  const x = (t: number) => t;
  const [rate, alertP99] = commonPanels(rows, x, ROLLING_S);
  const panels: Panel[] = [
    rate!,
    rowPanel(rows, x, {
      title: "Consumer lag (brokers: log end − committed)",
      unit: "records",
      lines: [
        { label: "total lag", y: (row) => row.lag },
        {
          label: "threshold × replicas",
          y: (row) => cfg.lagThreshold * row.replicas,
          dashed: true,
          color: "#999",
        },
      ],
    }),
    rowPanel(rows, x, {
      title: "Processor replicas",
      unit: "replicas",
      integer: true,
      lines: [{ label: "replicas", y: (row) => row.replicas }],
    }),
    alertP99!,
  ];
  const markers: Marker[] = [
    ...phases.map((p) => ({ x: p.startS, label: p.name })),
    ...file.scaleEvents.map((e) => ({
      x: e.t,
      label: `→${e.to}`,
      color: e.to > e.from ? "#2ca02c" : "#d62728",
    })),
  ];
  const m = file.machine;
  return renderSvg({
    title: `paystream spike: ${fmt(r.baseRate)} → ${fmt(r.peakRate)} → ${fmt(r.baseRate)} tx/s, replicas ${cfg.minReplicas}–${cfg.maxReplicas} on lag (verify ${r.verify.clean ? "PASS" : "FAIL"})`,
    subtitle: `${file.startedAt.slice(0, 16)}Z · ${m.cores} CPUs ${m.cpuModel} · Node ${m.node} · Kafka ${m.kafka} · git ${m.git.commit} · lagThreshold ${cfg.lagThreshold}, scale-down stabilization ${cfg.scaleDown.stabilizationWindowSeconds} s`,
    xLabel: "seconds since start",
    panels,
    markers,
  });
}

await runMain("spike", main);

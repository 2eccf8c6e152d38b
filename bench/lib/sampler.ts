/**
 * The time series of a long benchmark run (spike, soak): every interval, the collector's
 * produced counter and memory, each processor replica's /metrics, the group's lag from the
 * brokers, and any extra probe (e.g. Redis keys), as one row.
 *
 * Replicas come and go during a spike, so nothing is summed across processes as a running
 * total: each replica's counters and histograms are differenced against its own previous
 * scrape (a replica's first scrape counts from its start), and the per-interval differences
 * are summed. Alert latency is kept as one histogram per interval, so a quantile over any
 * stretch of the run (a rolling window for the plot, a whole phase for the table) is the
 * quantile of the summed buckets, as PromQL's histogram_quantile over increase() would give.
 */
import {
  addBuckets,
  type Bucket,
  bucketDelta,
  bucketQuantile,
  counterDelta,
  histogramBuckets,
  sampleSum,
} from "../../src/lib/prom-text.ts";
import type { CollectorProc, ProcessorProc } from "./pipeline.ts";
import { busyShare, cpuSeconds, machineCpu } from "./proc.ts";
import { round } from "./stats.ts";
import type { Line, Panel } from "./svg-plot.ts";

const MiB = 2 ** 20;
const ALERT_LATENCY = "paystream_e2e_latency_seconds";

export interface SampleRow {
  /** Seconds since the sampler started. */
  t: number;
  /** Share of all CPUs busy since the previous row (everyone's work, not just ours). */
  machineBusy: number;
  /** Cores used by the collector and the processors since the previous row. */
  ourCores: number | null;
  /** Collector: records produced in the interval (since the previous row). */
  produced: number | null;
  /** Processors: records processed in the interval (every outcome), summed over replicas. */
  processed: number | null;
  /**
   * The same as rates over the last rateWindowS: the processors count a batch (up to 5,000
   * records) at once, so a 2 s interval alone swings between 0 and a batch.
   */
  inPerS: number | null;
  outPerS: number | null;
  /** The group's total lag: log end minus committed offsets, from the brokers. */
  lag: number | null;
  replicas: number;
  /** Alerts that became durable in Redis during the interval. */
  alerts: number;
  /** p99 of Kafka append → alert in Redis over the rolling window (null: no alert in it). */
  alertP99Ms: number | null;
  /** Sums over the replicas that answered. */
  processorHeapMiB: number | null;
  processorRssMiB: number | null;
  windowAccounts: number | null;
  collectorHeapMiB: number | null;
  collectorRssMiB: number | null;
  /** Extra probes, by name. */
  extra: Record<string, number | null>;
}

export interface SamplerSources {
  collector: () => CollectorProc | undefined;
  /** The replicas answering now (ready ones). */
  processors: () => Promise<ProcessorProc[]>;
  /** The replica count as the autoscaler sees it (starting ones included). */
  replicas: () => number;
  lag: () => Promise<number>;
  extra?: Record<string, () => Promise<number | null>>;
}

export interface SamplerOptions {
  intervalS: number;
  /** Window of the plotted alert p99 (seconds). */
  rollingS: number;
  /** Window of the in/out rates (seconds; at least one interval). */
  rateWindowS: number;
  /** Called with each row (progress lines). */
  onRow?: (row: SampleRow) => void;
}

interface ProcState {
  records: number;
  alerts: Bucket[];
  cpu: number | undefined;
}

export interface LatencyQuantile {
  ms: number | null;
  /** The rank fell above the top bucket (10 s): the true value is higher. */
  capped: boolean;
  count: number;
}

async function settle<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch {
    return undefined;
  }
}

const mib = (bytes: number) => round(bytes / MiB, 1);

export class Sampler {
  readonly rows: SampleRow[] = [];
  /** Alert latency buckets observed in each row's interval (parallel to rows). */
  readonly intervalAlerts: Bucket[][] = [];
  readonly #src: SamplerSources;
  readonly #opts: SamplerOptions;
  readonly #procs = new Map<number, ProcState>();
  #collector: { pid: number; produced: number; t: number; cpu: number | undefined } | undefined;
  #machine = machineCpu();
  #t0 = performance.now();
  #lastT = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(src: SamplerSources, opts: SamplerOptions) {
    this.#src = src;
    this.#opts = opts;
  }

  /** Seconds since start() (the rows' clock). */
  now(): number {
    return (performance.now() - this.#t0) / 1000;
  }

  start(): void {
    this.#t0 = performance.now();
    this.#machine = machineCpu();
    let k = 0;
    const tick = () => {
      this.#running = this.sample()
        .then((row) => this.#opts.onRow?.(row))
        .catch((err) => process.stderr.write(`sampler: ${(err as Error).message}\n`))
        .then(() => {
          if (this.#timer === undefined) return;
          // Fixed schedule, no drift; a slow sample skips the slots it overran.
          k = Math.max(k + 1, Math.ceil(this.now() / this.#opts.intervalS));
          this.#timer = setTimeout(
            tick,
            Math.max(0, k * this.#opts.intervalS * 1000 - (performance.now() - this.#t0)),
          );
        });
    };
    this.#timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async sample(): Promise<SampleRow> {
    const t = this.now();
    const collector = this.#src.collector();
    const procs = await this.#src.processors();
    const extraNames = Object.keys(this.#src.extra ?? {});
    const [lag, cStats, cMetrics, pMetrics, extras] = await Promise.all([
      settle(this.#src.lag()),
      collector ? settle(collector.stats()) : undefined,
      collector ? settle(collector.metrics()) : undefined,
      Promise.all(procs.map((p) => settle(p.metrics()))),
      Promise.all(extraNames.map((n) => settle(this.#src.extra![n]!()))),
    ]);
    const dt = t - this.#lastT;
    this.#lastT = t;
    const machine = machineCpu();
    const machineBusy = round(busyShare(this.#machine, machine), 3);
    this.#machine = machine;

    let cpu = 0;
    let cpuKnown = false;
    let produced: number | null = null;
    if (collector && cStats) {
      const pid = collector.child.pid;
      const c = cpuSeconds(pid);
      const prev = this.#collector?.pid === pid ? this.#collector : undefined;
      if (prev) {
        produced = counterDelta(cStats.produced, prev.produced);
        if (c !== undefined && prev.cpu !== undefined) {
          cpu += c - prev.cpu;
          cpuKnown = true;
        }
      }
      this.#collector = { pid, produced: cStats.produced, t, cpu: c };
    }

    let processed = 0;
    let anyProcessed = false;
    let alerts: Bucket[] = [];
    const sums = { heap: 0, rss: 0, window: 0 };
    let answered = 0;
    const seen = new Set<number>();
    procs.forEach((p, i) => {
      const m = pMetrics[i];
      if (!m) return;
      const pid = p.child.pid;
      seen.add(pid);
      answered++;
      const records = sampleSum(m, "paystream_processor_records_total");
      const buckets = histogramBuckets(m, ALERT_LATENCY, { output: "alert_store" });
      const c = cpuSeconds(pid);
      const prev = this.#procs.get(pid);
      // A replica's first scrape counts everything since it started (all of it is new).
      processed += counterDelta(records, prev?.records ?? 0);
      anyProcessed = true;
      alerts = addBuckets(alerts, bucketDelta(buckets, prev?.alerts));
      if (c !== undefined && prev?.cpu !== undefined) {
        cpu += c - prev.cpu;
        cpuKnown = true;
      }
      this.#procs.set(pid, { records, alerts: buckets, cpu: c });
      sums.heap += sampleSum(m, "paystream_nodejs_heap_size_used_bytes");
      sums.rss += sampleSum(m, "paystream_process_resident_memory_bytes");
      sums.window += sampleSum(m, "paystream_window_accounts");
    });
    for (const pid of this.#procs.keys())
      if (!seen.has(pid) && cpuSeconds(pid) === undefined) this.#procs.delete(pid);

    this.intervalAlerts.push(alerts);
    const rolling = this.alertQuantile(t - this.#opts.rollingS, Number.POSITIVE_INFINITY, 0.99, alerts);
    const row: SampleRow = {
      t: round(t, 2),
      machineBusy,
      ourCores: cpuKnown && dt > 0 ? round(cpu / dt, 2) : null,
      produced,
      processed: anyProcessed && this.rows.length > 0 ? processed : null,
      inPerS: this.#rate("produced", t, produced),
      outPerS: this.#rate("processed", t, anyProcessed && this.rows.length > 0 ? processed : null),
      // End offsets are listed before the commits, so a commit in between reads as a negative lag.
      lag: lag === undefined ? null : Math.max(0, lag),
      replicas: this.#src.replicas(),
      alerts: alerts.at(-1)?.count ?? 0,
      alertP99Ms: rolling.ms,
      processorHeapMiB: answered ? mib(sums.heap) : null,
      processorRssMiB: answered ? mib(sums.rss) : null,
      windowAccounts: answered ? sums.window : null,
      collectorHeapMiB: cMetrics ? mib(sampleSum(cMetrics, "paystream_nodejs_heap_size_used_bytes")) : null,
      collectorRssMiB: cMetrics ? mib(sampleSum(cMetrics, "paystream_process_resident_memory_bytes")) : null,
      extra: Object.fromEntries(extraNames.map((n, i) => [n, extras[i] ?? null])),
    };
    this.rows.push(row);
    return row;
  }

  /** Per second over the current interval and the rows before it that fit in rateWindowS. */
  #rate(key: "produced" | "processed", t: number, current: number | null): number | null {
    if (current === null) return null;
    let sum = current;
    let from = this.rows.at(-1)?.t ?? 0;
    for (let i = this.rows.length - 1; i >= 1; i--) {
      const v = this.rows[i]![key];
      const start = this.rows[i - 1]!.t;
      if (v === null || t - start > this.#opts.rateWindowS + 1e-6) break;
      sum += v;
      from = start;
    }
    return t > from ? Math.round(sum / (t - from)) : null;
  }

  /**
   * q-quantile of the alert latency observed in the rows with fromS < t ≤ toS (plus
   * `pending`, an interval not yet in the rows).
   */
  alertQuantile(fromS: number, toS: number, q: number, pending: Bucket[] = []): LatencyQuantile {
    let sum: Bucket[] = pending;
    this.rows.forEach((r, i) => {
      if (r.t > fromS && r.t <= toS) sum = addBuckets(sum, this.intervalAlerts[i]!);
    });
    const count = sum.at(-1)?.count ?? 0;
    const qv = bucketQuantile(sum, q);
    return { ms: qv ? round(qv.value * 1000, 1) : null, capped: qv?.capped ?? false, count };
  }
}

/** Records per second over the rows in (fromS, toS] that have the count: interval sums over their span. */
export function meanRate(
  rows: readonly SampleRow[],
  key: "produced" | "processed",
  fromS = Number.NEGATIVE_INFINITY,
  toS = Number.POSITIVE_INFINITY,
): number | null {
  let n = 0;
  let span = 0;
  rows.forEach((r, i) => {
    const v = r[key];
    if (v === null || i === 0 || r.t <= fromS || r.t > toS) return;
    n += v;
    span += r.t - rows[i - 1]!.t;
  });
  return span > 0 ? Math.round(n / span) : null;
}

// ----------------------------------------------------------------------------- plot panels

export interface RowLine extends Omit<Line, "points"> {
  y: (r: SampleRow, i: number) => number | null;
}

/** A plot panel of rows: x is the row's time through `x` (seconds or minutes). */
export function rowPanel(
  rows: readonly SampleRow[],
  x: (t: number) => number,
  panel: Omit<Panel, "lines"> & { lines: RowLine[] },
): Panel {
  return {
    ...panel,
    lines: panel.lines.map(({ y, ...line }) => ({
      ...line,
      points: rows.map((r, i) => [x(r.t), y(r, i)] as const),
    })),
  };
}

/** The panels both long runs draw: rate in and out, and the rolling alert p99. */
export function commonPanels(
  rows: readonly SampleRow[],
  x: (t: number) => number,
  rollingS: number,
): Panel[] {
  return [
    rowPanel(rows, x, {
      title: "Rate",
      unit: "tx/s",
      lines: [
        { label: "in (collector sent/s)", y: (r) => r.inPerS },
        { label: "out (processed/s)", y: (r) => r.outPerS },
      ],
    }),
    rowPanel(rows, x, {
      title: `Alert latency p99 (Kafka append → alert in Redis, rolling ${rollingS} s; 10 s is the top bucket)`,
      unit: "ms",
      lines: [{ label: "p99", y: (r) => r.alertP99Ms }],
    }),
  ];
}

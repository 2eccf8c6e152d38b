/**
 * The dashboard's aggregation: one stateful aggregator, no I/O. The adapters (sources.ts)
 * read the collector's /config and /stats, each processor's /status, /metrics and /readyz,
 * and the latest alerts; this module turns those raw readings into one snapshot the UI
 * renders: rates from counter deltas (restarts tolerated), p99 latencies from histogram
 * bucket deltas, outcomes, alerts by rule, health, and the alert feed.
 *
 * The shapes live in model.ts, the defensive reading of each answer in normalize.ts, the
 * Prometheus text and histogram arithmetic in lib/prom-text.ts; they are re-exported here,
 * the module the server, the sources and the UI import.
 */
import {
  addBuckets,
  type Bucket,
  bucketDelta,
  counterDelta,
  histogramBuckets,
  histogramQuantile,
  parsePrometheusText,
} from "../lib/prom-text.ts";
import type {
  CollectorReading,
  DashboardSnapshot,
  FeedAlert,
  HealthItem,
  HistoryPoint,
  ProcessorReading,
  ProcessorView,
  Readings,
} from "./model.ts";
import { answerProblem, isObj, normalizeStatus, num, type Obj, toFeedAlert } from "./normalize.ts";

export interface AggregatorOptions {
  /** Points kept for the sparkline. */
  historyLength?: number;
  /** Rates are averaged over this span of ticks. */
  rateWindowMs?: number;
  /** p99 latencies cover the observations of this span. */
  latencyWindowMs?: number;
  /** Alerts in the feed. */
  feedSize?: number;
}

interface Tick {
  t: number;
  dt: number;
  dIn: number;
  dOut: number;
  alertBuckets: Bucket[];
  rowBuckets: Bucket[];
}

/** What the collector's answers say, when they say it. */
interface CollectorFacts {
  config: Obj | undefined;
  produced: number | undefined;
}

/** The processors' answers summed, plus this tick's increments. */
interface ProcessorFacts {
  views: ProcessorView[];
  processed: DashboardSnapshot["processed"];
  byRule: Record<string, number>;
  alertsTotal: number;
  lag: number | null;
  dOut: number;
  alertBuckets: Bucket[];
  rowBuckets: Bucket[];
}

/** A dependency (Kafka, Redis, warehouse...) as the processors report it: down if any says so. */
class DependencyHealth {
  readonly #deps = new Map<string, { ok: boolean; detail: string[] }>();

  report(name: string, ok: boolean, detail?: string): void {
    const d = this.#deps.get(name) ?? { ok: true, detail: [] };
    d.ok &&= ok;
    if (detail) d.detail.push(detail);
    this.#deps.set(name, d);
  }

  items(): HealthItem[] {
    return [...this.#deps]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, d]) => ({ name, ok: d.ok, detail: d.ok ? "up" : d.detail.join("; ") || "failing" }));
  }
}

const E2E = "paystream_e2e_latency_seconds";

/**
 * Turns successive readings into snapshots. Keeps only what rates and windows need: the last
 * counter and histogram values per source and a short ring of per-tick increments.
 */
export class DashboardAggregator {
  readonly #o: Required<AggregatorOptions>;
  readonly #counters = new Map<string, number>();
  readonly #hist = new Map<string, Bucket[]>();
  #ticks: Tick[] = [];
  readonly #history: HistoryPoint[] = [];
  #lastAt: number | undefined;
  #latest: DashboardSnapshot | undefined;

  constructor(opts: AggregatorOptions = {}) {
    this.#o = {
      historyLength: opts.historyLength ?? 90,
      rateWindowMs: opts.rateWindowMs ?? 3000,
      latencyWindowMs: opts.latencyWindowMs ?? 10_000,
      feedSize: opts.feedSize ?? 25,
    };
  }

  get latest(): DashboardSnapshot | undefined {
    return this.#latest;
  }

  update(r: Readings, nowMs: number): DashboardSnapshot {
    const health: HealthItem[] = [];
    const c = r.collector;
    const collector = this.#readCollector(c, health);
    const deps = new DependencyHealth();
    const p = this.#readProcessors(r.processors, health, deps);
    health.push(...deps.items());
    health.push({
      name: "alert feed",
      ok: r.alerts.error === undefined,
      detail: r.alerts.error ?? r.alerts.source,
    });

    const dt = this.#recordTick(nowMs, this.#delta("collector", collector.produced), p);
    const { inPerS, outPerS } = this.#rates(nowMs, dt, collector);
    const cfg = collector.config;

    const snapshot: DashboardSnapshot = {
      at: nowMs,
      collector: {
        url: c?.url ?? null,
        reachable: cfg !== undefined,
        error: c ? (answerProblem(c.config) ?? null) : "no collector configured",
        target_rate: cfg ? (num(cfg.messages_per_second) ?? null) : null,
        actual_rate: cfg ? (num(cfg.actual_messages_per_second) ?? null) : null,
        max_rate: cfg ? (num(cfg.max_messages_per_second) ?? null) : null,
        produced: collector.produced ?? null,
      },
      throughput: { in_per_s: Math.round(inPerS), out_per_s: Math.round(outPerS) },
      history: [...this.#history],
      processed: p.processed,
      lag_records: p.lag,
      alerts: {
        total: p.alertsTotal,
        by_rule: p.byRule,
        active_accounts_5m: r.alerts.activeAccounts,
        source: r.alerts.source,
        latest: this.#feed(r.alerts.latest),
      },
      latency: {
        p99_alert_ms: this.#p99(nowMs, (t) => t.alertBuckets),
        p99_row_ms: this.#p99(nowMs, (t) => t.rowBuckets),
        window_s: Math.round(this.#o.latencyWindowMs / 1000),
      },
      processors: p.views,
      health,
    };
    this.#latest = snapshot;
    return snapshot;
  }

  #delta(key: string, value: number | undefined): number {
    if (value === undefined) return 0;
    const d = counterDelta(value, this.#counters.get(key));
    this.#counters.set(key, value);
    return d;
  }

  #histDelta(key: string, now: Bucket[]): Bucket[] {
    const prev = this.#hist.get(key);
    this.#hist.set(key, now);
    return prev ? bucketDelta(now, prev) : [];
  }

  #readCollector(c: CollectorReading | undefined, health: HealthItem[]): CollectorFacts {
    if (!c) return { config: undefined, produced: undefined };
    const config = isObj(c.config.body) && !answerProblem(c.config) ? c.config.body : undefined;
    const produced = isObj(c.stats.body) && !answerProblem(c.stats) ? num(c.stats.body.produced) : undefined;
    const why = answerProblem(c.config) ?? answerProblem(c.ready);
    health.push({ name: "collector", ok: why === undefined, detail: why ?? c.url });
    return { config, produced };
  }

  #readProcessors(
    readings: readonly ProcessorReading[],
    health: HealthItem[],
    deps: DependencyHealth,
  ): ProcessorFacts {
    const out: ProcessorFacts = {
      views: [],
      processed: { total: 0, ok: 0, duplicate: 0, late: 0, invalid: 0 },
      byRule: {},
      alertsTotal: 0,
      lag: null,
      dOut: 0,
      alertBuckets: [],
      rowBuckets: [],
    };
    const several = readings.length > 1;
    for (const p of readings) {
      const s = answerProblem(p.status) ? undefined : normalizeStatus(p.status.body);
      const readyWhy = answerProblem(p.ready);
      out.views.push({
        url: p.url,
        reachable: s !== undefined,
        ready: readyWhy === undefined,
        processed: s?.records ?? 0,
        lag_records: s?.lag ?? null,
      });
      health.push({
        name: several ? `processor ${p.url}` : "processor",
        ok: s !== undefined && readyWhy === undefined,
        detail: (s === undefined ? answerProblem(p.status) : readyWhy) ?? "ready",
      });
      if (!s) continue;
      out.processed.total += s.records;
      out.processed.ok += s.ok;
      out.processed.duplicate += s.duplicates;
      out.processed.late += s.late;
      out.processed.invalid += s.invalid;
      out.alertsTotal += s.alerts;
      for (const [k, v] of Object.entries(s.alertsByRule)) out.byRule[k] = (out.byRule[k] ?? 0) + v;
      if (s.lag !== null) out.lag = (out.lag ?? 0) + s.lag;
      out.dOut += this.#delta(`processor:${p.url}`, s.records);
      for (const [name, why] of Object.entries(s.health))
        deps.report(name, false, several ? `${p.url}: ${why}` : why);
      if (typeof p.metrics.body === "string" && !answerProblem(p.metrics)) {
        this.#readMetrics(p.url, p.metrics.body, out, deps);
      }
    }
    return out;
  }

  /** Dependency gauges and this tick's e2e latency observations from one processor's /metrics. */
  #readMetrics(url: string, text: string, out: ProcessorFacts, deps: DependencyHealth): void {
    const samples = parsePrometheusText(text);
    for (const x of samples) {
      // A NaN gauge says nothing about the dependency: neither up nor down.
      if (x.name === "paystream_dependency_up" && x.labels.dependency && !Number.isNaN(x.value))
        deps.report(x.labels.dependency, x.value === 1);
    }
    out.alertBuckets = addBuckets(
      out.alertBuckets,
      this.#histDelta(`alert:${url}`, histogramBuckets(samples, E2E, { output: "alert_store" })),
    );
    out.rowBuckets = addBuckets(
      out.rowBuckets,
      this.#histDelta(`row:${url}`, histogramBuckets(samples, E2E, { output: "warehouse" })),
    );
  }

  /** Appends this tick's increments and drops ticks older than both windows; returns the tick's span. */
  #recordTick(nowMs: number, dIn: number, p: ProcessorFacts): number {
    const dt = this.#lastAt === undefined ? 0 : Math.max(0, nowMs - this.#lastAt);
    this.#lastAt = nowMs;
    this.#ticks.push({
      t: nowMs,
      dt,
      dIn,
      dOut: p.dOut,
      alertBuckets: p.alertBuckets,
      rowBuckets: p.rowBuckets,
    });
    const keepFrom = nowMs - Math.max(this.#o.rateWindowMs, this.#o.latencyWindowMs);
    this.#ticks = this.#ticks.filter((t) => t.t > keepFrom);
    return dt;
  }

  /** Rates over the rate window, and a history point when time moved. */
  #rates(nowMs: number, dt: number, collector: CollectorFacts): { inPerS: number; outPerS: number } {
    const rateTicks = this.#ticks.filter((t) => t.t > nowMs - this.#o.rateWindowMs);
    const span = rateTicks.reduce((a, t) => a + t.dt, 0);
    const perS = (sum: number) => (span > 0 ? (sum * 1000) / span : 0);
    const cfg = collector.config;
    // Without /stats the collector's own rate figure is the best there is.
    const inPerS =
      collector.produced === undefined
        ? cfg
          ? (num(cfg.actual_messages_per_second) ?? 0)
          : 0
        : perS(rateTicks.reduce((a, t) => a + t.dIn, 0));
    const outPerS = perS(rateTicks.reduce((a, t) => a + t.dOut, 0));
    if (dt > 0) {
      this.#history.push({ t: nowMs, in_per_s: Math.round(inPerS), out_per_s: Math.round(outPerS) });
      if (this.#history.length > this.#o.historyLength) this.#history.shift();
    }
    return { inPerS, outPerS };
  }

  /** p99 (ms, one decimal) of the observations of the latency window; null when there were none. */
  #p99(nowMs: number, pick: (t: Tick) => Bucket[]): number | null {
    const sum = this.#ticks
      .filter((t) => t.t > nowMs - this.#o.latencyWindowMs)
      .reduce<Bucket[]>((a, t) => addBuckets(a, pick(t)), []);
    const q = histogramQuantile(sum, new Map(), 0.99);
    return q === undefined ? null : Math.round(q * 10_000) / 10;
  }

  #feed(raw: readonly unknown[]): FeedAlert[] {
    const latest: FeedAlert[] = [];
    for (const x of raw) {
      const a = toFeedAlert(x);
      if (a) latest.push(a);
      if (latest.length >= this.#o.feedSize) break;
    }
    return latest;
  }
}

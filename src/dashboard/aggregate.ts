/**
 * The dashboard's aggregation: pure functions and one stateful aggregator, no I/O. The
 * adapters (sources.ts) read the collector's /config and /stats, each processor's /status,
 * /metrics and /readyz, and the latest alerts; this module turns those raw readings into one
 * snapshot the UI renders: rates from counter deltas (restarts tolerated), p99 latencies from
 * histogram bucket deltas, outcomes, alerts by rule, health, and an alert feed that carries
 * masked card data only (BIN + last digits; anything that looks like a card number is dropped).
 */
import { findLuhnDigitRuns } from "../core/masking.ts";

// ------------------------------------------------------------------------- Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;

function parseValue(s: string): number {
  if (s === "+Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(s);
}

/** Parses the Prometheus text exposition format (what /metrics serves); comments and junk are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(LABEL)) {
        labels[l[1]!] = l[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const value = parseValue(m[3]!);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export interface Bucket {
  le: number;
  count: number;
}

/** Cumulative buckets of one histogram, summed over every sample whose labels include `match`. */
export function histogramBuckets(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): Bucket[] {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const le = parseValue(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Adds cumulative bucket lists bucket by bucket (same `le` bounds summed). */
export function addBuckets(a: readonly Bucket[], b: readonly Bucket[]): Bucket[] {
  const byLe = new Map<number, number>();
  for (const x of [...a, ...b]) byLe.set(x.le, (byLe.get(x.le) ?? 0) + x.count);
  return [...byLe].map(([le, count]) => ({ le, count })).sort((x, y) => x.le - y.le);
}

/**
 * Observations added since `prev`. A histogram that went down was reset (its process
 * restarted): everything it holds now is new.
 */
export function bucketDelta(now: readonly Bucket[], prev: readonly Bucket[] | undefined): Bucket[] {
  if (!prev) return now.map((b) => ({ ...b }));
  const before = new Map(prev.map((b) => [b.le, b.count]));
  const reset = now.some((b) => b.count < (before.get(b.le) ?? 0));
  return now.map((b) => ({ le: b.le, count: reset ? b.count : b.count - (before.get(b.le) ?? 0) }));
}

/** p-quantile (0..1) of the observations added to a histogram since `prev` (bucket interpolation). */
export function histogramQuantile(
  now: { le: number; count: number }[],
  prev: Map<number, number>,
  q: number,
): number | undefined {
  const deltas = now.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) }));
  const total = deltas.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const b of deltas) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lowerLe;
      const inBucket = b.count - lowerCount;
      return lowerLe + (inBucket > 0 ? ((rank - lowerCount) / inBucket) * (b.le - lowerLe) : 0);
    }
    lowerLe = b.le;
    lowerCount = b.count;
  }
  return lowerLe;
}

/** Increase of a counter since `prev`; a counter that went down restarted from zero. */
export function counterDelta(now: number, prev: number | undefined): number {
  if (prev === undefined) return 0;
  return now >= prev ? now - prev : now;
}

// ------------------------------------------------------------------------- readings (raw)

/** One HTTP answer as an adapter got it; `error` when there was no answer at all. */
export interface Answer {
  status: number;
  body: unknown;
  error?: string;
}

export interface CollectorReading {
  url: string;
  config: Answer;
  stats: Answer;
  ready: Answer;
}

export interface ProcessorReading {
  url: string;
  status: Answer;
  /** /metrics text (body is a string). */
  metrics: Answer;
  ready: Answer;
}

export interface AlertsReading {
  source: string;
  /** Alerts newest first, as JSON objects (the shape of alertToJson). */
  latest: unknown[];
  /** Accounts with an alert in the last 5 minutes; null when unknown. */
  activeAccounts: number | null;
  error?: string;
}

export interface Readings {
  collector: CollectorReading | undefined;
  processors: ProcessorReading[];
  alerts: AlertsReading;
}

// ------------------------------------------------------------------------- snapshot (out)

export interface FeedAlert {
  alert_id: string;
  rule_id: string;
  rule_type: string;
  severity: string;
  account_id: string;
  /** "BIN ••• last4", or null when the alert has no card. */
  card: string | null;
  event_time: string;
  detected_at: string;
  /** detected_at − event_time, ms. */
  detection_latency_ms: number | null;
  figures: Record<string, number | string>;
}

export interface HealthItem {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ProcessorView {
  url: string;
  reachable: boolean;
  ready: boolean;
  processed: number;
  lag_records: number | null;
}

export interface HistoryPoint {
  t: number;
  in_per_s: number;
  out_per_s: number;
}

export interface DashboardSnapshot {
  at: number;
  collector: {
    url: string | null;
    reachable: boolean;
    error: string | null;
    target_rate: number | null;
    actual_rate: number | null;
    max_rate: number | null;
    produced: number | null;
  };
  throughput: { in_per_s: number; out_per_s: number };
  history: HistoryPoint[];
  processed: { total: number; ok: number; duplicate: number; late: number; invalid: number };
  lag_records: number | null;
  alerts: {
    total: number;
    by_rule: Record<string, number>;
    active_accounts_5m: number | null;
    source: string;
    latest: FeedAlert[];
  };
  latency: { p99_alert_ms: number | null; p99_row_ms: number | null; window_s: number };
  processors: ProcessorView[];
  health: HealthItem[];
}

// ------------------------------------------------------------------------- normalisation

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

type CountKey = "records" | "ok" | "duplicates" | "invalid" | "late" | "alerts";

export interface ProcessorStatus extends Record<CountKey, number> {
  alertsByRule: Record<string, number>;
  lag: number | null;
  /** Failing dependencies and why. */
  health: Record<string, string>;
}

/** Where each count lives in a processor's /status totals and in `paystream up`'s /status processor. */
const PROCESSOR_COUNTS: Record<CountKey, string> = {
  records: "records",
  ok: "ok",
  duplicates: "duplicates",
  invalid: "invalid",
  late: "late",
  alerts: "alerts",
};
const UP_COUNTS: Record<CountKey, string> = { ...PROCESSOR_COUNTS, records: "processed", invalid: "dlq" };

function counts(o: Obj, names: Record<CountKey, string>): Record<CountKey, number> {
  const out = {} as Record<CountKey, number>;
  for (const [key, name] of Object.entries(names)) out[key as CountKey] = num(o[name]) ?? 0;
  return out;
}

function countMap(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (isObj(v)) for (const [k, n] of Object.entries(v)) if (num(n) !== undefined) out[k] = n as number;
  return out;
}

/**
 * Reads a processor's /status, or `paystream up`'s /status (a different shape: both are
 * accepted so --processor-urls can point at either). Undefined for anything else.
 */
export function normalizeStatus(body: unknown): ProcessorStatus | undefined {
  if (!isObj(body)) return undefined;
  if (isObj(body.totals)) {
    const health: Record<string, string> = {};
    if (isObj(body.health)) for (const [k, v] of Object.entries(body.health)) health[k] = String(v);
    return {
      ...counts(body.totals, PROCESSOR_COUNTS),
      alertsByRule: countMap(body.alertsByRule),
      lag: num(body.lag) ?? null,
      health,
    };
  }
  if (isObj(body.processor)) {
    const p = body.processor;
    return {
      ...counts(p, UP_COUNTS),
      alertsByRule: countMap(p.alerts_by_rule),
      lag: num(p.lag_records) ?? null,
      health: {},
    };
  }
  return undefined;
}

const BIN = /^\d{6}$/;
const LAST = /^\d{1,4}$/;

/** A string that holds no card-number-like digit run, or a placeholder. */
function safeText(v: string): string {
  return findLuhnDigitRuns(v).length > 0 ? "[redacted]" : v;
}

/**
 * One alert for the feed, from its JSON form (Redis stream entry, embedded store). Only the
 * BIN and the last digits of the card are kept (never the token, never more digits), and any
 * text that contains a Luhn-valid 12–19 digit run is replaced: the feed can never carry a PAN.
 */
export function toFeedAlert(raw: unknown): FeedAlert | undefined {
  if (!isObj(raw)) return undefined;
  const alertId = str(raw.alert_id);
  const ruleId = str(raw.rule_id);
  if (!alertId || !ruleId) return undefined;
  let card: string | null = null;
  if (isObj(raw.masked_card)) {
    const bin = str(raw.masked_card.bin);
    const last4 = str(raw.masked_card.last4);
    if (bin && last4 && BIN.test(bin) && LAST.test(last4)) card = `${bin} •••••• ${last4}`;
  }
  const eventTime = str(raw.event_time) ?? "";
  const detectedAt = str(raw.detected_at) ?? "";
  const e = Date.parse(eventTime);
  const d = Date.parse(detectedAt);
  const figures: Record<string, number | string> = {};
  if (isObj(raw.figures)) {
    for (const [k, v] of Object.entries(raw.figures)) {
      if (typeof v === "number" && Number.isFinite(v)) {
        figures[k] = safeText(String(v)) === String(v) ? v : "[redacted]";
      } else if (typeof v === "string") figures[k] = safeText(v);
    }
  }
  return {
    alert_id: safeText(alertId),
    rule_id: safeText(ruleId),
    rule_type: safeText(str(raw.rule_type) ?? ""),
    severity: safeText(str(raw.severity) ?? ""),
    account_id: safeText(str(raw.account_id) ?? ""),
    card,
    event_time: safeText(eventTime),
    detected_at: safeText(detectedAt),
    detection_latency_ms: Number.isFinite(e) && Number.isFinite(d) ? Math.max(0, d - e) : null,
    figures,
  };
}

/** Why an answer is not a success, or undefined. */
function problem(a: Answer): string | undefined {
  if (a.error) return a.error;
  if (a.status >= 200 && a.status < 300) return undefined;
  const b = a.body;
  if (isObj(b)) {
    if (isObj(b.failing))
      return Object.entries(b.failing)
        .map(([k, v]) => `${k}: ${String(v)}`)
        .join("; ");
    if (str(b.reason)) return str(b.reason);
  }
  return `HTTP ${a.status}`;
}

// ------------------------------------------------------------------------- aggregator

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

  update(r: Readings, nowMs: number): DashboardSnapshot {
    const health: HealthItem[] = [];

    // ---- collector
    const c = r.collector;
    const cfg = c && isObj(c.config.body) && !problem(c.config) ? c.config.body : undefined;
    const produced = c && isObj(c.stats.body) && !problem(c.stats) ? num(c.stats.body.produced) : undefined;
    if (c) {
      const why = problem(c.config) ?? problem(c.ready);
      health.push({ name: "collector", ok: why === undefined, detail: why ?? c.url });
    }

    // ---- processors
    const processors: ProcessorView[] = [];
    const processed = { total: 0, ok: 0, duplicate: 0, late: 0, invalid: 0 };
    const byRule: Record<string, number> = {};
    let alertsTotal = 0;
    let lag: number | null = null;
    let dOut = 0;
    let alertBuckets: Bucket[] = [];
    let rowBuckets: Bucket[] = [];
    const deps = new Map<string, { ok: boolean; detail: string[] }>();
    const dep = (name: string, ok: boolean, detail?: string) => {
      const d = deps.get(name) ?? { ok: true, detail: [] };
      d.ok &&= ok;
      if (detail) d.detail.push(detail);
      deps.set(name, d);
    };
    for (const p of r.processors) {
      const s = problem(p.status) ? undefined : normalizeStatus(p.status.body);
      const readyWhy = problem(p.ready);
      processors.push({
        url: p.url,
        reachable: s !== undefined,
        ready: readyWhy === undefined,
        processed: s?.records ?? 0,
        lag_records: s?.lag ?? null,
      });
      health.push({
        name: r.processors.length > 1 ? `processor ${p.url}` : "processor",
        ok: s !== undefined && readyWhy === undefined,
        detail: (s === undefined ? problem(p.status) : readyWhy) ?? "ready",
      });
      if (!s) continue;
      processed.total += s.records;
      processed.ok += s.ok;
      processed.duplicate += s.duplicates;
      processed.late += s.late;
      processed.invalid += s.invalid;
      alertsTotal += s.alerts;
      for (const [k, v] of Object.entries(s.alertsByRule)) byRule[k] = (byRule[k] ?? 0) + v;
      if (s.lag !== null) lag = (lag ?? 0) + s.lag;
      dOut += this.#delta(`processor:${p.url}`, s.records);
      for (const [name, why] of Object.entries(s.health))
        dep(name, false, r.processors.length > 1 ? `${p.url}: ${why}` : why);
      if (typeof p.metrics.body === "string" && !problem(p.metrics)) {
        const samples = parsePrometheusText(p.metrics.body);
        for (const x of samples) {
          if (x.name === "paystream_dependency_up" && x.labels.dependency)
            dep(x.labels.dependency, x.value === 1);
        }
        alertBuckets = addBuckets(
          alertBuckets,
          this.#histDelta(`alert:${p.url}`, histogramBuckets(samples, E2E, { output: "alert_store" })),
        );
        rowBuckets = addBuckets(
          rowBuckets,
          this.#histDelta(`row:${p.url}`, histogramBuckets(samples, E2E, { output: "warehouse" })),
        );
      }
    }
    for (const [name, d] of [...deps].sort(([a], [b]) => a.localeCompare(b))) {
      health.push({ name, ok: d.ok, detail: d.ok ? "up" : d.detail.join("; ") || "failing" });
    }
    health.push({
      name: "alert feed",
      ok: r.alerts.error === undefined,
      detail: r.alerts.error ?? r.alerts.source,
    });

    // ---- rates over the last ticks
    const dIn = this.#delta("collector", produced);
    const dt = this.#lastAt === undefined ? 0 : Math.max(0, nowMs - this.#lastAt);
    this.#lastAt = nowMs;
    this.#ticks.push({ t: nowMs, dt, dIn, dOut, alertBuckets, rowBuckets });
    const keepFrom = nowMs - Math.max(this.#o.rateWindowMs, this.#o.latencyWindowMs);
    this.#ticks = this.#ticks.filter((t) => t.t > keepFrom);
    const rateTicks = this.#ticks.filter((t) => t.t > nowMs - this.#o.rateWindowMs);
    const span = rateTicks.reduce((a, t) => a + t.dt, 0);
    const perS = (sum: number) => (span > 0 ? (sum * 1000) / span : 0);
    let inPerS = perS(rateTicks.reduce((a, t) => a + t.dIn, 0));
    if (produced === undefined) inPerS = cfg ? (num(cfg.actual_messages_per_second) ?? 0) : 0;
    const outPerS = perS(rateTicks.reduce((a, t) => a + t.dOut, 0));
    if (dt > 0) {
      this.#history.push({ t: nowMs, in_per_s: Math.round(inPerS), out_per_s: Math.round(outPerS) });
      if (this.#history.length > this.#o.historyLength) this.#history.shift();
    }
    const latencyTicks = this.#ticks.filter((t) => t.t > nowMs - this.#o.latencyWindowMs);
    const p99 = (pick: (t: Tick) => Bucket[]) => {
      const sum = latencyTicks.reduce<Bucket[]>((a, t) => addBuckets(a, pick(t)), []);
      const q = histogramQuantile(sum, new Map(), 0.99);
      return q === undefined ? null : Math.round(q * 10_000) / 10;
    };

    const latest: FeedAlert[] = [];
    for (const raw of r.alerts.latest) {
      const a = toFeedAlert(raw);
      if (a) latest.push(a);
      if (latest.length >= this.#o.feedSize) break;
    }

    const snapshot: DashboardSnapshot = {
      at: nowMs,
      collector: {
        url: c?.url ?? null,
        reachable: cfg !== undefined,
        error: c ? (problem(c.config) ?? null) : "no collector configured",
        target_rate: cfg ? (num(cfg.messages_per_second) ?? null) : null,
        actual_rate: cfg ? (num(cfg.actual_messages_per_second) ?? null) : null,
        max_rate: cfg ? (num(cfg.max_messages_per_second) ?? null) : null,
        produced: produced ?? null,
      },
      throughput: { in_per_s: Math.round(inPerS), out_per_s: Math.round(outPerS) },
      history: [...this.#history],
      processed,
      lag_records: lag,
      alerts: {
        total: alertsTotal,
        by_rule: byRule,
        active_accounts_5m: r.alerts.activeAccounts,
        source: r.alerts.source,
        latest,
      },
      latency: {
        p99_alert_ms: p99((t) => t.alertBuckets),
        p99_row_ms: p99((t) => t.rowBuckets),
        window_s: Math.round(this.#o.latencyWindowMs / 1000),
      },
      processors,
      health,
    };
    this.#latest = snapshot;
    return snapshot;
  }
}

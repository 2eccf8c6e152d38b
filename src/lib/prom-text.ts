/**
 * The one reader of the Prometheus text exposition format (what every /metrics here serves)
 * and the histogram arithmetic built on it, shared by the dashboard, `paystream up` and the
 * benchmarks. Pure: no I/O, no clock, no module state.
 *
 * Readings are made of two scrapes: counters and histograms are cumulative since their
 * process started, so a rate or a latency quantile of "the last few seconds" is the
 * difference of two scrapes. A value that went down means the process restarted, and then
 * everything it holds now is new.
 *
 * Quantiles follow PromQL's histogram_quantile for classic histograms: linear interpolation
 * inside the bucket that holds the rank, a lower bound of 0 for the first bucket, and the
 * highest finite bound when the rank falls in the +Inf bucket.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  /** NaN and ±Infinity are values like any other (a gauge may be NaN). */
  value: number;
}

/** Labels a sample must carry (with these values) to be counted; others are free. */
export type LabelMatch = Readonly<Record<string, string>>;

/** Cumulative count of observations at or below `le`. */
export interface Bucket {
  le: number;
  count: number;
}

export interface Histogram {
  /** Cumulative counts by upper bound, ascending, ending with +Inf when the source had it. */
  buckets: Bucket[];
  sum: number;
  count: number;
}

// ------------------------------------------------------------------------- parsing

// Sticky: each matches exactly at lastIndex, so the line is never copied to be scanned.
const METRIC_NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;

/**
 * A sample value or an `le` bound as the format writes it. Go's ParseFloat, which Prometheus
 * uses, takes Inf/NaN in any case; Number() knows neither spelling. NaN for anything else.
 */
export function parseFloatValue(s: string): number {
  switch (s.toLowerCase()) {
    case "+inf":
    case "inf":
      return Number.POSITIVE_INFINITY;
    case "-inf":
      return Number.NEGATIVE_INFINITY;
    case "nan":
      return Number.NaN;
  }
  // Number("") and Number(" ") are 0: an empty token is not a value.
  return s.trim() === "" ? Number.NaN : Number(s);
}

/** A cursor over one line; every read returns undefined when the line is not a sample. */
class LineReader {
  readonly line: string;
  pos = 0;

  constructor(line: string) {
    this.line = line;
  }

  get done(): boolean {
    return this.pos >= this.line.length;
  }

  peek(): string {
    return this.line[this.pos] ?? "";
  }

  skipSpaces(): number {
    const from = this.pos;
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
    return this.pos - from;
  }

  identifier(pattern: RegExp): string | undefined {
    pattern.lastIndex = this.pos;
    const m = pattern.exec(this.line);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  /** A double-quoted label value; the format escapes only \\, \" and \n. */
  quoted(): string | undefined {
    if (this.peek() !== '"') return undefined;
    this.pos++;
    // Most values have no escape: one slice up to the closing quote.
    const close = this.line.indexOf('"', this.pos);
    if (close < 0) return undefined;
    const backslash = this.line.indexOf("\\", this.pos);
    if (backslash < 0 || backslash > close) {
      const value = this.line.slice(this.pos, close);
      this.pos = close + 1;
      return value;
    }
    let out = "";
    while (!this.done) {
      const c = this.line[this.pos++]!;
      if (c === '"') return out;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = this.line[this.pos++];
      if (e === undefined) return undefined;
      // An unknown escape is kept as written rather than guessed at.
      out += e === "n" ? "\n" : e === "\\" || e === '"' ? e : `\\${e}`;
    }
    return undefined;
  }

  /** `{name="value",...}` with optional spaces and an optional trailing comma. */
  labels(): Record<string, string> | undefined {
    const out: Record<string, string> = {};
    this.pos++; // "{"
    for (;;) {
      this.skipSpaces();
      if (this.peek() === "}") break;
      const name = this.identifier(LABEL_NAME);
      if (name === undefined) return undefined;
      this.skipSpaces();
      if (this.peek() !== "=") return undefined;
      this.pos++;
      this.skipSpaces();
      const value = this.quoted();
      if (value === undefined) return undefined;
      out[name] = value;
      this.skipSpaces();
      if (this.peek() === ",") this.pos++;
      else if (this.peek() !== "}") return undefined;
    }
    this.pos++; // "}"
    return out;
  }

  token(): string {
    const from = this.pos;
    while (!this.done && this.peek() !== " " && this.peek() !== "\t") this.pos++;
    return this.line.slice(from, this.pos);
  }
}

function parseLine(line: string): Sample | undefined {
  const r = new LineReader(line);
  const name = r.identifier(METRIC_NAME);
  if (name === undefined) return undefined;
  let spaces = r.skipSpaces();
  let labels: Record<string, string> | undefined = {};
  if (r.peek() === "{") {
    labels = r.labels();
    if (labels === undefined) return undefined;
    spaces = r.skipSpaces();
  }
  if (spaces === 0) return undefined;
  const raw = r.token();
  const value = parseFloatValue(raw);
  if (Number.isNaN(value) && raw.toLowerCase() !== "nan") return undefined;
  // An optional timestamp, then nothing: anything more means this is not a sample line.
  r.skipSpaces();
  if (!r.done && !Number.isFinite(Number(r.token()))) return undefined;
  r.skipSpaces();
  return r.done ? { name, labels, value } : undefined;
}

/**
 * Parses Prometheus text exposition (version 0.0.4) into samples, in order. Comments (HELP,
 * TYPE) and lines that are not samples are skipped rather than refused: a dashboard reading
 * a half-written or foreign page still shows what it could read.
 */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const s = parseLine(line);
    if (s) out.push(s);
  }
  return out;
}

// ------------------------------------------------------------------------- selecting

function matches(s: Sample, want: LabelMatch): boolean {
  for (const k in want) if (s.labels[k] !== want[k]) return false;
  return true;
}

/** Sum of every sample of `name` whose labels include `want` (0 when there is none). */
export function sampleSum(samples: readonly Sample[], name: string, want: LabelMatch = {}): number {
  let t = 0;
  for (const s of samples) if (s.name === name && matches(s, want)) t += s.value;
  return t;
}

/**
 * Cumulative buckets of histogram `name`, summed bound by bound over every series whose
 * labels include `want` (PromQL's `sum by (le)`), sorted by bound.
 */
export function histogramBuckets(samples: readonly Sample[], name: string, want: LabelMatch = {}): Bucket[] {
  const bucketName = `${name}_bucket`;
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== bucketName || s.labels.le === undefined || !matches(s, want)) continue;
    const le = parseFloatValue(s.labels.le);
    if (Number.isNaN(le)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return sortedBuckets(byLe);
}

/** Buckets, sum and count of histogram `name` over the series whose labels include `want`. */
export function histogram(samples: readonly Sample[], name: string, want: LabelMatch = {}): Histogram {
  return {
    buckets: histogramBuckets(samples, name, want),
    sum: sampleSum(samples, `${name}_sum`, want),
    count: sampleSum(samples, `${name}_count`, want),
  };
}

function sortedBuckets(byLe: ReadonlyMap<number, number>): Bucket[] {
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

// ------------------------------------------------------------------------- two scrapes

/** Increase of a counter since `prev`; a counter that went down restarted from zero. */
export function counterDelta(now: number, prev: number | undefined): number {
  if (prev === undefined) return 0;
  return now >= prev ? now - prev : now;
}

/** Adds cumulative bucket lists bound by bound (same `le` summed), e.g. across processes. */
export function addBuckets(a: readonly Bucket[], b: readonly Bucket[]): Bucket[] {
  const byLe = new Map<number, number>();
  for (const x of a) byLe.set(x.le, (byLe.get(x.le) ?? 0) + x.count);
  for (const x of b) byLe.set(x.le, (byLe.get(x.le) ?? 0) + x.count);
  return sortedBuckets(byLe);
}

/**
 * Observations added since `prev`, bucket by bucket. A histogram that went down was reset
 * (its process restarted): everything it holds now is new.
 */
export function bucketDelta(now: readonly Bucket[], prev: readonly Bucket[] | undefined): Bucket[] {
  if (!prev) return now.map((b) => ({ ...b }));
  const before = new Map(prev.map((b) => [b.le, b.count]));
  const reset = now.some((b) => b.count < (before.get(b.le) ?? 0));
  return now.map((b) => ({ le: b.le, count: reset ? b.count : b.count - (before.get(b.le) ?? 0) }));
}

/** after − before: the observations made between two scrapes (all of `after` after a reset). */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  const prev = new Map(before.buckets.map((b) => [b.le, b.count]));
  const reset = after.count < before.count || after.buckets.some((b) => b.count < (prev.get(b.le) ?? 0));
  if (reset) return { buckets: after.buckets.map((b) => ({ ...b })), sum: after.sum, count: after.count };
  return {
    buckets: bucketDelta(after.buckets, before.buckets),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

// ------------------------------------------------------------------------- quantiles

export interface Quantile {
  value: number;
  /** The rank fell in the +Inf bucket: the true value is above `value`, the highest finite bound. */
  capped: boolean;
}

/** Bucket counts that differ from their predecessor by less than this share are equal (float noise). */
const PRECISION_TOLERANCE = 1e-12;

/**
 * Sorted, one bucket per bound, counts never decreasing: PromQL's clean-up before a
 * quantile, so that data from several series or float sums still has one answer.
 */
function normalizedBuckets(buckets: readonly Bucket[]): Bucket[] {
  const byLe = new Map<number, number>();
  for (const b of buckets) byLe.set(b.le, (byLe.get(b.le) ?? 0) + b.count);
  const out = sortedBuckets(byLe);
  let prev = out[0]?.count ?? 0;
  for (let i = 1; i < out.length; i++) {
    const curr = out[i]!.count;
    const delta = Math.abs(curr - prev);
    if (delta === 0) continue;
    if (delta / curr <= PRECISION_TOLERANCE) out[i]!.count = prev;
    else prev = curr;
  }
  let max = out[0]?.count ?? 0;
  for (const b of out) {
    if (b.count > max) max = b.count;
    else b.count = max;
  }
  return out;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of cumulative buckets, as PromQL's histogram_quantile computes
 * it; q < 0 and q > 1 give -Infinity and +Infinity as there. Undefined where PromQL gives
 * NaN: no observations, no +Inf bucket, fewer than two buckets, q NaN.
 */
export function bucketQuantile(buckets: readonly Bucket[], q: number): Quantile | undefined {
  if (Number.isNaN(q)) return undefined;
  if (q < 0) return { value: Number.NEGATIVE_INFINITY, capped: false };
  if (q > 1) return { value: Number.POSITIVE_INFINITY, capped: false };
  const b = normalizedBuckets(buckets);
  const n = b.length;
  if (n < 2 || b[n - 1]!.le !== Number.POSITIVE_INFINITY) return undefined;
  const observations = b[n - 1]!.count;
  // A negative total is a difference across a reset that was not caught: no answer either.
  if (!(observations > 0)) return undefined;
  const rank = q * observations;
  let i = 0;
  while (i < n - 1 && b[i]!.count < rank) i++;
  if (i === n - 1) return { value: b[n - 2]!.le, capped: true };
  if (i === 0 && b[0]!.le <= 0) return { value: b[0]!.le, capped: false };
  const start = i === 0 ? 0 : b[i - 1]!.le;
  const below = i === 0 ? 0 : b[i - 1]!.count;
  const value = start + (b[i]!.le - start) * ((rank - below) / (b[i]!.count - below));
  // 0/0: q = 0 with an empty first bucket; PromQL answers NaN.
  return Number.isNaN(value) ? undefined : { value, capped: false };
}

/**
 * p-quantile (0..1) of the observations added to a histogram since `prev` (cumulative count
 * by bound, as last seen; empty for "since the start"), interpolated as histogram_quantile
 * does. Undefined when nothing was observed in between.
 */
export function histogramQuantile(
  now: readonly Bucket[],
  prev: ReadonlyMap<number, number>,
  q: number,
): number | undefined {
  const before = [...prev].map(([le, count]) => ({ le, count }));
  return bucketQuantile(bucketDelta(now, before), q)?.value;
}

/** Share of observations at or below a bucket bound; undefined when `le` is not a bound or nothing was observed. */
export function shareAtMost(buckets: readonly Bucket[], le: number): number | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  const b = buckets.find((x) => Math.abs(x.le - le) < 1e-12);
  return total > 0 && b ? b.count / total : undefined;
}

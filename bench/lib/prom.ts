/**
 * Just enough of the Prometheus text format to read the services' /metrics: samples by name
 * and labels, and histogram quantiles from the difference of two scrapes (the figures of one
 * measurement window, not of the process's whole life).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!;
    const raw = m[3]!;
    out.push({
      name: m[1]!,
      labels,
      value: raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? -Infinity : Number(raw),
    });
  }
  return out;
}

function matches(s: Sample, want: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(want)) if (s.labels[k] !== v) return false;
  return true;
}

/** Sum of every sample of `name` whose labels include `want`. */
export function sum(samples: Sample[], name: string, want: Record<string, string> = {}): number {
  let t = 0;
  for (const s of samples) if (s.name === name && matches(s, want)) t += s.value;
  return t;
}

export interface Histogram {
  /** Cumulative counts by upper bound, ascending, ending with +Inf. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

export function histogram(samples: Sample[], name: string, want: Record<string, string> = {}): Histogram {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !matches(s, want)) continue;
    const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return {
    buckets: [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
    sum: sum(samples, `${name}_sum`, want),
    count: sum(samples, `${name}_count`, want),
  };
}

/** after − before: the observations made between the two scrapes. */
export function histDelta(before: Histogram, after: Histogram): Histogram {
  const prev = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/**
 * The q-quantile, interpolated linearly inside its bucket as PromQL's histogram_quantile
 * does (the first bucket starts at 0). In the +Inf bucket there is no upper bound: the
 * highest finite bound is returned and `capped` says the true value is above it.
 */
export function quantile(h: Histogram, q: number): { value: number; capped: boolean } | undefined {
  const total = h.buckets.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return { value: prevLe, capped: true };
      const inBucket = b.count - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return { value: prevLe + (b.le - prevLe) * frac, capped: false };
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return { value: prevLe, capped: true };
}

/** Share of observations at or below a bucket bound (exact when `le` is a bound). */
export function shareAtMost(h: Histogram, le: number): number | undefined {
  const total = h.buckets.at(-1)?.count ?? 0;
  const b = h.buckets.find((x) => Math.abs(x.le - le) < 1e-12);
  return total > 0 && b ? b.count / total : undefined;
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parseProm(await res.text());
}

/** Mean writes in flight per sink between two scrapes: sum of paystream_sink_write_seconds over the wall time. */
export function sinkInFlight(before: Sample[], after: Sample[], seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of after) {
    if (s.name !== "paystream_sink_write_seconds_sum") continue;
    const sink = s.labels.sink ?? "?";
    out[sink] = Math.round(((s.value - sum(before, s.name, { sink })) / seconds) * 100) / 100;
  }
  return out;
}

/** Batches between two scrapes: how many, mean records and mean duration (ms, writes included). */
export function batchStats(
  before: Sample[],
  after: Sample[],
): { batches: number; meanRecords: number; meanMs: number } {
  const n = histDelta(
    histogram(before, "paystream_batch_records"),
    histogram(after, "paystream_batch_records"),
  );
  const d = histDelta(
    histogram(before, "paystream_batch_duration_seconds"),
    histogram(after, "paystream_batch_duration_seconds"),
  );
  return {
    batches: n.count,
    meanRecords: n.count ? Math.round(n.sum / n.count) : 0,
    meanMs: d.count ? Math.round((d.sum / d.count) * 10000) / 10 : 0,
  };
}

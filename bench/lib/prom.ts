/**
 * Scraping the services' /metrics for the benchmarks, and the two figures only the
 * benchmarks derive from them. Reading the text and the histogram arithmetic are
 * src/lib/prom-text.ts, the reader the dashboard and `paystream up` use too.
 */
import {
  histogram,
  histogramDelta,
  parsePrometheusText,
  type Sample,
  sampleSum,
} from "../../src/lib/prom-text.ts";

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parsePrometheusText(await res.text());
}

/** Mean writes in flight per sink between two scrapes: sum of paystream_sink_write_seconds over the wall time. */
export function sinkInFlight(before: Sample[], after: Sample[], seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of after) {
    if (s.name !== "paystream_sink_write_seconds_sum") continue;
    const sink = s.labels.sink ?? "?";
    out[sink] = Math.round(((s.value - sampleSum(before, s.name, { sink })) / seconds) * 100) / 100;
  }
  return out;
}

/** Batches between two scrapes: how many, mean records and mean duration (ms, writes included). */
export function batchStats(
  before: Sample[],
  after: Sample[],
): { batches: number; meanRecords: number; meanMs: number } {
  const n = histogramDelta(
    histogram(before, "paystream_batch_records"),
    histogram(after, "paystream_batch_records"),
  );
  const d = histogramDelta(
    histogram(before, "paystream_batch_duration_seconds"),
    histogram(after, "paystream_batch_duration_seconds"),
  );
  return {
    batches: n.count,
    meanRecords: n.count ? Math.round(n.sum / n.count) : 0,
    meanMs: d.count ? Math.round((d.sum / d.count) * 10000) / 10 : 0,
  };
}

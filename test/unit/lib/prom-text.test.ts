/**
 * The Prometheus text reader and histogram arithmetic shared by the dashboard, `up` and the
 * benchmarks. The expected quantiles were computed by PromQL itself (promtool test rules,
 * histogram_quantile over the same buckets), so these pin the interpolation to Prometheus'.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  addBuckets,
  type Bucket,
  bucketDelta,
  bucketQuantile,
  counterDelta,
  histogram,
  histogramBuckets,
  histogramDelta,
  histogramQuantile,
  parseFloatValue,
  parsePrometheusText,
  sampleSum,
  shareAtMost,
} from "../../../src/lib/prom-text.ts";

const INF = Number.POSITIVE_INFINITY;

function buckets(pairs: [number, number][]): Bucket[] {
  return pairs.map(([le, count]) => ({ le, count }));
}

/** One scrape of a latency histogram with two series (output=a, output=b), as prom-client writes it. */
function scrape(a: [string, number][], extra: string[] = []): string {
  const lines = ["# HELP lat_seconds latency", "# TYPE lat_seconds histogram"];
  let sum = 0;
  for (const [le, n] of a) {
    lines.push(`lat_seconds_bucket{le="${le}",output="a"} ${n}`);
    lines.push(`lat_seconds_bucket{le="${le}",output="b"} ${n * 10}`);
    sum = n;
  }
  lines.push(`lat_seconds_sum{output="a"} ${sum * 0.01}`, `lat_seconds_count{output="a"} ${sum}`);
  return [...lines, ...extra, ""].join("\n");
}

describe("parsePrometheusText", () => {
  it("reads label values with escaped quotes, backslashes, newlines and commas", () => {
    const s = parsePrometheusText(
      [
        'a_total{outcome="ok",msg="say \\"hi\\", then \\\\ and\\nbye"} 12',
        'b{path="/x,y",empty="",trailing="1",} 2',
        'c { spaced = "1" , more="2" } 3',
        'd{odd="\\t kept"} 4',
      ].join("\n"),
    );
    assert.deepEqual(s, [
      { name: "a_total", labels: { outcome: "ok", msg: 'say "hi", then \\ and\nbye' }, value: 12 },
      { name: "b", labels: { path: "/x,y", empty: "", trailing: "1" }, value: 2 },
      { name: "c", labels: { spaced: "1", more: "2" }, value: 3 },
      { name: "d", labels: { odd: "\\t kept" }, value: 4 },
    ]);
  });

  it("keeps NaN and ±Inf values, takes an optional timestamp, and skips comments and junk", () => {
    const s = parsePrometheusText(
      [
        "# HELP g a gauge",
        "# TYPE g gauge",
        "g_nan NaN",
        'h_bucket{le="+Inf"} 7 1700000000000',
        "up_inf +Inf",
        "down_inf -Inf",
        "sci 1.5e-3",
        "  indented 3.5  \r",
        "not a sample line",
        'bad_value{x="1"} twelve',
        'unclosed{x="1} 3',
        "too many 1 2 3",
        '{no_name="x"} 1',
        "",
      ].join("\n"),
    );
    assert.equal(s.length, 6);
    assert.ok(Number.isNaN(s[0]!.value) && s[0]!.name === "g_nan");
    assert.deepEqual(s.slice(1), [
      { name: "h_bucket", labels: { le: "+Inf" }, value: 7 },
      { name: "up_inf", labels: {}, value: INF },
      { name: "down_inf", labels: {}, value: Number.NEGATIVE_INFINITY },
      { name: "sci", labels: {}, value: 0.0015 },
      { name: "indented", labels: {}, value: 3.5 },
    ]);
  });

  it("parses float spellings the way Go's ParseFloat does", () => {
    assert.equal(parseFloatValue("+Inf"), INF);
    assert.equal(parseFloatValue("inf"), INF);
    assert.equal(parseFloatValue("-Inf"), Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(parseFloatValue("NaN")));
    assert.ok(Number.isNaN(parseFloatValue("")));
    assert.equal(parseFloatValue("0.005"), 0.005);
  });
});

describe("histograms", () => {
  it("sums matching series bound by bound, sorted, with sum and count", () => {
    const samples = parsePrometheusText(
      scrape([
        ["0.1", 4],
        ["0.01", 1],
        ["+Inf", 5],
      ]),
    );
    assert.deepEqual(
      histogramBuckets(samples, "lat_seconds", { output: "a" }),
      buckets([
        [0.01, 1],
        [0.1, 4],
        [INF, 5],
      ]),
    );
    assert.deepEqual(
      histogramBuckets(samples, "lat_seconds"),
      buckets([
        [0.01, 11],
        [0.1, 44],
        [INF, 55],
      ]),
      "no label filter: every series",
    );
    const h = histogram(samples, "lat_seconds", { output: "a" });
    assert.equal(h.count, 5);
    assert.equal(h.sum, 0.05);
    assert.deepEqual(histogramBuckets(samples, "missing"), []);
  });

  it("addBuckets merges bucket lists from several processes", () => {
    assert.deepEqual(
      addBuckets(
        buckets([
          [0.1, 1],
          [INF, 2],
        ]),
        buckets([
          [0.01, 3],
          [0.1, 4],
          [INF, 5],
        ]),
      ),
      buckets([
        [0.01, 3],
        [0.1, 5],
        [INF, 7],
      ]),
    );
  });
});

describe("counters and histograms across two scrapes", () => {
  it("counter: increase between scrapes; a counter that went down restarted from zero", () => {
    const first = parsePrometheusText('req_total{code="200"} 100\nreq_total{code="500"} 5\n');
    const second = parsePrometheusText('req_total{code="200"} 150\nreq_total{code="500"} 5\n');
    assert.equal(sampleSum(first, "req_total"), 105);
    assert.equal(sampleSum(second, "req_total", { code: "200" }), 150);
    assert.equal(counterDelta(sampleSum(second, "req_total"), sampleSum(first, "req_total")), 50);
    assert.equal(counterDelta(30, 105), 30, "restart: everything counted since is new");
    assert.equal(counterDelta(100, undefined), 0, "no baseline yet: no increase claimed");
  });

  it("bucketDelta: per-bucket increase, or everything when any bucket went down", () => {
    const prev = buckets([
      [1, 5],
      [INF, 8],
    ]);
    assert.deepEqual(
      bucketDelta(
        buckets([
          [1, 7],
          [INF, 12],
        ]),
        prev,
      ),
      buckets([
        [1, 2],
        [INF, 4],
      ]),
    );
    const afterRestart = buckets([
      [1, 1],
      [INF, 1],
    ]);
    assert.deepEqual(bucketDelta(afterRestart, prev), afterRestart);
    assert.deepEqual(bucketDelta(afterRestart, undefined), afterRestart);
  });

  it("histogramDelta: the observations between two scrapes, and all of the second after a restart", () => {
    const before = histogram(
      parsePrometheusText(
        scrape([
          ["0.1", 4],
          ["+Inf", 5],
        ]),
      ),
      "lat_seconds",
      {
        output: "a",
      },
    );
    const after = histogram(
      parsePrometheusText(
        scrape([
          ["0.1", 10],
          ["+Inf", 20],
        ]),
      ),
      "lat_seconds",
      {
        output: "a",
      },
    );
    const d = histogramDelta(before, after);
    assert.deepEqual(
      d.buckets,
      buckets([
        [0.1, 6],
        [INF, 15],
      ]),
    );
    assert.equal(d.count, 15);
    assert.ok(Math.abs(d.sum - 0.15) < 1e-12);
    assert.deepEqual(histogramDelta(after, before), before, "the second scrape is lower: a restart");
  });
});

describe("quantiles as PromQL's histogram_quantile", () => {
  // Each expectation is what `promtool test rules` returned for histogram_quantile(q, buckets).
  const a = buckets([
    [0.01, 50],
    [0.1, 100],
    [INF, 100],
  ]);
  const d = buckets([
    [1, 2],
    [2, 2],
    [4, 8],
    [INF, 8],
  ]);

  it("interpolates linearly inside the bucket that holds the rank, from 0 in the first", () => {
    assert.deepEqual(bucketQuantile(a, 0.5), { value: 0.01, capped: false });
    assert.ok(Math.abs(bucketQuantile(a, 0.99)!.value - 0.0982) < 1e-12);
    assert.equal(bucketQuantile(d, 0.25)!.value, 1);
    assert.ok(Math.abs(bucketQuantile(d, 0.5)!.value - 8 / 3) < 1e-12);
    assert.equal(bucketQuantile(d, 1)!.value, 4);
    assert.equal(bucketQuantile(d, 0)!.value, 0);
  });

  it("answers the highest finite bound, capped, when the rank is in the +Inf bucket", () => {
    const tail = buckets([
      [0.1, 1],
      [INF, 100],
    ]);
    assert.deepEqual(bucketQuantile(tail, 0.99), { value: 0.1, capped: true });
  });

  it("sums series with the same bound, forces counts monotonic, honours a bound ≤ 0", () => {
    const twoProcesses = buckets([
      [0.005, 3],
      [0.005, 1],
      [0.025, 7],
      [0.025, 9],
      [INF, 8],
      [INF, 10],
    ]);
    assert.deepEqual(bucketQuantile(twoProcesses, 0.9), { value: 0.025, capped: true });
    assert.ok(Math.abs(bucketQuantile(twoProcesses, 0.5)!.value - 0.04 / 3) < 1e-12);
    const dip = buckets([
      [1, 5],
      [2, 3],
      [INF, 6],
    ]);
    assert.deepEqual(bucketQuantile(dip, 0.9), { value: 2, capped: true });
    assert.equal(bucketQuantile(dip, 0.5)!.value, 0.6);
    const negative = buckets([
      [-1, 2],
      [1, 4],
      [INF, 4],
    ]);
    assert.equal(bucketQuantile(negative, 0.25)!.value, -1);
    assert.equal(bucketQuantile(negative, 0.75)!.value, 0);
  });

  it("has no answer where PromQL answers NaN, and ±Inf outside [0, 1]", () => {
    assert.equal(bucketQuantile(a, 1.5)!.value, INF);
    assert.equal(bucketQuantile(a, -0.1)!.value, Number.NEGATIVE_INFINITY);
    assert.equal(bucketQuantile(a, Number.NaN), undefined);
    const noInf = buckets([
      [1, 5],
      [2, 10],
    ]);
    assert.equal(bucketQuantile(noInf, 0.5), undefined, "no +Inf bucket");
    assert.equal(bucketQuantile(buckets([[INF, 5]]), 0.5), undefined, "fewer than two buckets");
    assert.equal(
      bucketQuantile(
        buckets([
          [0.1, 0],
          [INF, 0],
        ]),
        0.5,
      ),
      undefined,
      "no observations",
    );
    const emptyFirst = buckets([
      [0.1, 0],
      [1, 5],
      [INF, 5],
    ]);
    assert.equal(bucketQuantile(emptyFirst, 0), undefined, "0/0 in the first bucket");
  });

  it("histogramQuantile: the quantile of what was observed since prev", () => {
    assert.equal(histogramQuantile(a, new Map(), 0.5), 0.01);
    assert.equal(histogramQuantile(a, new Map(a.map((b) => [b.le, b.count])), 0.99), undefined);
    const prev = new Map([
      [0.01, 50],
      [0.1, 50],
      [INF, 50],
    ]);
    const now = buckets([
      [0.01, 50],
      [0.1, 150],
      [INF, 150],
    ]);
    const mid = histogramQuantile(now, prev, 0.5)!;
    assert.ok(Math.abs(mid - 0.055) < 1e-12, "all 100 new observations are in (0.01, 0.1]");
    const restarted = buckets([
      [0.01, 2],
      [0.1, 2],
      [INF, 2],
    ]);
    assert.equal(histogramQuantile(restarted, prev, 0.5), 0.005, "a reset: what it holds now is new");
  });

  it("shareAtMost: the share of observations at or below a bound", () => {
    assert.equal(shareAtMost(a, 0.01), 0.5);
    assert.equal(shareAtMost(a, 0.05), undefined, "not a bound");
    assert.equal(shareAtMost([], 0.01), undefined);
  });
});

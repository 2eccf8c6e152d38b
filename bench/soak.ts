/**
 * `npm run soak -- --minutes 30`: a benchmark of what grows over a long run. Real Kafka, Redis
 * and PostgreSQL; a collector at a steady --rate (fraud scenarios, duplicates, late,
 * out-of-order and malformed records on, as by default) and --processors replicas in one
 * consumer group.
 *
 * Every --sample: processor heap used and RSS (summed over replicas), window accounts
 * (paystream_window_accounts), with --dedup-shared the dedup keys (the run's own Redis
 * database: its DBSIZE less the alert keys), total lag (brokers), alert p99 (rolling), collector heap and RSS. At the end,
 * per series: the least-squares slope per minute after --warmup, the value at the start and
 * end of that span, and whether it is flat: the fitted change over the span is under
 * --flat-share (10%) of the series' mean there (lag: or under one second of input, the
 * jitter of batch commits). Series that grow by design are said to, with what bounds them.
 * Ends with `paystream verify` (0 lost, 0 doubled, one alert per incident).
 *
 * Measures and reports; never asserts on a figure. Exit 1 only if verify fails, 2 on bad flags.
 *
 *   flock /tmp/paystream-heavy.lock npm run soak -- --minutes 30
 *   npm run soak -- --minutes 0.5 --no-save        a smoke run
 *
 * Writes bench/results/soak-<date>.json and .svg. Services as for `npm run bench`; Redis
 * database --redis-db (12), never one holding data that is not a benchmark's.
 */
import { createClient } from "redis";
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
  writeResults,
} from "./lib/longrun.ts";
import { type CollectorProc, type ProcessorProc, startCollector, startProcessor } from "./lib/pipeline.ts";
import { commonPanels, meanRate, rowPanel, type SampleRow, Sampler } from "./lib/sampler.ts";
import { fmt, round, sleep } from "./lib/stats.ts";
import { type Panel, renderSvg } from "./lib/svg-plot.ts";
import { type Trend, trend } from "./lib/trend.ts";

/** Bytes Redis holds per dedup claim (key ps:dedup:<uuid>, owner value, TTL, dict entry), rounded up. */
const REDIS_BYTES_PER_CLAIM = 200;
/** Keys of the alert store besides the alert hashes: the stream, the active-accounts set, the benchmark marker. */
const ALERT_STORE_FIXED_KEYS = 3;

const FLAGS = {
  minutes: {
    kind: "number",
    default: 30,
    positive: true,
    help: "how long the collector runs (any positive number: 0.5 is a smoke run)",
  },
  rate: { kind: "int", default: 3000, positive: true, help: "steady collector rate, tx/s" },
  processors: { kind: "int", default: 1, min: 1, max: 4, help: "processor replicas in the group" },
  sample: { kind: "duration", default: 10, positive: true, help: "sampling interval" },
  warmup: {
    kind: "duration",
    default: 0,
    min: 0,
    help: "left out of the trends; 0 = min(6 min, a quarter of the run)",
  },
  "flat-share": {
    kind: "number",
    default: 0.1,
    positive: true,
    help: "flat: fitted change over the judged span under this share of the mean",
  },
  "dedup-shared": {
    kind: "boolean",
    default: false,
    help: "run the processors with --dedup-shared (Redis claims, for BigQuery): adds the dedup-keys series; by default dedup lives in the windows and Redis holds no claims",
  },
  "dedup-ttl": {
    kind: "duration",
    default: 600,
    min: 60,
    help: "with --dedup-shared, the processors' --dedup-ttl: dedup keys grow until it, then plateau (production: 1d)",
  },
  ...commonFlags("soak", 12, "--rate"),
} satisfies Record<string, FlagSpec>;

type Flags = FlagValues<typeof FLAGS>;

/** Window of the plotted alert p99: about one alert a second arrives, so a few samples' worth. */
const rollingS = (f: Flags) => Math.max(60, 6 * f.sample);

/** Refuses a run whose dedup claims would push the shared Redis towards its maxmemory (noeviction: writes would fail). */
async function checkRedisHeadroom(run: LongRun, f: Flags): Promise<void> {
  const client = createClient({ url: run.redisUrl });
  await client.connect();
  try {
    const info = await client.info("memory");
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    const max = Number(/maxmemory:(\d+)/.exec(info)?.[1] ?? 0);
    const need = f.rate * Math.min(f["dedup-ttl"], f.minutes * 60) * REDIS_BYTES_PER_CLAIM;
    const mb = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
    process.stdout.write(
      `  Redis: ${mb(used)} used of ${max ? mb(max) : "no maxmemory"}; this run's dedup claims need about ${mb(need)}\n`,
    );
    if (max > 0 && used + need > 0.85 * max) {
      throw new Error(
        `Redis would be over 85% of its maxmemory (${mb(used)} used + about ${mb(need)} of dedup claims of ${mb(max)}): lower --dedup-ttl or --rate`,
      );
    }
  } finally {
    client.destroy();
  }
}

interface SeriesSpec {
  key: string;
  label: string;
  unit: string;
  value: (r: SampleRow, i: number) => number | null;
  /** Judged from this second on (default: the warm-up). */
  fromS?: number;
  floor?: number;
  /** What it should do and why. */
  expect: string;
}

function seriesSpecs(
  f: Flags,
  accounts: number,
  warmupS: number,
  dedupKeys: (number | null)[],
): SeriesSpec[] {
  const ttlS = f["dedup-ttl"];
  const dedupSpec: SeriesSpec = {
    key: "dedupKeys",
    label: "dedup keys (Redis)",
    unit: "keys",
    value: (_r, i) => dedupKeys[i] ?? null,
    fromS: ttlS + 60,
    expect: `one claim per transaction id for --dedup-ttl (${ttlS / 60} min): grows by design to rate × TTL ≈ ${(f.rate * ttlS).toLocaleString("en-US")}, then flat as claims expire (production TTL 24 h: grows for a day)`,
  };
  const specs: SeriesSpec[] = [
    {
      key: "processorHeapMiB",
      label: "processor heap used",
      unit: "MiB",
      value: (r) => r.processorHeapMiB,
      expect:
        "window state (~0.8 KB per account held, dedup ids included, see window accounts) and the token cache (64K accounts a generation): grows with window accounts, flat otherwise",
    },
    {
      key: "processorRssMiB",
      label: "processor RSS",
      unit: "MiB",
      value: (r) => r.processorRssMiB,
      expect: "heap plus V8 reserve, client buffers and pools: follows the heap",
    },
    {
      key: "windowAccounts",
      label: "window accounts",
      unit: "accounts",
      value: (r) => r.windowAccounts,
      expect: `every account seen in the last 24 h keeps a cold history (historyTtlMs): grows to the ${accounts.toLocaleString("en-US")}-account population by design, slower as only rarely active accounts are left`,
    },
    // Without --dedup-shared there are no claims: Redis keys are alerts and cases only.
    ...(f["dedup-shared"] ? [dedupSpec] : []),
    {
      key: "lag",
      label: "total lag",
      unit: "records",
      value: (r) => r.lag,
      floor: f.rate,
      expect: "near 0 while the processors keep up (a batch in flight); growth means they do not",
    },
    {
      key: "alertP99Ms",
      label: "alert p99 (rolling)",
      unit: "ms",
      value: (r) => r.alertP99Ms,
      expect: "flat: nothing on the alert path accumulates",
    },
    {
      key: "collectorHeapMiB",
      label: "collector heap used",
      unit: "MiB",
      value: (r) => r.collectorHeapMiB,
      expect: "population arrays, PII fragment cache (≤ 2^18 slots), resend ring: bounded, flat",
    },
    {
      key: "collectorRssMiB",
      label: "collector RSS",
      unit: "MiB",
      value: (r) => r.collectorRssMiB,
      expect: "follows the collector heap and the producer's buffers: flat",
    },
  ];
  return specs.map((s) => ({ ...s, fromS: s.fromS ?? warmupS }));
}

async function main(): Promise<number> {
  const f = cli(import.meta.url, FLAGS, (file) => plot(file as SoakFile));
  if (typeof f === "number") return f;
  const durationS = f.minutes * 60;
  // At the defaults the window accounts reach the population and V8 has run its first full
  // collections by about 5 min (a 3 min warm-up judged the heap's early peak as a fall).
  const warmupS = f.warmup || Math.min(360, durationS / 4);
  const accounts = f.accounts || cleanPopulation(f.rate);

  const run = await openLongRun("soak", f["redis-db"]);
  let ok = false;
  let collector: CollectorProc | undefined;
  const processors: ProcessorProc[] = [];
  const redis = createClient({ url: run.redisUrl });
  let sampler: Sampler | undefined;
  try {
    process.stdout.write(`${describeMachineLines(run.machine).join("\n")}\n`);
    process.stdout.write(
      `soak: ${f.rate.toLocaleString("en-US")} tx/s for ${f.minutes} min, ${f.processors} processor(s), sample every ${f.sample} s, warm-up ${round(warmupS, 1)} s, ` +
        `${accounts.toLocaleString("en-US")} accounts, ${f["dedup-shared"] ? `shared dedup (Redis), TTL ${f["dedup-ttl"]} s` : "dedup in the windows"}\n`,
    );
    if (f["dedup-shared"]) await checkRedisHeadroom(run, f);
    await redis.connect();
    for (let i = 0; i < f.processors; i++) {
      processors.push(
        await startProcessor(run.ctx, `processor-${i}`, {
          topics: run.topics,
          group: run.group,
          warehouse: run.warehouse,
          flags: [
            "--pii-key",
            run.piiKey,
            ...(f["dedup-shared"] ? ["--dedup-shared", "--dedup-ttl", `${f["dedup-ttl"]}s`] : []),
          ],
        }),
      );
    }
    collector = await startCollector(run.ctx, "collector", run.topics, [
      "--rate",
      String(f.rate),
      "--accounts",
      String(accounts),
    ]);
    const s = new Sampler(
      {
        collector: () => collector,
        processors: async () => processors,
        replicas: () => processors.length,
        lag: () => run.kafka.lag(run.group, run.topics.transactions),
        extra: { redisKeys: () => redis.dbSize() },
      },
      {
        intervalS: f.sample,
        rollingS: rollingS(f),
        rateWindowS: f.sample,
        onRow: (r) => {
          const n = (v: number | null) => (v === null ? "-" : Math.round(v).toLocaleString("en-US"));
          process.stdout.write(
            `  [${(r.t / 60).toFixed(1).padStart(5)} min] in ${n(r.inPerS)}/s out ${n(r.outPerS)}/s lag ${n(r.lag)} | processor heap ${n(r.processorHeapMiB)} MiB rss ${n(r.processorRssMiB)} MiB | ` +
              `window accounts ${n(r.windowAccounts)} | Redis keys ${n(r.extra.redisKeys ?? null)} | alert p99 ${r.alertP99Ms ?? "-"} ms | collector heap ${n(r.collectorHeapMiB)} MiB | machine ${Math.round(r.machineBusy * 100)}% busy\n`,
          );
        },
      },
    );
    sampler = s;
    s.start();
    await sleep(durationS * 1000);
    await s.stop();
    const stopS = s.now();
    await collector.stop();
    process.stdout.write(`  collector stopped after ${(stopS / 60).toFixed(1)} min; draining\n`);
    const { drain, verify } = await drainAndVerify(run, f["drain-timeout"], () =>
      Promise.all(processors.map((p) => p.stop())),
    );

    // Alert hashes are the only other keys that accumulate in the run's database.
    let alertsSoFar = 0;
    const dedupKeys = s.rows.map((r) => {
      alertsSoFar += r.alerts;
      const keys = r.extra.redisKeys ?? null;
      return keys === null ? null : Math.max(0, keys - alertsSoFar - ALERT_STORE_FIXED_KEYS);
    });
    const specs = seriesSpecs(f, accounts, warmupS, dedupKeys);
    const trends = specs.map((sp) => {
      const points = s.rows.map((r, i) => [r.t, sp.value(r, i)] as const);
      const opts = { flatShare: f["flat-share"], ...(sp.floor !== undefined ? { flatFloor: sp.floor } : {}) };
      let t = trend(points, { ...opts, fromS: sp.fromS! });
      let note: string | undefined;
      if (t.n < 3 && sp.fromS! > warmupS) {
        // Still in its growth-by-design stretch when the run ended: shown, not judged.
        t = { ...trend(points, { ...opts, fromS: warmupS }), flat: null };
        note = `not judged: grows by design until ${fmt(sp.fromS! / 60)} min`;
      }
      return {
        key: sp.key,
        label: sp.label,
        unit: sp.unit,
        expect: sp.expect,
        trend: t,
        ...(note ? { note } : {}),
      };
    });
    const rates = {
      meanInPerS: meanRate(s.rows, "produced"),
      meanOutPerS: meanRate(s.rows, "processed"),
      machineBusy: round(s.rows.reduce((a, r) => a + r.machineBusy, 0) / Math.max(1, s.rows.length), 2),
    };
    const table = trendTable(trends, f["flat-share"]);
    process.stdout.write(`${describeMachineLines(run.machine).join("\n")}\n\n`);
    process.stdout.write(
      `${f.minutes} min at ${f.rate.toLocaleString("en-US")} tx/s (in ${fmt(rates.meanInPerS)}/s, out ${fmt(rates.meanOutPerS)}/s), ${f.processors} processor(s); machine ${Math.round(rates.machineBusy * 100)}% busy on average; ` +
        `trends judged after ${round(warmupS, 1)} s${f["dedup-shared"] ? " (dedup keys after the TTL + 1 min)" : ""}; flat = |slope × span| < ${f["flat-share"] * 100}% of the mean (lag: or < ${f.rate.toLocaleString("en-US")} records)\n\n${table}\n\n` +
        `${markdownTable(
          ["series", "grows to / why"],
          trends.map((t) => [t.label, t.expect]),
        )}\n\nverify: ${verify.clean ? "PASS" : "FAIL"} — ${verify.verdict}\n`,
    );
    const json: SoakFile & Record<string, unknown> = {
      ...resultsHeader(run, f),
      accounts,
      warmupS,
      flatDefinition: `|least-squares slope × judged span| < ${f["flat-share"]} × mean of the judged samples (lag: or < ${f.rate} records); judged after the warm-up${f["dedup-shared"] ? " (dedup keys: after the TTL + 60 s)" : ""}`,
      rates,
      drain,
      trends,
      verify,
      samples: s.rows.map((r, i) => ({ ...r, dedupKeys: dedupKeys[i] ?? null })),
    };
    if (f.save) writeResults(run, json, plot(json));
    ok = verify.clean;
    return ok ? 0 : 1;
  } finally {
    await sampler?.stop();
    await collector?.stop();
    await Promise.all(processors.map((p) => p.stop()));
    redis.destroy();
    await run.close({ keepLogs: !ok });
  }
}

/** flat, or which way it moves. */
function verdict(t: Trend, note: string | undefined): string {
  if (note) return note;
  if (t.flat === null) return "not judged (fewer than 3 samples)";
  if (t.flat) return "flat";
  return t.change > 0 ? "GROWS" : "FALLS";
}

function trendTable(
  trends: { label: string; unit: string; trend: Trend; note?: string }[],
  share: number,
): string {
  const rows = trends.map(({ label, unit, trend: t, note }) => [
    label,
    unit,
    fmt(t.start),
    fmt(t.end),
    fmt(t.slopePerMin),
    Number.isNaN(t.relativeChange) ? "n/a" : `${(t.relativeChange * 100).toFixed(1)}%`,
    verdict(t, note),
    `${fmt(t.fromS / 60)}–${fmt(t.toS / 60)} min, n=${t.n}`,
  ]);
  return markdownTable(
    [
      "series",
      "unit",
      "start",
      "end",
      "slope /min",
      `change over span (flat < ${share * 100}%)`,
      "verdict",
      "judged span",
    ],
    rows,
  );
}

/** What plot() reads from the results file (so --replot can redraw an old run). */
interface SoakFile {
  startedAt: string;
  machine: LongRun["machine"];
  flags: Flags;
  warmupS: number;
  verify: { clean: boolean };
  samples: (SampleRow & { dedupKeys: number | null })[];
}

function plot(file: SoakFile): string {
  const { flags: f, samples: rows, warmupS } = file;
  const dedupKeys = rows.map((r) => r.dedupKeys);
  // Runs recorded before the flag existed used Redis claims (then the default).
  const shared = (f as Partial<Flags>)["dedup-shared"] ?? true;
  const clean = file.verify.clean;
  const x = (t: number) => t / 60;
  const memory = (
    title: string,
    heap: (r: SampleRow) => number | null,
    rss: (r: SampleRow) => number | null,
  ) =>
    rowPanel(rows, x, {
      title,
      unit: "MiB",
      lines: [
        { label: "heap used", y: heap },
        { label: "RSS", y: rss },
      ],
    });
  const [rate, alertP99] = commonPanels(rows, x, rollingS(f));
  const panels: Panel[] = [
    memory(
      "Processor memory (summed over replicas)",
      (r) => r.processorHeapMiB,
      (r) => r.processorRssMiB,
    ),
    rowPanel(rows, x, {
      title: "Window accounts (paystream_window_accounts)",
      unit: "accounts",
      lines: [{ label: "accounts", y: (r) => r.windowAccounts }],
    }),
    ...(shared
      ? [
          rowPanel(rows, x, {
            title: "Dedup keys in Redis",
            unit: "keys",
            lines: [{ label: "ps:dedup:* keys", y: (_r, i) => dedupKeys[i] ?? null }],
          }),
        ]
      : []),
    rowPanel(rows, x, {
      title: "Total consumer lag",
      unit: "records",
      lines: [{ label: "lag", y: (r) => r.lag }],
    }),
    alertP99!,
    memory(
      "Collector memory",
      (r) => r.collectorHeapMiB,
      (r) => r.collectorRssMiB,
    ),
    rate!,
  ];
  const m = file.machine;
  return renderSvg({
    title: `paystream soak: ${f.rate.toLocaleString("en-US")} tx/s for ${f.minutes} min, ${f.processors} processor(s) (verify ${clean ? "PASS" : "FAIL"})`,
    subtitle: `${file.startedAt.slice(0, 16)}Z · ${m.cores} CPUs ${m.cpuModel} · Node ${m.node} · Kafka ${m.kafka} · git ${m.git.commit} · ${shared ? `dedup TTL ${f["dedup-ttl"]} s` : "dedup in the windows"}`,
    xLabel: "minutes since start",
    panels,
    markers: [
      { x: warmupS / 60, label: "end of warm-up" },
      ...(shared && f["dedup-ttl"] < f.minutes * 60 ? [{ x: f["dedup-ttl"] / 60, label: "dedup TTL" }] : []),
    ],
  });
}

await runMain("soak", main);

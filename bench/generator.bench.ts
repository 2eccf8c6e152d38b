/**
 * Generator throughput on one core: records/s and µs/record over 1M records, the clock
 * advancing as it would at 100 000 records/s. "+ encode" adds Buffer.from(value), the
 * flattening and UTF-8 copy the Kafka producer does anyway, so the pair brackets the
 * collector's per-record CPU cost. No assertions: it reports.
 *
 *   npx node bench/generator.bench.ts            # the three populations below
 *   npx node bench/generator.bench.ts 250000     # one population of that size
 *
 * Each population runs in its own process, so one run's garbage does not tax the next.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type GeneratedRecord, type GeneratorOptions, TrafficGenerator } from "../src/collector/generator.ts";

const TOTAL = 1_000_000;
const BATCH = 1_000;
const RATE = 100_000;

const configs: { name: string; options: GeneratorOptions }[] = process.argv[2]
  ? [{ name: `${process.argv[2]} accounts`, options: { accounts: Number(process.argv[2]) } }]
  : [
      { name: "100K accounts (default)", options: {} },
      { name: "1M accounts, default cache", options: { accounts: 1_000_000 } },
      { name: "1M accounts, 2^20-slot cache", options: { accounts: 1_000_000, cacheSlots: 1 << 20 } },
    ];

function run(gen: TrafficGenerator, startMs: number, encode: boolean): { ms: number; nowMs: number } {
  const out: GeneratedRecord[] = [];
  let now = startMs;
  let bytes = 0;
  const t0 = performance.now();
  for (let done = 0; done < TOTAL; done += BATCH) {
    gen.fill(out, BATCH, now);
    now += (BATCH / RATE) * 1000;
    if (encode) for (const r of out) bytes += Buffer.from(r.value).byteLength;
  }
  const ms = performance.now() - t0;
  if (encode && bytes === 0) throw new Error("nothing encoded");
  return { ms, nowMs: now };
}

const fmt = (ms: number) =>
  `${Math.round(TOTAL / (ms / 1000))
    .toLocaleString("en-US")
    .padStart(9)} rec/s ${((ms * 1000) / TOTAL).toFixed(2).padStart(6)} µs/rec`;

function bench(name: string, options: GeneratorOptions): void {
  const t0 = performance.now();
  const gen = new TrafficGenerator({ seed: 7, ...options });
  const buildMs = performance.now() - t0;
  let now = Date.UTC(2025, 10, 28, 12);
  now = run(gen, now, false).nowMs; // warm-up: JIT and fragment caches
  const plain = run(gen, now, false);
  const encoded = run(gen, plain.nowMs, true);
  const c = gen.counters();
  console.log(
    `${name.padEnd(30)} generate ${fmt(plain.ms)} | + encode ${fmt(encoded.ms)} | ` +
      `build ${buildMs.toFixed(0)} ms, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB, ` +
      `gap overrides ${((c.cooldownOverrides / (3 * TOTAL)) * 100).toFixed(0)}%`,
  );
}

const only = process.env["GENERATOR_BENCH_CONFIG"];
if (only !== undefined) {
  const { name, options } = configs[Number(only)]!;
  bench(name, options);
} else if (configs.length === 1) {
  bench(configs[0]!.name, configs[0]!.options);
} else {
  for (let i = 0; i < configs.length; i++) {
    spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
      stdio: "inherit",
      env: { ...process.env, GENERATOR_BENCH_CONFIG: String(i) },
    });
  }
}

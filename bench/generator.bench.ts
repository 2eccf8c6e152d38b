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
 * `npm run bench` calls runGeneratorBench() with fewer records.
 */
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type GeneratedRecord, type GeneratorOptions, TrafficGenerator } from "../src/collector/generator.ts";

const BATCH = 1_000;
const RATE = 100_000;

const CONFIGS: { name: string; options: GeneratorOptions }[] = [
  { name: "100K accounts (default)", options: {} },
  { name: "1M accounts, default cache", options: { accounts: 1_000_000 } },
  { name: "1M accounts, 2^20-slot cache", options: { accounts: 1_000_000, cacheSlots: 1 << 20 } },
];

export interface GeneratorResult {
  name: string;
  records: number;
  generateRecPerS: number;
  generateUsPerRec: number;
  encodeRecPerS: number;
  encodeUsPerRec: number;
  buildMs: number;
  heapMiB: number;
  gapOverridesPct: number;
}

function run(
  gen: TrafficGenerator,
  total: number,
  startMs: number,
  encode: boolean,
): { ms: number; nowMs: number } {
  const out: GeneratedRecord[] = [];
  let now = startMs;
  let bytes = 0;
  const t0 = performance.now();
  for (let done = 0; done < total; done += BATCH) {
    gen.fill(out, BATCH, now);
    now += (BATCH / RATE) * 1000;
    if (encode) for (const r of out) bytes += Buffer.from(r.value).byteLength;
  }
  const ms = performance.now() - t0;
  if (encode && bytes === 0) throw new Error("nothing encoded");
  return { ms, nowMs: now };
}

const fmt = (total: number, ms: number) =>
  `${Math.round(total / (ms / 1000))
    .toLocaleString("en-US")
    .padStart(9)} rec/s ${((ms * 1000) / total).toFixed(2).padStart(6)} µs/rec`;

function bench(name: string, options: GeneratorOptions, total: number): GeneratorResult {
  const t0 = performance.now();
  const gen = new TrafficGenerator({ seed: 7, ...options });
  const buildMs = performance.now() - t0;
  let now = Date.UTC(2025, 10, 28, 12);
  now = run(gen, total, now, false).nowMs; // warm-up: JIT and fragment caches
  const plain = run(gen, total, now, false);
  const encoded = run(gen, total, plain.nowMs, true);
  const c = gen.counters();
  const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
  const gapOverridesPct = (c.cooldownOverrides / (3 * total)) * 100;
  console.log(
    `${name.padEnd(30)} generate ${fmt(total, plain.ms)} | + encode ${fmt(total, encoded.ms)} | ` +
      `build ${buildMs.toFixed(0)} ms, heap ${heapMiB.toFixed(0)} MiB, ` +
      `gap overrides ${gapOverridesPct.toFixed(0)}%`,
  );
  return {
    name,
    records: total,
    generateRecPerS: Math.round(total / (plain.ms / 1000)),
    generateUsPerRec: (plain.ms * 1000) / total,
    encodeRecPerS: Math.round(total / (encoded.ms / 1000)),
    encodeUsPerRec: (encoded.ms * 1000) / total,
    buildMs: Math.round(buildMs),
    heapMiB: Math.round(heapMiB),
    gapOverridesPct: Math.round(gapOverridesPct),
  };
}

/** Each chosen population (indices into the table above) in a process of its own. */
export async function runGeneratorBench(
  opts: { records?: number; configs?: number[] } = {},
): Promise<GeneratorResult[]> {
  const total = opts.records ?? 1_000_000;
  const results: GeneratorResult[] = [];
  for (const i of opts.configs ?? CONFIGS.map((_, k) => k)) {
    const out = join(tmpdir(), `paystream-generator-bench-${process.pid}-${i}.json`);
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      stdio: "inherit",
      env: {
        ...process.env,
        GENERATOR_BENCH_CONFIG: String(i),
        GENERATOR_BENCH_RECORDS: String(total),
        GENERATOR_BENCH_OUT: out,
      },
    });
    // Dies with us: a generator spinning on after an interrupted run only steals CPU.
    const kill = () => child.kill("SIGKILL");
    process.once("exit", kill);
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    process.off("exit", kill);
    if (code !== 0) throw new Error(`generator bench ${CONFIGS[i]?.name} failed: exit ${code}`);
    results.push(JSON.parse(readFileSync(out, "utf8")) as GeneratorResult);
    rmSync(out, { force: true });
  }
  return results;
}

if (import.meta.main) {
  const only = process.env.GENERATOR_BENCH_CONFIG;
  const total = Number(process.env.GENERATOR_BENCH_RECORDS ?? 1_000_000);
  if (only !== undefined) {
    const { name, options } = CONFIGS[Number(only)]!;
    const result = bench(name, options, total);
    if (process.env.GENERATOR_BENCH_OUT)
      writeFileSync(process.env.GENERATOR_BENCH_OUT, JSON.stringify(result));
  } else if (process.argv[2]) {
    bench(`${process.argv[2]} accounts`, { accounts: Number(process.argv[2]) }, total);
  } else {
    await runGeneratorBench({ records: total });
  }
}

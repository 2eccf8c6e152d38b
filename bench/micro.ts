/**
 * The in-process benchmarks, each run in a Node process of its own (runIsolated): the domain
 * core and the traffic generator (micro), window-state memory, and the warehouse sinks.
 */
import { fileURLToPath } from "node:url";
import type { CoreBenchResult } from "./core.bench.ts";
import type { GeneratorResult } from "./generator.bench.ts";
import { runIsolated } from "./lib/isolate.ts";
import type { Bench, BenchContext, BenchOutput, Metric } from "./lib/types.ts";
import type { WarehouseResult } from "./warehouse.bench.ts";
import type { WindowMemoryResult } from "./window-memory.bench.ts";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

async function micro(ctx: BenchContext): Promise<BenchOutput> {
  const core = await runIsolated<CoreBenchResult>(ctx.runDir, here("./core.bench.ts"), "runCoreBench", {
    events: ctx.quick ? 100_000 : 500_000,
    accounts: 200_000,
    memoryAccounts: ctx.quick ? 50_000 : 200_000,
    print: true,
  });
  const gen = await runIsolated<GeneratorResult[]>(
    ctx.runDir,
    here("./generator.bench.ts"),
    "runGeneratorBench",
    {
      records: ctx.quick ? 200_000 : 500_000,
      configs: ctx.quick ? [0] : [0, 1, 2],
    },
  );
  const s = core.steadyState;
  const metrics: Metric[] = [
    {
      key: "core.window_rules_ns",
      label: "window add + 6 rules, per event (steady state)",
      value: s.windowRulesNs,
      unit: "ns",
      note: `cold start ${core.coldStart.windowRulesNs} ns; ${core.accounts.toLocaleString("en-US")} skewed accounts`,
    },
    {
      key: "core.mask_ns",
      label: "PII masking per event, default cache",
      value: s.maskDefaultCacheNs,
      unit: "ns",
      note: `memo hit rate ${(100 * core.maskingMemoHitRate.default).toFixed(0)}%`,
    },
    {
      key: "core.mask_large_cache_ns",
      label: "PII masking per event, cache of 200K accounts",
      value: s.maskLargeCacheNs,
      unit: "ns",
      note: `memo hit rate ${(100 * core.maskingMemoHitRate.large).toFixed(0)}%`,
    },
    {
      key: "core.hot_bytes_per_account",
      label: "window state per account, hot (2 events)",
      value: core.memory.hotBytesPerAccount,
      unit: "B",
      note: `cold ${core.memory.coldBytesPerAccount} B; ${core.memory.accounts.toLocaleString("en-US")} accounts`,
    },
  ];
  for (const g of gen) {
    const tag = g.name.startsWith("100K") ? "gen100k" : g.name.includes("2^20") ? "gen1m_bigcache" : "gen1m";
    metrics.push({
      key: `${tag}.rec_per_s`,
      label: `generator, ${g.name}, one core`,
      value: g.generateRecPerS,
      unit: "rec/s",
      note: `${g.generateUsPerRec.toFixed(2)} µs/rec; + encode ${g.encodeRecPerS.toLocaleString("en-US")} rec/s (${g.encodeUsPerRec.toFixed(2)} µs)`,
    });
  }
  return { metrics, details: { core, generator: gen } };
}

async function windowMemory(ctx: BenchContext): Promise<BenchOutput> {
  const sizes = ctx.quick ? [100_000] : [100_000, 1_000_000];
  const metrics: Metric[] = [];
  const details: WindowMemoryResult[] = [];
  for (const n of sizes) {
    const r = await runIsolated<WindowMemoryResult>(
      ctx.runDir,
      here("./window-memory.bench.ts"),
      "runWindowMemory",
      { accounts: n, events: 3 },
      ["--expose-gc"],
    );
    details.push(r);
    const tag = n >= 1_000_000 ? `${n / 1_000_000}m` : `${n / 1000}k`;
    ctx.log(
      `window memory, ${n.toLocaleString("en-US")} accounts x 3 events: ${r.hotBytesPerAccount} B/account heap ` +
        `(${r.heapMiB} MiB), +${r.offHeapBytesPerAccount} B off-heap; cold ${r.coldBytesPerAccount} B`,
    );
    metrics.push({
      key: `${tag}.hot_bytes_per_account`,
      label: `heap per account, ${n.toLocaleString("en-US")} accounts x 3 events in window`,
      value: r.hotBytesPerAccount,
      unit: "B",
      note: `${r.heapMiB} MiB heap; +${r.offHeapBytesPerAccount} B off-heap (expiry queues); cold ${r.coldBytesPerAccount} B`,
    });
  }
  return { metrics, details };
}

async function warehouse(ctx: BenchContext): Promise<BenchOutput> {
  const rows = ctx.quick ? 50_000 : 200_000;
  const results = await runIsolated<WarehouseResult[]>(
    ctx.runDir,
    here("./warehouse.bench.ts"),
    "runWarehouseBench",
    { rows, batch: 5000, print: true },
  );
  const metrics: Metric[] = results.map((r) => {
    const phase = r.phase.startsWith("fresh") ? "fresh" : "replay";
    return {
      key: `${r.backend}.${phase}_rows_per_s`,
      label: `${r.backend}, ${r.phase}, 5,000-row batches`,
      value: r.rowsPerS,
      unit: "rows/s",
      note: `batch p50 ${r.p50.toFixed(0)} ms, max ${r.max.toFixed(0)} ms; ${r.rows.toLocaleString("en-US")} rows`,
    };
  });
  return { metrics, details: results };
}

export const microBench: Bench = {
  name: "micro",
  description: "domain core (window + rules, masking) and traffic generator, in-process, one core",
  estimateS: [40, 8],
  run: micro,
};

export const windowMemoryBench: Bench = {
  name: "window-memory",
  description: "heap per account with 3 events in each window, 100K and 1M accounts, after GC",
  estimateS: [20, 3],
  run: windowMemory,
};

export const warehouseBench: Bench = {
  name: "warehouse",
  description: "DuckDB and PostgreSQL sinks, 5,000-row batches, fresh rows then a full replay",
  estimateS: [12, 4],
  run: warehouse,
};

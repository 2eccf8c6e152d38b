/**
 * Micro-benchmark of the per-event domain core: WindowStore.add + evaluate (the six default
 * rules) and Masker.maskRow (the row the processor writes), over ~1M synthetic events on skewed accounts.
 * No assertions; reports the median ns/event over 20K-event slices (robust to noise from
 * other processes). Run: npx node bench/core.bench.ts [events] [accounts]
 * (`npm run bench` calls runCoreBench() in a process of its own.)
 *
 * Transactions are produced by JSON.parse in chunks outside the timed sections, so strings
 * are fresh (their hashes not yet cached), as they are in the processor.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parse as parseYaml } from "yaml";
import type { Transaction } from "../src/contracts/transaction.ts";
import { Masker } from "../src/core/masking.ts";
import { evaluate, parseRules } from "../src/core/rules.ts";
import { luhnCheckDigit } from "../src/core/schema.ts";
import { WindowStore } from "../src/core/window.ts";

setFlagsFromString("--expose_gc");
const gc = runInNewContext("gc") as () => void;

const RATE_PER_S = 10_000;
const CHUNK = 20_000;
const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);

const CITIES = [
  { country: "FR", city: "Paris", lat: 48.8566, lon: 2.3522 },
  { country: "GB", city: "London", lat: 51.5074, lon: -0.1278 },
  { country: "DE", city: "Berlin", lat: 52.52, lon: 13.405 },
  { country: "US", city: "New York", lat: 40.7128, lon: -74.006 },
  { country: "JP", city: "Tokyo", lat: 35.6762, lon: 139.6503 },
];

function pan(account: number): string {
  const partial = `4${String(account).padStart(14, "0")}`;
  return partial + luhnCheckDigit(partial);
}

export interface CoreBenchOptions {
  /** Events per phase (cold start, then steady state). Default 1M. */
  events?: number;
  /** Accounts the events are spread over (skewed). Default 200K. */
  accounts?: number;
  /** Accounts of the memory probe. Default 200K. */
  memoryAccounts?: number;
  /** Print the human-readable report (the standalone run does). */
  print?: boolean;
}

export interface CorePhase {
  /** Median ns/event over CHUNK-sized slices. */
  windowRulesNs: number;
  maskDefaultCacheNs: number;
  maskLargeCacheNs: number;
  alerts: number;
}

export interface CoreBenchResult {
  events: number;
  accounts: number;
  coldStart: CorePhase;
  steadyState: CorePhase;
  store: ReturnType<WindowStore["stats"]>;
  maskingMemoHitRate: { default: number; large: number };
  memory: { accounts: number; hotBytesPerAccount: number; coldBytesPerAccount: number };
}

export function runCoreBench(opts: CoreBenchOptions = {}): CoreBenchResult {
  const EVENTS = opts.events ?? 1_000_000;
  const ACCOUNTS = opts.accounts ?? 200_000;
  const N = opts.memoryAccounts ?? 200_000;
  const print = opts.print ?? false;

  // Deterministic PRNG (mulberry32) so runs are comparable.
  let seed = 42;
  function rnd(): number {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  function chunkJson(start: number, n: number): string {
    const rows: unknown[] = [];
    for (let i = start; i < start + n; i++) {
      // Zipf-like skew: a few accounts are very busy, most are seen rarely.
      const acct = Math.floor(ACCOUNTS * rnd() ** 1.5);
      const home = CITIES[acct % CITIES.length]!;
      const where = rnd() < 0.002 ? CITIES[Math.floor(rnd() * CITIES.length)]! : home;
      const jitter = rnd() < 0.05 ? Math.floor(rnd() * 5000) : 0; // 5% up to 5 s out of order
      const t = T0 + Math.floor((i * 1000) / RATE_PER_S) - jitter;
      const cents = rnd() < 0.01 ? 100 + Math.floor(rnd() * 200_000) : 100 + Math.floor(rnd() * 15_000);
      rows.push({
        schema_version: 1,
        transaction_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        account_id: `acct-${acct}`,
        card_number: pan(acct),
        cardholder_name: `Holder ${acct}`,
        email: `user${acct}@example.com`,
        ip_address: `10.${(acct >> 16) & 255}.${(acct >> 8) & 255}.${acct & 255}`,
        device_id: `dev-${acct}`,
        amount: (cents / 100).toFixed(2),
        currency: "EUR",
        merchant_id: `m-${Math.floor(rnd() * 5000)}`,
        merchant_category: "5411",
        ...where,
        event_time: new Date(t).toISOString(),
        amountMinor: cents,
        eventTimeMs: t,
      });
    }
    return JSON.stringify(rows);
  }

  const rules = parseRules(
    parseYaml(readFileSync(new URL("../config/rules.default.yaml", import.meta.url), "utf8")),
  );
  const store = new WindowStore();
  const maskers = {
    default: new Masker(randomBytes(32)),
    large: new Masker(randomBytes(32), { cacheEntries: ACCOUNTS }),
  };

  let sink = 0;
  const now = Date.now();
  const since = (t: bigint, n: number) => Number(process.hrtime.bigint() - t) / n;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

  /** Events [from, to): window+rules, then masking with each cache size, timed separately. */
  function run(from: number, to: number): CorePhase {
    const window: number[] = [];
    const mask: number[] = [];
    const maskLarge: number[] = [];
    let alerts = 0;
    for (let start = from; start < to; start += CHUNK) {
      const txs = JSON.parse(chunkJson(start, Math.min(CHUNK, to - start))) as Transaction[];
      const n = txs.length;
      let t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const tx = txs[i]!;
        alerts += evaluate(rules, store.add(tx), tx, now).length;
      }
      window.push(since(t, n));
      t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sink += maskers.default.maskRow(txs[i]!, 0, "0", now, false).amount_minor;
      mask.push(since(t, n));
      t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sink += maskers.large.maskRow(txs[i]!, 0, "0", now, false).amount_minor;
      maskLarge.push(since(t, n));
    }
    return {
      windowRulesNs: Math.round(median(window)),
      maskDefaultCacheNs: Math.round(median(mask)),
      maskLargeCacheNs: Math.round(median(maskLarge)),
      alerts,
    };
  }

  const report = (name: string, p: CorePhase) => {
    if (!print) return;
    const pad = (v: number) => String(v).padStart(5);
    console.log(
      `${name}: window+rules ${pad(p.windowRulesNs)} ns/event (${p.alerts} alerts) | masking ${pad(p.maskDefaultCacheNs)} ns/event` +
        ` (default cache), ${pad(p.maskLargeCacheNs)} ns/event (cache of ${ACCOUNTS})`,
    );
  };

  if (print) {
    console.log(
      `${EVENTS} events x 2 phases, ${ACCOUNTS} accounts (skewed), ${RATE_PER_S}/s event time, 5% up to 5 s out of order`,
    );
  }
  const coldStart = run(0, EVENTS);
  report("cold start  ", coldStart);
  const steadyState = run(EVENTS, 2 * EVENTS);
  report("steady state", steadyState);
  const st = store.stats();
  const hitRate = (m: Masker) => {
    const c = m.cacheStats().account;
    return c.hits / (c.hits + c.misses);
  };
  if (print) {
    console.log(
      `store: ${st.accounts} accounts, ${st.hotAccounts} hot, ${st.windowEvents} window events, ${st.lateEvents} late`,
    );
    for (const [name, m] of Object.entries(maskers)) {
      console.log(
        `masking (${name} cache): per-account memo hit rate ${(100 * hitRate(m)).toFixed(0)}%, ` +
          `${(m.tokensComputed / (2 * EVENTS)).toFixed(2)} HMAC tokens per event`,
      );
    }
  }

  // Memory per account: cold (history only) and hot with a ring of 4.
  function heapBytes(): number {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  }
  const probe = (historyTtlMs: number, eventsEach: number) => {
    const base = heapBytes();
    const s = new WindowStore({ historyTtlMs, maxAccounts: 2 * N });
    const template = JSON.parse(chunkJson(0, 1))[0] as Transaction;
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < eventsEach; k++)
        s.add({ ...template, account_id: `acct-${i}`, eventTimeMs: T0 + k });
    }
    const hot = heapBytes() - base;
    // Push the watermark far ahead and sweep: every ring is released, history stays.
    s.add({ ...template, account_id: "clock", eventTimeMs: T0 + 3_600_000 });
    while (s.sweep(100_000) > 0);
    const cold = heapBytes() - base;
    sink += s.size;
    return [hot / N, cold / N] as const;
  };
  const [hot2, cold] = probe(24 * 3_600_000, 2);
  if (print) {
    console.log(
      `memory: ~${hot2.toFixed(0)} B/account hot (2 events, ring of 4), ~${cold.toFixed(0)} B/account cold (history only); account_id strings included`,
    );
  }
  if (sink === -1) console.log(sink);
  return {
    events: EVENTS,
    accounts: ACCOUNTS,
    coldStart,
    steadyState,
    store: st,
    maskingMemoHitRate: { default: hitRate(maskers.default), large: hitRate(maskers.large) },
    memory: { accounts: N, hotBytesPerAccount: Math.round(hot2), coldBytesPerAccount: Math.round(cold) },
  };
}

if (import.meta.main) {
  runCoreBench({
    events: Number(process.argv[2] ?? 1_000_000),
    accounts: Number(process.argv[3] ?? 200_000),
    print: true,
  });
}

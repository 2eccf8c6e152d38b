/**
 * Window-state memory: V8 heap held by a WindowStore whose accounts each have 3 events in
 * their window (all hot), per account, after a full GC; then the same store after every ring
 * is released (cold: history, newest location, cooldowns only). Account ids and transactions
 * come from JSON.parse like the processor's, so the strings are what the processor keeps.
 *
 *   npx node --expose-gc bench/window-memory.bench.ts [accounts]      (default 1000000)
 *
 * `npm run bench` runs one process per population size (a clean heap for each).
 */
import type { Transaction } from "../src/contracts/transaction.ts";
import { WindowStore } from "../src/core/window.ts";

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const CHUNK = 10_000;

export interface WindowMemoryResult {
  accounts: number;
  eventsPerAccount: number;
  hotAccounts: number;
  windowEvents: number;
  /** heapUsed delta after GC, per account, all rings held. */
  hotBytesPerAccount: number;
  /** Same store after the watermark passed every ring. */
  coldBytesPerAccount: number;
  heapMiB: number;
  /** Off-heap (external + array buffers) delta, per account: the expiry queues' typed arrays. */
  offHeapBytesPerAccount: number;
  /** Heap + off-heap, per account, all rings held: what a replica pays. */
  totalHotBytesPerAccount: number;
  rssDeltaMiB: number;
  addNs: number;
}

function heap(): { used: number; offHeap: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  gc();
  gc();
  const m = process.memoryUsage();
  return { used: m.heapUsed, offHeap: m.external + m.arrayBuffers, rss: m.rss };
}

/** One JSON array of `count` accounts' transactions, event `k` of each, as the wire would carry them. */
function chunkJson(first: number, count: number, k: number): string {
  const rows: string[] = [];
  for (let i = first; i < first + count; i++) {
    const t = T0 + k * 1000 + (i % 997);
    const cents = 500 + ((i * 7919 + k * 104_729) % 20_000);
    const id = String(i).padStart(7, "0");
    // The collector's id shapes (seed as 8 hex digits, then an index); built as text because
    // JSON.stringify of 3M objects would dominate the run.
    rows.push(
      `{"schema_version":1,"transaction_id":"0000${i.toString(16).padStart(8, "0")}-0000-4000-8000-00000000000${k}",` +
        `"account_id":"acc_0000002a_${id}","amount":"${(cents / 100).toFixed(2)}","currency":"EUR",` +
        `"merchant_id":"mer_0000002a_${String((i * 31 + k) % 5000).padStart(5, "0")}","merchant_category":"5411",` +
        `"country":"FR","city":"Paris","lat":${48.8566 + (i % 1000) / 1e5},"lon":${2.3522 - (i % 1000) / 1e5},` +
        `"event_time":"${new Date(t).toISOString()}","amountMinor":${cents},"eventTimeMs":${t}}`,
    );
  }
  return `[${rows.join(",")}]`;
}

export function runWindowMemory(opts: { accounts?: number; events?: number } = {}): WindowMemoryResult {
  const n = opts.accounts ?? 1_000_000;
  const events = opts.events ?? 3;
  // Room for every account: the default cap (1M) would start evicting at exactly 1M.
  const store = new WindowStore({ maxAccounts: 2 * n });
  const base = heap();
  let addNs = 0;
  // Event k of every account, then k+1: a ring fills the way traffic fills it.
  for (let k = 0; k < events; k++) {
    for (let first = 0; first < n; first += CHUNK) {
      const txs = JSON.parse(chunkJson(first, Math.min(CHUNK, n - first), k)) as Transaction[];
      const t = process.hrtime.bigint();
      for (let i = 0; i < txs.length; i++) store.add(txs[i]!);
      addNs += Number(process.hrtime.bigint() - t);
    }
  }
  const hot = heap();
  const st = store.stats();
  // Watermark far ahead, then sweep: every ring goes, history stays (24 h TTL).
  const probe = JSON.parse(chunkJson(n, 1, 0))[0] as Transaction;
  store.add({ ...probe, eventTimeMs: T0 + 3_600_000 });
  while (store.sweep(100_000) > 0);
  const cold = heap();
  const result: WindowMemoryResult = {
    accounts: n,
    eventsPerAccount: events,
    hotAccounts: st.hotAccounts,
    windowEvents: st.windowEvents,
    hotBytesPerAccount: Math.round((hot.used - base.used) / n),
    coldBytesPerAccount: Math.round((cold.used - base.used) / n),
    heapMiB: Math.round((hot.used - base.used) / 2 ** 20),
    offHeapBytesPerAccount: Math.round((hot.offHeap - base.offHeap) / n),
    totalHotBytesPerAccount: Math.round((hot.used + hot.offHeap - base.used - base.offHeap) / n),
    rssDeltaMiB: Math.round((hot.rss - base.rss) / 2 ** 20),
    addNs: Math.round(addNs / (n * events)),
  };
  if (store.size < 0) console.log(store.size); // keeps the store reachable until here
  return result;
}

if (import.meta.main) {
  const r = runWindowMemory({ accounts: Number(process.argv[2] ?? 1_000_000) });
  console.log(
    `${r.accounts.toLocaleString("en-US")} accounts x ${r.eventsPerAccount} events: ` +
      `${r.hotBytesPerAccount} B/account hot (${r.heapMiB} MiB heap), ${r.coldBytesPerAccount} B/account cold, ` +
      `off-heap ${r.offHeapBytesPerAccount} B/account, rss +${r.rssDeltaMiB} MiB, add ${r.addNs} ns`,
  );
}

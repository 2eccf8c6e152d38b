/**
 * Partition state across rebalances: which records each partition has applied to its
 * windows, and rebuilding a gained partition's windows (and rule cooldowns) from Kafka.
 */
import type { RecordSource } from "../contracts/ports.ts";
import { NOT_RECORDED, transactionIdHash } from "../core/account-state.ts";
import { evaluate, type RuleSet } from "../core/rules.ts";
import { type DecodeOptions, decodeTransaction } from "../core/schema.ts";
import type { WindowStore } from "../core/window.ts";

/**
 * The batch loop's view of the per-partition applied offsets (the offset after the last
 * record applied to the windows): whether a record is new to the windows, with the map read
 * and written once per run of a partition rather than once per record (records arrive
 * grouped by partition). Records at or below it (re-delivered after a rebalance) are written
 * again (idempotent) but not applied to the windows twice.
 */
export class AppliedOffsets {
  readonly #next: Map<number, bigint>;
  #part = -1;
  /** Offset of the last record applied in this run, or the partition's next offset - 1. */
  #last = -1n;
  #dirty = false;

  constructor(next: Map<number, bigint>) {
    this.#next = next;
  }

  /** True (and recorded) when the record at offset has not been applied to the windows yet. */
  take(partition: number, offset: bigint): boolean {
    if (partition !== this.#part) {
      this.flush();
      this.#part = partition;
      this.#last = (this.#next.get(partition) ?? 0n) - 1n;
    }
    if (offset <= this.#last) return false;
    this.#last = offset;
    this.#dirty = true;
    return true;
  }

  flush(): void {
    if (this.#dirty) this.#next.set(this.#part, this.#last + 1n);
    this.#dirty = false;
  }
}

export interface Rebuild {
  source: RecordSource;
  partition: number;
  /** The partition's (new, empty) window store. */
  store: WindowStore;
  rules: RuleSet;
  /** Append-time span replayed before `until`. */
  spanMs: number;
  /** Replay stops before this offset: where the partition's applied records end. */
  until: bigint;
  /** The processor's decoder limits: replayed records get the decision they got live. */
  decode: Readonly<DecodeOptions>;
  /** Processing time given to the rules (their alerts are discarded). */
  nowMs: number;
  /** Runs the replay until it succeeds (DependencyHealth.retry); a retried replay skips what it applied. */
  retry: <T>(fn: () => Promise<T>) => Promise<T>;
}

export interface Rebuilt {
  /** Records replayed. */
  replayed: number;
  /** The offset after the last record replayed (or `until`): the partition's applied offset. */
  next: bigint;
}

/**
 * Rebuilds a gained partition's windows (and rule cooldowns) by replaying the span before
 * `until` through the same window and rule code, outputs discarded: those records' outputs
 * were made durable before the commit. Resends are skipped exactly as live (the window's
 * dedup, processor.ts), which also records every replayed id with its offset: the dedup
 * state is rebuilt with the windows. The source must support replay.
 */
export async function rebuildPartition(r: Rebuild): Promise<Rebuilt> {
  let next = r.until;
  const replayed = await r.retry(() =>
    r.source.replay!(
      r.partition,
      r.spanMs,
      (records) => {
        for (const rec of records) {
          if (rec.offset >= next) next = rec.offset + 1n;
          const at = Math.min(rec.timestamp, r.nowMs);
          const res = decodeTransaction(rec.value, r.decode, at);
          if (!res.ok) continue;
          const tx = res.tx;
          const idHash = transactionIdHash(tx.transaction_id);
          if (r.store.recordedOffset(tx, idHash) !== NOT_RECORDED) continue;
          evaluate(r.rules, r.store.add(tx, at, Number(rec.offset), idHash), tx, r.nowMs);
        }
      },
      r.until,
    ),
  );
  return { replayed, next };
}

/**
 * The processor pipeline. Per fetched batch, in partition order:
 *
 *   decode + validate ─► invalid → DLQ record (original bytes, PANs redacted, reason)
 *   dedup (local cache, then ONE shared-store round trip for the rest)
 *   per event: window add → rules → alerts; mask → warehouse row
 *   writes, concurrently: alerts → alert store (Redis) first, DLQ + alerts → log, rows → warehouse
 *   commit each partition's offset once every write of that batch and every earlier batch is durable
 *
 * Rules run on every event as it arrives: batching exists only for I/O. Compute of the next
 * batch overlaps the writes of the previous ones (bounded by maxInFlight), which keeps both
 * latency and throughput; commits still happen strictly in batch order.
 */

import type { Alert } from "../contracts/alert.ts";
import { alertToJson } from "../contracts/alert.ts";
import type {
  AlertStore,
  InRecord,
  OutRecord,
  PartitionOffset,
  RecordSink,
  RecordSource,
  Warehouse,
} from "../contracts/ports.ts";
import type { TransactionRow } from "../contracts/rows.ts";
import { Topics } from "../contracts/topics.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, type Transaction } from "../contracts/transaction.ts";
import type { Deduper } from "../core/dedup.ts";
import { ErrorCodes, isPaystreamError } from "../core/errors.ts";
import type { Masker } from "../core/masking.ts";
import { evaluate, type RuleSet } from "../core/rules.ts";
import { decodeTransaction, luhnValid } from "../core/schema.ts";
import { WindowStore, type WindowStoreOptions } from "../core/window.ts";
import type { Logger } from "../lib/log.ts";
import { Coalescer } from "./coalesce.ts";
import type { ProcessorMetrics } from "./metrics.ts";

export interface ProcessorDeps {
  source: RecordSource;
  sink: RecordSink;
  alertStore: AlertStore;
  warehouse: Warehouse;
  deduper: Deduper;
  masker: Masker;
  metrics: ProcessorMetrics;
  log: Logger;
  now?: () => number;
  /** Called once when the processor cannot go on (a write that can never succeed); the service exits. */
  onFatal?: (err: unknown) => void;
}

export interface ProcessorOptions {
  rules: RuleSet;
  window?: WindowStoreOptions;
  maxMessageBytes?: number;
  /**
   * Batches whose writes may be in flight at once: compute (and alerts) of the next batches
   * go on while earlier ones are still being written to the warehouse.
   */
  maxInFlight?: number;
  /** Rows computed but not yet durable in the warehouse before fetching waits (memory bound). */
  maxPendingRows?: number;
  /** Backoff cap between retries of a failing write. */
  maxBackoffMs?: number;
  dlqTopic?: string;
  alertsTopic?: string;
  /** Append-time span replayed to rebuild a gained partition (default window + lateness + 5 s). */
  recoverySpanMs?: number;
}

interface BatchOutputs {
  alerts: Alert[];
  alertRecords: InRecord[];
  rows: TransactionRow[];
  rowRecords: InRecord[];
  logRecords: OutRecord[];
  offsets: PartitionOffset[];
  firstTimestamp: number;
}

/** Why the processor is not ready, per dependency; empty when ready. */
export type Health = Map<string, string>;

const PAN_RUN = /\d{12,19}/g;

/** Replaces Luhn-valid card-number-like digit runs (12–19 digits) so a DLQ record never carries a PAN. */
export function redactPans(text: string): { text: string; redacted: number } {
  let redacted = 0;
  const out = text.replace(PAN_RUN, (run) => {
    if (!luhnValid(run)) return run;
    redacted++;
    return `${run.slice(0, 6)}${"*".repeat(run.length - 10)}${run.slice(-4)}`;
  });
  return { text: out, redacted };
}

/**
 * #compute's view of the per-partition applied offsets (Processor.#appliedNext): whether a
 * record is new to the windows, with the map read and written once per run of a partition
 * rather than once per record (records arrive grouped by partition).
 */
class AppliedOffsets {
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

/**
 * Warehouse writes per table that may run at once (PostgreSQL's pool has 4 connections; one
 * DuckDB file serialises them itself). Batches beyond that are merged into the next write.
 */
const WAREHOUSE_WRITERS = 4;

export class Processor {
  readonly #d: ProcessorDeps;
  readonly #o: Required<Omit<ProcessorOptions, "window">> & { window: WindowStoreOptions };
  readonly #now: () => number;
  /** One window store per partition: per-partition watermarks, and revocation drops exactly that state. */
  readonly #stores = new Map<number, WindowStore>();
  #rules: RuleSet;
  #inFlight: Promise<void>[] = [];
  #commitChain: Promise<void> = Promise.resolve();
  #closed = false;
  readonly health: Health = new Map();
  readonly #lastTimestamp = new Map<number, number>();
  /**
   * Per partition, the offset after the last record applied to the windows. Records at or
   * below it (re-delivered after a rebalance) are written again (idempotent) but not applied
   * to the windows twice. Kept across revocation: it bounds the next recovery's replay.
   */
  readonly #appliedNext = new Map<number, bigint>();
  /** Partitions whose state is being rebuilt; batches wait for them. */
  readonly #recovering = new Map<number, Promise<void>>();
  /** Totals for status lines and tests. */
  readonly totals = {
    records: 0,
    ok: 0,
    duplicates: 0,
    invalid: 0,
    late: 0,
    alerts: 0,
    batches: 0,
    /** Valid rows (and alerts) the warehouse refused for good; in the DLQ. */
    warehouseRejected: 0,
  };
  readonly alertsByRule = new Map<string, number>();
  /**
   * Warehouse writes of consecutive batches merged while one is running (see Coalescer):
   * the warehouse pays one transaction per round trip, not per fetched batch.
   */
  readonly #rowWriter: Coalescer<TransactionRow, InRecord>;
  readonly #alertWriter: Coalescer<Alert, InRecord>;

  constructor(deps: ProcessorDeps, opts: ProcessorOptions) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#rules = opts.rules;
    this.#o = {
      maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
      maxInFlight: 16,
      maxPendingRows: 50_000,
      maxBackoffMs: 2000,
      dlqTopic: Topics.dlq,
      alertsTopic: Topics.alerts,
      window: {},
      recoverySpanMs: (opts.window?.windowMs ?? 60_000) + (opts.window?.allowedLatenessMs ?? 10_000) + 5000,
      ...opts,
    };
    const warehouse = deps.warehouse;
    const wh = warehouse.name;
    for (const dependency of ["dedup", "alert_store", "kafka", "commit", wh, `${wh}_alerts`])
      deps.metrics.dependencyUp.set({ dependency }, 1);
    this.#rowWriter = new Coalescer(
      (rows, records) =>
        this.#writeOrDeadLetter(
          rows,
          records,
          "transactionIds",
          (r) => r.transaction_id,
          (part) => this.#timed(wh, () => warehouse.writeTransactions(part)),
        ),
      this.#o.maxPendingRows,
      WAREHOUSE_WRITERS,
    );
    this.#alertWriter = new Coalescer(
      (alerts, records) =>
        this.#writeOrDeadLetter(
          alerts,
          records,
          "alertIds",
          (a) => a.alertId,
          (part) => this.#timed(`${wh}_alerts`, () => warehouse.writeAlerts(part)),
        ),
      this.#o.maxPendingRows,
      WAREHOUSE_WRITERS,
    );
  }

  get rules(): RuleSet {
    return this.#rules;
  }

  /** Swaps the rule set between two batches; window state is untouched. */
  setRules(rules: RuleSet): void {
    this.#rules = rules;
  }

  windowAccounts(): number {
    let n = 0;
    for (const s of this.#stores.values()) n += s.size;
    return n;
  }

  async start(): Promise<void> {
    await this.#d.source.start({
      onBatch: (records) => this.#onBatch(records),
      onAssigned: (parts) => {
        this.#d.metrics.rebalances.inc();
        for (const { partition } of parts) {
          this.#stores.set(partition, this.#newStore());
          if (this.#d.source.replay) {
            const p = this.#recover(partition).finally(() => this.#recovering.delete(partition));
            this.#recovering.set(partition, p);
          }
        }
        this.#d.metrics.assignedPartitions.inc(parts.length);
        this.#d.log.info({ partitions: parts.map((p) => p.partition) }, "partitions assigned");
      },
      onHealth: (dependency, problem) => {
        if (problem === undefined) {
          if (this.#setHealth(dependency, undefined))
            this.#d.log.info({ dependency }, "dependency recovered");
          return;
        }
        if (!this.health.has(dependency))
          this.#d.log.warn({ dependency, err: problem }, "dependency failing, retrying");
        this.#setHealth(dependency, problem);
        this.#d.metrics.sinkErrors.inc({ sink: dependency });
      },
      onRevoked: (parts) => {
        this.#d.metrics.rebalances.inc();
        for (const { partition } of parts) {
          this.#stores.delete(partition);
          this.#lastTimestamp.delete(partition);
          this.#d.metrics.lagRecords.remove(String(partition));
          this.#d.metrics.lagSeconds.remove(String(partition));
        }
        this.#d.metrics.assignedPartitions.dec(parts.length);
        this.#d.log.info({ partitions: parts.map((p) => p.partition) }, "partitions revoked");
      },
    });
  }

  #newStore(): WindowStore {
    return new WindowStore(this.#o.window);
  }

  #store(partition: number): WindowStore {
    let s = this.#stores.get(partition);
    if (s === undefined) {
      s = this.#newStore();
      this.#stores.set(partition, s);
    }
    return s;
  }

  async #onBatch(records: InRecord[]): Promise<void> {
    // A partition's records are processed only on top of its rebuilt state.
    if (this.#recovering.size > 0) await Promise.all(this.#recovering.values());
    const started = performance.now();
    const out = await this.#compute(records);
    const writes = this.#write(out).then(() => {
      this.#d.metrics.batchDuration.observe((performance.now() - started) / 1000);
    });
    // Commit in batch order: each commit waits for its own writes and for every earlier commit.
    const committed = Promise.all([this.#commitChain, writes]).then(() =>
      this.#retry("commit", () => this.#d.source.commit(out.offsets)),
    );
    this.#commitChain = committed;
    committed.catch((err) => this.#fatal(err));
    this.#inFlight.push(committed);
    // Backpressure: the next batch is fetched only while few enough batches, and rows, wait
    // for their writes. Alerts of new batches are then not held behind the warehouse.
    while (
      this.#inFlight.length > 0 &&
      (this.#inFlight.length >= this.#o.maxInFlight || this.#rowWriter.pending > this.#o.maxPendingRows)
    ) {
      await this.#inFlight.shift();
    }
  }

  /**
   * Rebuilds a newly assigned partition's windows (and rule cooldowns) by replaying the
   * window + lateness span before its committed offset through the same window and rule
   * code, outputs discarded: those records' outputs were made durable before the commit.
   * Resends inside the span are skipped so they do not inflate the windows.
   */
  async #recover(partition: number): Promise<void> {
    const t0 = performance.now();
    const store = this.#store(partition);
    const seen = new Set<string>();
    const rules = this.#rules;
    const now = this.#now();
    const spanMs = Math.max(
      this.#o.recoverySpanMs,
      (this.#o.window.windowMs ?? 60_000) + (this.#o.window.allowedLatenessMs ?? 10_000),
    );
    const until = this.#appliedNext.get(partition) ?? 0n;
    let next = until;
    const replayed = await this.#retry("recovery", () =>
      this.#d.source.replay!(
        partition,
        spanMs,
        (records) => {
          for (const r of records) {
            if (r.offset >= next) next = r.offset + 1n;
            const res = decodeTransaction(r.value, this.#o.maxMessageBytes);
            if (!res.ok || seen.has(res.tx.transaction_id)) continue;
            seen.add(res.tx.transaction_id);
            evaluate(rules, store.add(res.tx), res.tx, now);
          }
        },
        until,
      ),
    );
    this.#appliedNext.set(partition, next);
    const seconds = (performance.now() - t0) / 1000;
    this.#d.metrics.recoveryDuration.observe(seconds);
    this.#d.metrics.recoveryRecords.inc(replayed);
    if (replayed > 0) {
      this.#d.log.info(
        { partition, replayed, accounts: store.size, seconds },
        "partition state rebuilt from Kafka",
      );
    }
  }

  /** Waits until every batch handed to the processor is durable and committed. */
  async drain(): Promise<void> {
    const pending = this.#inFlight;
    this.#inFlight = [];
    await Promise.all(pending);
  }

  async #compute(records: InRecord[]): Promise<BatchOutputs> {
    const m = this.#d.metrics;
    const maxBytes = this.#o.maxMessageBytes;
    const logRecords: OutRecord[] = [];
    const valid: Transaction[] = [];
    const validRecords: InRecord[] = [];
    const owners: string[] = [];
    /** Per valid record, its offset as text: shared by the dedup owner and the row. */
    const offsetTexts: string[] = [];
    const lastOffset = new Map<number, bigint>();
    let firstTimestamp = Number.POSITIVE_INFINITY;

    // Records come grouped by partition: per-partition bookkeeping only where the partition changes.
    let part = -1;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.partition !== part) {
        if (part >= 0) this.#lastTimestamp.set(part, records[i - 1]!.timestamp);
        part = r.partition;
      }
      lastOffset.set(r.partition, r.offset);
      if (r.timestamp < firstTimestamp) firstTimestamp = r.timestamp;
      const res = decodeTransaction(r.value, maxBytes);
      if (res.ok) {
        const offset = r.offset.toString();
        valid.push(res.tx);
        validRecords.push(r);
        offsetTexts.push(offset);
        owners.push(`${r.partition}:${offset}`);
      } else {
        logRecords.push(this.#dlqRecord(r, res.reason, res.detail));
        m.dlq.inc({ reason: res.reason });
        this.totals.invalid++;
      }
    }
    if (part >= 0) this.#lastTimestamp.set(part, records[records.length - 1]!.timestamp);
    m.records.inc({ outcome: "invalid" }, records.length - valid.length);

    const now = this.#now();
    const fresh = valid.length
      ? await this.#retry("dedup", () => this.#d.deduper.filterBatch(valid, owners, now))
      : [];

    const alerts: Alert[] = [];
    const alertRecords: InRecord[] = [];
    const rows: TransactionRow[] = [];
    const rowRecords: InRecord[] = [];
    const rules = this.#rules;
    const masker = this.#d.masker;
    const applied = new AppliedOffsets(this.#appliedNext);
    let store: WindowStore | undefined;
    let storePart = -1;
    let dups = 0;
    let late = 0;
    for (let i = 0; i < valid.length; i++) {
      if (!fresh[i]) {
        dups++;
        continue;
      }
      const tx = valid[i]!;
      const rec = validRecords[i]!;
      let isLate = false;
      let raised: readonly Alert[] = [];
      if (applied.take(rec.partition, rec.offset)) {
        if (rec.partition !== storePart) {
          storePart = rec.partition;
          store = this.#store(storePart);
        }
        const state = store!.add(tx);
        isLate = state.curLate;
        raised = evaluate(rules, state, tx, now);
      }
      if (isLate) late++;
      for (let k = 0; k < raised.length; k++) {
        const a = raised[k]!;
        a.maskedCard = masker.maskCard(tx.card_number);
        alerts.push(a);
        alertRecords.push(rec);
        logRecords.push({
          topic: this.#o.alertsTopic,
          key: a.accountId,
          value: alertToJson(a),
          headers: { alert_id: a.alertId },
        });
        m.alerts.inc({ rule: a.ruleId, severity: a.severity });
        this.alertsByRule.set(a.ruleId, (this.alertsByRule.get(a.ruleId) ?? 0) + 1);
      }
      rows.push(masker.maskRow(tx, rec.partition, offsetTexts[i]!, now, isLate));
      rowRecords.push(rec);
    }
    applied.flush();
    const ok = valid.length - dups;
    m.records.inc({ outcome: "ok" }, ok - late);
    if (late) m.records.inc({ outcome: "late" }, late);
    if (dups) {
      m.records.inc({ outcome: "duplicate" }, dups);
      m.dedupHits.inc(dups);
    }
    m.batchSize.observe(records.length);
    const t = this.totals;
    t.records += records.length;
    t.ok += ok;
    t.duplicates += dups;
    t.late += late;
    t.alerts += alerts.length;
    t.batches++;

    const offsets: PartitionOffset[] = [];
    for (const [partition, offset] of lastOffset) {
      offsets.push({ topic: records[0]!.topic, partition, offset: offset + 1n });
    }
    return { alerts, alertRecords, rows, rowRecords, logRecords, offsets, firstTimestamp };
  }

  #dlqRecord(r: InRecord, reason: string, detail: string): OutRecord {
    const { text, redacted } = redactPans(r.value.toString("utf8"));
    return {
      topic: this.#o.dlqTopic,
      ...(r.key === undefined ? {} : { key: r.key }),
      value: text,
      headers: {
        reason,
        detail: detail.slice(0, 500),
        source_topic: r.topic,
        source_partition: String(r.partition),
        source_offset: r.offset.toString(),
        source_timestamp: String(r.timestamp),
        pans_redacted: String(redacted),
      },
    };
  }

  async #write(out: BatchOutputs): Promise<void> {
    const d = this.#d;
    const m = d.metrics;
    const alertStore =
      out.alerts.length === 0
        ? Promise.resolve()
        : this.#timed("alert_store", () => d.alertStore.writeAlerts(out.alerts)).then(() => {
            const now = this.#now();
            for (const r of out.alertRecords)
              m.e2eLatency.observe({ output: "alert_store" }, (now - r.timestamp) / 1000);
          });
    const log =
      out.logRecords.length === 0
        ? Promise.resolve()
        : this.#timed("kafka", () => d.sink.send(out.logRecords));
    const warehouse = Promise.all([
      this.#rowWriter.push(out.rows, out.rowRecords),
      this.#alertWriter.push(out.alerts, out.alertRecords),
    ]).then(() => {
      const now = this.#now();
      const h = m.e2eLatency.labels({ output: "warehouse" });
      for (const r of out.rowRecords) h.observe((now - r.timestamp) / 1000);
    });
    await Promise.all([alertStore, log, warehouse]);
  }

  /** A write retried until it succeeds, its duration observed per sink. */
  async #timed(sink: string, fn: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    await this.#retry(sink, fn);
    this.#d.metrics.sinkLatency.observe({ sink }, (performance.now() - t0) / 1000);
  }

  /**
   * Writes items to the warehouse; rows the warehouse refuses for good (PS_WAREHOUSE_REJECTED)
   * go to the DLQ with the reason and the rest is written again, so one bad row neither stops
   * the partition nor loops forever. The sink names the refused rows when it can; when it
   * cannot (a constraint it does not know, e.g. one an operator added), the batch is split in
   * halves until the refused rows stand alone: log2(batch) extra writes, only on rejection.
   */
  async #writeOrDeadLetter<T>(
    items: T[],
    records: InRecord[],
    detail: "transactionIds" | "alertIds",
    keyOf: (item: T) => string,
    write: (items: T[]) => Promise<void>,
  ): Promise<void> {
    while (items.length > 0) {
      try {
        await write(items);
        return;
      } catch (err) {
        if (!isPaystreamError(err) || err.code !== ErrorCodes.WAREHOUSE_REJECTED) throw err;
        const named = err.details[detail];
        const refused = new Set(Array.isArray(named) ? (named as string[]) : []);
        if (items.length === 1) refused.add(keyOf(items[0]!));
        else if (!items.some((it) => refused.has(keyOf(it)))) {
          const half = items.length >>> 1;
          await this.#writeOrDeadLetter(items.slice(0, half), records.slice(0, half), detail, keyOf, write);
          await this.#writeOrDeadLetter(items.slice(half), records.slice(half), detail, keyOf, write);
          return;
        }
        const keep: T[] = [];
        const keepRecords: InRecord[] = [];
        const dead: OutRecord[] = [];
        for (let i = 0; i < items.length; i++) {
          const key = keyOf(items[i]!);
          if (!refused.has(key)) {
            keep.push(items[i]!);
            keepRecords.push(records[i]!);
            continue;
          }
          const dlq = this.#dlqRecord(records[i]!, "warehouse_rejected", (err as Error).message);
          dlq.headers![detail === "transactionIds" ? "transaction_id" : "alert_id"] = key;
          if (detail === "alertIds") dlq.value = alertToJson(items[i] as Alert);
          dead.push(dlq);
        }
        await this.#retry("kafka", () => this.#d.sink.send(dead));
        this.#d.metrics.dlq.inc({ reason: "warehouse_rejected" }, dead.length);
        this.totals.warehouseRejected += dead.length;
        this.#d.log.warn(
          { refused: dead.length, [detail]: [...refused].slice(0, 10), err: (err as Error).message },
          "warehouse refused rows: dead-lettered, writing the rest",
        );
        items = keep;
        records = keepRecords;
      }
    }
  }

  /**
   * Retries a write until it succeeds (outages are waited out, offsets are held meanwhile),
   * reporting the dependency as not ready while it fails. Non-retriable errors are rethrown.
   */
  async #retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let attempt = 0;
    for (;;) {
      try {
        const v = await fn();
        if (attempt > 0) {
          this.#setHealth(what, undefined);
          this.#d.log.info({ dependency: what, attempts: attempt + 1 }, "dependency recovered");
        }
        return v;
      } catch (err) {
        if (this.#closed || (isPaystreamError(err) && !err.retriable)) throw err;
        attempt++;
        this.#d.metrics.sinkErrors.inc({ sink: what });
        this.#setHealth(what, (err as Error).message);
        if (attempt === 1 || attempt % 20 === 0) {
          this.#d.log.warn(
            { dependency: what, attempt, err: (err as Error).message },
            "write failed, retrying",
          );
        }
        await new Promise((r) =>
          setTimeout(r, Math.min(this.#o.maxBackoffMs, 50 * 2 ** Math.min(attempt, 10))),
        );
      }
    }
  }

  /** Records a dependency failing (problem) or fine (undefined); true if that changed it. */
  #setHealth(dependency: string, problem: string | undefined): boolean {
    const was = this.health.has(dependency);
    if (problem === undefined) this.health.delete(dependency);
    else this.health.set(dependency, problem);
    this.#d.metrics.dependencyUp.set({ dependency }, problem === undefined ? 1 : 0);
    return was !== (problem !== undefined);
  }

  /** Refreshes lag gauges (records and seconds) from the source. */
  async refreshLag(): Promise<Map<number, bigint>> {
    const all = await this.#d.source.lag();
    // Only partitions this replica owns: after a rebalance the client may still report others.
    const lag = new Map([...all].filter(([p]) => this.#stores.has(p)));
    const now = this.#now();
    for (const [partition, records] of lag) {
      const p = String(partition);
      this.#d.metrics.lagRecords.set({ partition: p }, Number(records));
      const last = this.#lastTimestamp.get(partition);
      this.#d.metrics.lagSeconds.set(
        { partition: p },
        records > 0n && last !== undefined ? (now - last) / 1000 : 0,
      );
    }
    this.#d.metrics.windowAccounts.set(this.windowAccounts());
    return lag;
  }

  #fatal(err: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#d.log.error({ err }, "processor stopped: an output cannot be written");
    this.#d.onFatal?.(err);
  }

  /** Graceful stop: no new batches, everything in flight made durable and committed, then disconnect. */
  async close(): Promise<void> {
    await this.#d.source.stop();
    await this.drain().catch(() => {});
    this.#closed = true;
    await this.#d.source.close();
  }
}

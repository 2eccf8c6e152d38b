/**
 * The processor pipeline. Per fetched batch, in partition order:
 *
 *   decode + validate ─► invalid → DLQ record (masked projection, sealed original, reason)
 *   dedup (local cache, then ONE shared-store round trip for the rest)
 *   per event: window add → rules → alerts; mask → warehouse row
 *   writes, concurrently: alerts → alert store (Redis) first, DLQ + alerts → log, rows → warehouse
 *   commit each partition's offset once every write of that batch and every earlier batch is durable
 *
 * Rules run on every event as it arrives: batching exists only for I/O. Compute of the next
 * batch overlaps the writes of the previous ones (bounded by maxInFlight), which keeps both
 * latency and throughput; commits still happen strictly in batch order.
 *
 * The parts with their own concerns live beside it: dead-letter.ts (DLQ records, warehouse
 * refusals), health.ts (retries and readiness), recovery.ts (applied offsets, rebuilding a
 * gained partition), coalesce.ts (merged warehouse writes).
 *
 * Over 500 lines on purpose: the batch path — compute, writes, commit ordering and backpressure —
 * is one piece of reasoning; dead-lettering, health and recovery live in their own modules.
 */

import type { Alert } from "../contracts/alert.ts";
import { alertToJson } from "../contracts/alert.ts";
import { defaultRecoverySpanMs, ProcessorDefaults } from "../contracts/defaults.ts";
import type {
  AlertStore,
  CaseStore,
  InRecord,
  OutRecord,
  PartitionOffset,
  RecordSink,
  RecordSource,
  Warehouse,
} from "../contracts/ports.ts";
import type { TransactionRow } from "../contracts/rows.ts";
import { Topics } from "../contracts/topics.ts";
import {
  DEFAULT_MAX_AMOUNT_MINOR,
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_MAX_FUTURE_SKEW_MS,
  type Transaction,
} from "../contracts/transaction.ts";
import { NOT_RECORDED, transactionIdHash } from "../core/account-state.ts";
import type { Deduper } from "../core/dedup.ts";
import type { DlqKey } from "../core/dlq-crypto.ts";
import type { Masker } from "../core/masking.ts";
import { evaluate, type RuleSet } from "../core/rules.ts";
import { type DecodeOptions, decodeOptionsFrom, decodeTransaction } from "../core/schema.ts";
import { WindowStore, type WindowStoreOptions } from "../core/window.ts";
import type { Logger } from "../lib/log.ts";
import { CaseStatusSync } from "./case-sync.ts";
import { Coalescer } from "./coalesce.ts";
import { type DeadLetterDeps, DeadLetters, writeOrDeadLetter } from "./dead-letter.ts";
import { DependencyHealth, type Health } from "./health.ts";
import type { ProcessorMetrics } from "./metrics.ts";
import { AppliedOffsets, rebuildPartition } from "./recovery.ts";

export type { Health } from "./health.ts";

export interface ProcessorDeps {
  source: RecordSource;
  sink: RecordSink;
  alertStore: AlertStore;
  warehouse: Warehouse;
  /**
   * The optional shared dedup tier (Redis), for sinks that cannot refuse a duplicate key
   * themselves: a long horizon across replicas at one round trip per batch. Without it, dedup
   * is the window's (partition-local, rebuilt with the windows) plus the warehouse key.
   */
  deduper?: Deduper;
  /**
   * Cases (docs/cases.md): each batch's live alerts are filed once the alert store holds them,
   * and the touched cases upserted into the warehouse's fraud_cases, before the commit. The
   * analysts' status changes are synced from its change feed into fraud_cases (case-sync.ts).
   */
  caseStore?: CaseStore;
  masker: Masker;
  /**
   * Seals the original of each DLQ record for `paystream dlq redrive` (raw_enc header).
   * Without it DLQ records carry only the masked projection.
   */
  dlqKey?: DlqKey;
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
  /** How long a free warehouse writer waits for 1000 rows before writing fewer (0: at once). */
  warehouseLingerMs?: number;
  /** Backoff cap between retries of a failing write. */
  maxBackoffMs?: number;
  dlqTopic?: string;
  alertsTopic?: string;
  /** Append-time span replayed to rebuild a gained partition (default window + lateness + 5 s). */
  recoverySpanMs?: number;
  /**
   * Input bounds (docs/processor.md, "Validation"): events further ahead of processing time,
   * older, or larger than these go to the DLQ and never reach a window.
   */
  maxFutureSkewMs?: number;
  maxAgeMs?: number;
  maxAmountMinor?: number;
  /** How often case status changes are synced into the warehouse (with a case store). */
  caseSyncIntervalMs?: number;
  /** See ProcessorDefaults.partitionStallMs; checked whenever lag is refreshed. */
  partitionStallMs?: number;
}

interface BatchOutputs {
  alerts: Alert[];
  /** Raised by shadow rules: only the alert store's shadow area gets them. */
  shadowAlerts: Alert[];
  alertRecords: InRecord[];
  rows: TransactionRow[];
  rowRecords: InRecord[];
  logRecords: OutRecord[];
  offsets: PartitionOffset[];
  firstTimestamp: number;
}

/**
 * Warehouse writes per table that may run at once (PostgreSQL's pool has 4 connections; one
 * DuckDB file serialises them itself). Batches beyond that are merged into the next write.
 */
const WAREHOUSE_WRITERS = 4;

export class Processor {
  readonly #d: ProcessorDeps;
  readonly #o: Required<Omit<ProcessorOptions, "window">> & { window: WindowStoreOptions };
  /** Decoder limits, validated once; every record is decoded at min(now, its append time). */
  readonly #decode: Readonly<DecodeOptions>;
  readonly #now: () => number;
  /** One window store per partition: per-partition watermarks, and revocation drops exactly that state. */
  readonly #stores = new Map<number, WindowStore>();
  #rules: RuleSet;
  /** The rules-log version #rules came from (undefined: rules not from the log). */
  #rulesVersion: number | undefined;
  #inFlight: Promise<void>[] = [];
  #commitChain: Promise<void> = Promise.resolve();
  /** Case filing, one batch after another: a case's warehouse row never goes back to an older state. */
  #caseChain: Promise<void> = Promise.resolve();
  /** Copies analysts' status changes into fraud_cases; with a case store and writeCases only. */
  readonly #caseSync: CaseStatusSync | undefined;
  #closed = false;
  readonly #deps: DependencyHealth;
  /** Why the processor is not ready, per dependency; empty when ready. */
  readonly health: Health;
  readonly #lastTimestamp = new Map<number, number>();
  /**
   * Per partition, the offset after the last record applied to the windows (AppliedOffsets).
   * Kept across revocation: it bounds the next recovery's replay.
   */
  readonly #appliedNext = new Map<number, bigint>();
  /** Partitions whose state is being rebuilt; batches wait for them. */
  readonly #recovering = new Map<number, Promise<void>>();
  /** Batches handed over and not yet committed (or failed). */
  #uncommitted = 0;
  /** Per owned partition, when its last record arrived (or it was assigned). */
  readonly #lastArrival = new Map<number, number>();
  /** Per partition, the offset this replica last committed (for the stall log). */
  readonly #committedNext = new Map<number, bigint>();
  /** Partitions found stalled at the previous lag refresh: a stall must be seen twice. */
  #suspects = new Set<number>();
  #lastStallRestart = Number.NEGATIVE_INFINITY;
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
  readonly shadowAlertsByRule = new Map<string, number>();
  /** DLQ records: masked projection, sealed original (dead-letter.ts). */
  readonly #letters: DeadLetters;
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
      maxMessageBytes: ProcessorDefaults.maxMessageBytes,
      maxInFlight: ProcessorDefaults.maxInFlight,
      maxPendingRows: ProcessorDefaults.maxPendingRows,
      warehouseLingerMs: ProcessorDefaults.warehouseLingerMs,
      maxBackoffMs: ProcessorDefaults.maxBackoffMs,
      dlqTopic: Topics.dlq,
      alertsTopic: Topics.alerts,
      window: {},
      recoverySpanMs: defaultRecoverySpanMs(opts.window?.windowMs, opts.window?.allowedLatenessMs),
      maxFutureSkewMs: DEFAULT_MAX_FUTURE_SKEW_MS,
      maxAgeMs: DEFAULT_MAX_EVENT_AGE_MS,
      maxAmountMinor: DEFAULT_MAX_AMOUNT_MINOR,
      caseSyncIntervalMs: ProcessorDefaults.caseSyncIntervalMs,
      partitionStallMs: ProcessorDefaults.partitionStallMs,
      ...opts,
    };
    this.#decode = decodeOptionsFrom(this.#o);
    this.#deps = new DependencyHealth(deps.metrics, deps.log, this.#o.maxBackoffMs, () => this.#closed);
    this.health = this.#deps.health;
    const warehouse = deps.warehouse;
    const wh = warehouse.name;
    this.#deps.up("alert_store", "kafka", "commit", wh, `${wh}_alerts`);
    if (deps.deduper) this.#deps.up("dedup");
    if (deps.caseStore) this.#deps.up("case_store", `${wh}_cases`);
    this.#caseSync =
      deps.caseStore && warehouse.writeCases
        ? new CaseStatusSync({
            store: deps.caseStore,
            warehouse,
            health: this.#deps,
            metrics: deps.metrics,
            log: deps.log,
            now: this.#now,
            intervalMs: this.#o.caseSyncIntervalMs,
          })
        : undefined;
    this.#letters = new DeadLetters(this.#o.dlqTopic, deps.masker, deps.dlqKey);
    const deadLetters: DeadLetterDeps = {
      letters: this.#letters,
      send: (records) => this.#deps.retry("kafka", () => deps.sink.send(records)),
      metrics: deps.metrics,
      log: deps.log,
      onDeadLettered: (n) => {
        this.totals.warehouseRejected += n;
      },
    };
    const writers = {
      concurrency: WAREHOUSE_WRITERS,
      lingerMs: this.#o.warehouseLingerMs,
      fillItems: ProcessorDefaults.warehouseFillRows,
    };
    this.#rowWriter = new Coalescer(
      (rows, records) =>
        writeOrDeadLetter(
          deadLetters,
          rows,
          records,
          "transactionIds",
          (r) => r.transaction_id,
          (part) => this.#deps.timed(wh, () => warehouse.writeTransactions(part)),
        ),
      this.#o.maxPendingRows,
      writers,
    );
    this.#alertWriter = new Coalescer(
      (alerts, records) =>
        writeOrDeadLetter(
          deadLetters,
          alerts,
          records,
          "alertIds",
          (a) => a.alertId,
          (part) => this.#deps.timed(`${wh}_alerts`, () => warehouse.writeAlerts(part)),
        ),
      this.#o.maxPendingRows,
      writers,
    );
  }

  get rules(): RuleSet {
    return this.#rules;
  }

  get rulesVersion(): number | undefined {
    return this.#rulesVersion;
  }

  /**
   * Swaps the rule set between two batches (compute is synchronous, so a batch runs on one
   * set); window state, history and cooldowns are untouched. `version` is stamped on alerts.
   */
  setRules(rules: RuleSet, version?: number): void {
    this.#rules = rules;
    this.#rulesVersion = version;
    this.#d.metrics.rulesVersion.set(version ?? 0);
  }

  windowAccounts(): number {
    let n = 0;
    for (const s of this.#stores.values()) n += s.size;
    return n;
  }

  /** The partitions this replica owns, and those whose state is still being rebuilt. */
  partitions(): { assigned: number[]; recovering: number[] } {
    const sorted = (it: Iterable<number>) => [...it].sort((a, b) => a - b);
    return { assigned: sorted(this.#stores.keys()), recovering: sorted(this.#recovering.keys()) };
  }

  async start(): Promise<void> {
    await this.#d.source.start({
      onBatch: (records) => this.#onBatch(records),
      onAssigned: (parts) => {
        this.#d.metrics.rebalances.inc();
        const now = this.#now();
        for (const { partition } of parts) {
          this.#stores.set(partition, this.#newStore());
          this.#lastArrival.set(partition, now);
          if (this.#d.source.replay) {
            const p = this.#recover(partition).finally(() => this.#recovering.delete(partition));
            this.#recovering.set(partition, p);
          }
        }
        this.#d.metrics.assignedPartitions.inc(parts.length);
        this.#d.log.info({ partitions: parts.map((p) => p.partition) }, "partitions assigned");
      },
      onHealth: (dependency, problem) => this.#deps.report(dependency, problem),
      // A consumer error no retry can fix (not authorized, topic deleted): stop, commit nothing more.
      onFatal: (err) => this.#fatal(err),
      onRevoked: (parts) => {
        this.#d.metrics.rebalances.inc();
        for (const { partition } of parts) {
          this.#stores.delete(partition);
          this.#lastTimestamp.delete(partition);
          this.#lastArrival.delete(partition);
          this.#suspects.delete(partition);
          this.#d.metrics.lagRecords.remove(String(partition));
          this.#d.metrics.lagSeconds.remove(String(partition));
        }
        this.#d.metrics.assignedPartitions.dec(parts.length);
        this.#d.log.info({ partitions: parts.map((p) => p.partition) }, "partitions revoked");
      },
    });
    this.#caseSync?.start();
  }

  #newStore(): WindowStore {
    return new WindowStore({ maxFutureSkewMs: this.#o.maxFutureSkewMs, ...this.#o.window });
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
    this.#uncommitted++;
    const arrived = this.#now();
    let part = -1;
    for (let i = 0; i < records.length; i++) {
      const p = records[i]!.partition;
      if (p !== part) {
        part = p;
        this.#lastArrival.set(p, arrived);
      }
    }
    const out = await this.#compute(records).catch((err) => {
      this.#uncommitted--;
      throw err;
    });
    const writes = this.#write(out).then(() => {
      this.#d.metrics.batchDuration.observe((performance.now() - started) / 1000);
    });
    // Commit in batch order: each commit waits for its own writes and for every earlier commit.
    const committed = Promise.all([this.#commitChain, writes])
      .then(() => this.#deps.retry("commit", () => this.#d.source.commit(out.offsets)))
      .then(() => {
        for (const o of out.offsets) this.#committedNext.set(o.partition, o.offset);
      })
      .finally(() => this.#uncommitted--);
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

  /** Rebuilds a newly assigned partition's state from Kafka (recovery.ts). */
  async #recover(partition: number): Promise<void> {
    const t0 = performance.now();
    const store = this.#store(partition);
    const { replayed, next } = await rebuildPartition({
      source: this.#d.source,
      partition,
      store,
      rules: this.#rules,
      // Never shorter than what a window can see, whatever was configured.
      spanMs: Math.max(
        this.#o.recoverySpanMs,
        (this.#o.window.windowMs ?? ProcessorDefaults.windowMs) +
          (this.#o.window.allowedLatenessMs ?? ProcessorDefaults.allowedLatenessMs),
      ),
      until: this.#appliedNext.get(partition) ?? 0n,
      decode: this.#decode,
      nowMs: this.#now(),
      retry: (fn) => this.#deps.retry("recovery", fn),
    });
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
    const decode = this.#decode;
    // Processing time for this batch. Each record is judged at min(now, its append time), so a
    // record gets the same decision live, after a backlog and in a recovery replay.
    const now = this.#now();
    const logRecords: OutRecord[] = [];
    const valid: Transaction[] = [];
    const validRecords: InRecord[] = [];
    const deduper = this.#d.deduper;
    /** Per valid record, the Kafka record that claims its id in the shared dedup tier. */
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
      const res = decodeTransaction(r.value, decode, Math.min(r.timestamp, now));
      if (res.ok) {
        const offset = r.offset.toString();
        valid.push(res.tx);
        validRecords.push(r);
        offsetTexts.push(offset);
        if (deduper) owners.push(`${r.partition}:${offset}`);
      } else {
        logRecords.push(this.#letters.record(r, res.reason, res.detail));
        m.dlq.inc({ reason: res.reason });
        this.totals.invalid++;
      }
    }
    if (part >= 0) this.#lastTimestamp.set(part, records[records.length - 1]!.timestamp);
    m.records.inc({ outcome: "invalid" }, records.length - valid.length);

    const fresh =
      deduper && valid.length
        ? await this.#deps.retry("dedup", () => deduper.filterBatch(valid, owners, now))
        : undefined;

    const alerts: Alert[] = [];
    const alertRecords: InRecord[] = [];
    const rows: TransactionRow[] = [];
    const rowRecords: InRecord[] = [];
    const rules = this.#rules;
    const rulesVersion = this.#rulesVersion;
    const shadowAlerts: Alert[] = [];
    const masker = this.#d.masker;
    const applied = new AppliedOffsets(this.#appliedNext);
    /** Ids of this batch's rows that no window holds (too late for one): see below. */
    let unwindowed: Set<string> | undefined;
    let store: WindowStore | undefined;
    let storePart = -1;
    let dups = 0;
    let late = 0;
    for (let i = 0; i < valid.length; i++) {
      if (fresh !== undefined && !fresh[i]) {
        dups++;
        continue;
      }
      const tx = valid[i]!;
      const rec = validRecords[i]!;
      if (rec.partition !== storePart) {
        storePart = rec.partition;
        store = this.#store(storePart);
      }
      // Dedup in the window (docs/processor.md, "Dedup"): a resend finds its original among
      // its account's window events, recorded with another offset. The same offset found
      // again is this very record redelivered: its row is written again (idempotent).
      const offset = Number(rec.offset);
      const idHash = transactionIdHash(tx.transaction_id);
      const recorded = store!.recordedOffset(tx, idHash);
      if (recorded !== NOT_RECORDED && recorded !== offset) {
        dups++;
        continue;
      }
      let isLate = false;
      let raised: readonly Alert[] = [];
      if (applied.take(rec.partition, rec.offset)) {
        const state = store!.add(tx, Math.min(rec.timestamp, now), offset, idHash);
        isLate = state.curLate;
        raised = evaluate(rules, state, tx, now);
        if (state.curIndex < 0) {
          // Too late for any window, so not recorded there: a second copy in this batch
          // would be a second row in one warehouse statement. Rare, hence the lazy set.
          unwindowed ??= new Set();
          if (unwindowed.has(tx.transaction_id)) {
            dups++;
            continue;
          }
          unwindowed.add(tx.transaction_id);
        }
      }
      if (isLate) late++;
      rows.push(masker.maskRow(tx, rec.partition, offsetTexts[i]!, now, isLate));
      rowRecords.push(rec);
      for (let k = 0; k < raised.length; k++) {
        const shadow = rules.shadowIds.has(raised[k]!.ruleId);
        // The row above memoised the account's masks: the card costs no second token.
        const a: Alert = {
          ...raised[k]!,
          maskedCard: masker.cardOf(tx),
          ...(rulesVersion === undefined ? {} : { ruleSetVersion: rulesVersion }),
          ...(shadow ? { shadow } : {}),
        };
        if (shadow) {
          // Counted like a live alert, but never on a live output (feed, Kafka, warehouse).
          shadowAlerts.push(a);
          m.shadowAlerts.inc({ rule: a.ruleId });
          this.shadowAlertsByRule.set(a.ruleId, (this.shadowAlertsByRule.get(a.ruleId) ?? 0) + 1);
          continue;
        }
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
    return { alerts, shadowAlerts, alertRecords, rows, rowRecords, logRecords, offsets, firstTimestamp };
  }

  async #write(out: BatchOutputs): Promise<void> {
    const d = this.#d;
    const m = d.metrics;
    const alertStore =
      out.alerts.length === 0
        ? Promise.resolve()
        : this.#deps
            .timed("alert_store", () => d.alertStore.writeAlerts(out.alerts))
            .then(() => {
              const now = this.#now();
              for (const r of out.alertRecords)
                m.e2eLatency.observe({ output: "alert_store" }, (now - r.timestamp) / 1000);
            });
    const log =
      out.logRecords.length === 0
        ? Promise.resolve()
        : this.#deps.timed("kafka", () => d.sink.send(out.logRecords));
    const warehouse = Promise.all([
      this.#rowWriter.push(out.rows, out.rowRecords),
      this.#alertWriter.push(out.alerts, out.alertRecords),
    ]).then(() => {
      const now = this.#now();
      const h = m.e2eLatency.labels({ output: "warehouse" });
      for (const r of out.rowRecords) h.observe((now - r.timestamp) / 1000);
    });
    const writeShadow = d.alertStore.writeShadowAlerts?.bind(d.alertStore);
    const shadow =
      out.shadowAlerts.length === 0 || writeShadow === undefined
        ? Promise.resolve()
        : this.#deps.timed("alert_store", () => writeShadow(out.shadowAlerts));
    const cases = d.caseStore ? alertStore.then(() => this.#fileCases(out.alerts)) : undefined;
    await Promise.all([alertStore, log, warehouse, shadow, cases]);
  }

  /**
   * Files a batch's live alerts into cases, then writes the touched cases to the warehouse.
   * Shadow alerts never get here: #compute keeps them apart.
   */
  #fileCases(live: readonly Alert[]): Promise<void> {
    const store = this.#d.caseStore;
    if (store === undefined || live.length === 0) return Promise.resolve();
    const warehouse = this.#d.warehouse;
    const wh = warehouse.name;
    const run = async (): Promise<void> => {
      const touched = await this.#deps.retry("case_store", () => store.fileAlerts(live));
      if (touched.length === 0) return;
      const ids = new Set(live.map((a) => a.alertId));
      let fresh = 0;
      let joined = 0;
      for (const c of touched) {
        const isNew = ids.has(c.caseId) ? 1 : 0;
        fresh += isNew;
        for (const h of c.hits) if (ids.has(h.alertId)) joined++;
        joined -= isNew;
      }
      const m = this.#d.metrics.casesFiled;
      if (fresh) m.inc({ outcome: "new" }, fresh);
      if (joined > 0) m.inc({ outcome: "joined" }, joined);
      if (warehouse.writeCases) await this.#deps.timed(`${wh}_cases`, () => warehouse.writeCases!(touched));
    };
    const next = this.#caseChain.then(run);
    this.#caseChain = next.catch(() => {});
    return next;
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
    this.#checkStalls(lag, now);
    return lag;
  }

  /**
   * The stall watchdog. A partition this replica owns whose lag stays above 0 while none of
   * its records arrive, and nothing is in flight or being rebuilt, is not being consumed: the
   * client stopped fetching it, or its last commit never reached the group (a commit made
   * while the partition was briefly revoked is skipped, and with no new records nothing
   * commits it again). Either way records sit unprocessed with no error anywhere. Seen at two
   * lag refreshes in a row, it is logged, counted, and the consumer rejoins: every partition
   * is read again from its committed offset, and outputs are idempotent.
   */
  #checkStalls(lag: Map<number, bigint>, now: number): void {
    const stallMs = this.#o.partitionStallMs;
    if (stallMs <= 0 || this.#closed) return;
    if (this.#uncommitted > 0 || this.#recovering.size > 0) {
      this.#suspects.clear();
      return;
    }
    const stalled = new Set<number>();
    for (const [partition, records] of lag) {
      const arrived = this.#lastArrival.get(partition);
      if (records > 0n && arrived !== undefined && now - arrived >= stallMs) stalled.add(partition);
    }
    const confirmed = [...stalled].filter((p) => this.#suspects.has(p)).sort((a, b) => a - b);
    this.#suspects = stalled;
    if (confirmed.length === 0 || now - this.#lastStallRestart < stallMs) return;
    this.#lastStallRestart = now;
    this.#suspects.clear();
    this.#d.metrics.partitionStalls.inc(confirmed.length);
    const detail = confirmed.map((p) => ({
      partition: p,
      lag: String(lag.get(p)),
      idleMs: now - (this.#lastArrival.get(p) ?? now),
      committedByThisReplica: this.#committedNext.get(p)?.toString() ?? null,
      appliedNext: this.#appliedNext.get(p)?.toString() ?? null,
    }));
    const restart = this.#d.source.restart;
    this.#d.log.warn(
      { stalled: detail, action: restart ? "rejoin" : "none" },
      "owned partitions have lag but no records arrive",
    );
    restart?.call(this.#d.source, `partitions ${confirmed.join(",")} stalled with lag for ${stallMs} ms`);
  }

  #fatal(err: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#d.log.error({ err }, "processor stopped: an output cannot be written");
    this.#d.onFatal?.(err);
  }

  /**
   * Graceful stop: no new batches, everything in flight made durable and committed, then
   * disconnect. The status sync stops here too, before the caller closes the warehouse; once
   * closed, a sync write still retrying gives up (the next start rereads the day's changes).
   */
  async close(): Promise<void> {
    await this.#d.source.stop();
    await this.drain().catch(() => {});
    this.#closed = true;
    await this.#caseSync?.stop();
    await this.#d.source.close();
  }
}

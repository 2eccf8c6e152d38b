/**
 * A Processor on the embedded adapters, for unit tests without servers: the embedded log as
 * source and sink, the embedded alert store, the in-memory dedup store, a Masker with the test
 * key, and test doubles for what the embedded adapters cannot show:
 *
 * - MemoryWarehouse: a transactional in-memory warehouse that can fail (retriable), refuse
 *   rows for good (PS_WAREHOUSE_REJECTED, naming them or not) and hold writes until the test
 *   releases them, so the order in which writes finish is the test's choice, not the clock's.
 * - ObservedSource: the embedded source with every commit, stop and close recorded in order.
 * - ReplayingSource: a consumer-group member over the embedded log that starts from the
 *   group's committed offsets, can lose and regain partitions, and implements `replay` (the
 *   embedded source has none), delivering batches only when the test says so.
 */
import type { Registry } from "prom-client";
import { EmbeddedAlertStore } from "../../../src/adapters/embedded/alerts.ts";
import { EmbeddedLog, EmbeddedSink, EmbeddedSource } from "../../../src/adapters/embedded/log.ts";
import type { Alert } from "../../../src/contracts/alert.ts";
import type {
  InRecord,
  OutRecord,
  PartitionOffset,
  RecordSink,
  RecordSource,
  SourceHandlers,
  Warehouse,
} from "../../../src/contracts/ports.ts";
import type { TransactionRow } from "../../../src/contracts/rows.ts";
import { Deduper, type SharedDedupStore } from "../../../src/core/dedup.ts";
import type { DlqKey } from "../../../src/core/dlq-crypto.ts";
import { ErrorCodes, PaystreamError } from "../../../src/core/errors.ts";
import type { RuleSet } from "../../../src/core/rules.ts";
import { createProcessorMetrics, type ProcessorMetrics } from "../../../src/processor/metrics.ts";
import { Processor, type ProcessorOptions } from "../../../src/processor/processor.ts";
import {
  defaultRules,
  silentLogger,
  testMasker,
  testRegistry,
  txJson,
  waitFor,
} from "../../helpers/fixtures.ts";

export const IN = "test.transactions";
export const DLQ = "test.dlq";
export const ALERTS = "test.alerts";
export const PARTITIONS = 4;
/**
 * Event times start a minute before the wall clock at load, and the processor's clock (NOW)
 * is the wall clock at load: event times stay plausible whichever clock the processor checks
 * them against (its own, or the log's append time). No test asserts on either.
 */
const WALL = Math.floor(Date.now() / 1000) * 1000;
export const EVENT_T0 = WALL - 60_000;
export const NOW = WALL;

// ---- waiting without asserting time ------------------------------------------------------------

/** Lets every queued promise continuation run (one macrotask turn). */
export const settle = () => new Promise<void>((r) => setImmediate(r));

/** Waits until cond() holds (polling every millisecond; the deadline only names a hang). */
export function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  return waitFor(cond, 10_000, what, 1);
}

// ---- the warehouse double ----------------------------------------------------------------------

export interface WarehouseCall {
  ids: string[];
  outcome: "ok" | "failed" | "refused" | "pending";
}

interface HeldWrite {
  ids: string[];
  release: () => void;
}

/**
 * An in-memory Warehouse. Writes are transactional: a failed or refused write stores nothing.
 * Rows are keyed by transaction_id and alerts by alert_id (idempotent, like the real ones),
 * and every successful write of an id is counted so a test can tell "stored once" from
 * "written twice".
 */
export class MemoryWarehouse implements Warehouse {
  readonly name = "memwh";
  readonly rows = new Map<string, TransactionRow>();
  readonly alerts = new Map<string, Alert>();
  /** Successful writes per transaction_id / alert_id. */
  readonly rowWrites = new Map<string, number>();
  readonly alertWrites = new Map<string, number>();
  /** Every writeTransactions call, in call order. */
  readonly calls: WarehouseCall[] = [];
  /** Transaction writes waiting for the test to release them (in call order). */
  readonly held: HeldWrite[] = [];
  #failNext = 0;
  #failRetriable = true;
  #failing = false;
  #refuse: { match: (row: TransactionRow) => boolean; named: boolean } | undefined;
  #holding = false;

  /** The next n transaction writes fail: with a retriable error (an outage) unless told otherwise. */
  failNext(n: number, retriable = true): void {
    this.#failNext = n;
    this.#failRetriable = retriable;
  }

  /** Every transaction write fails (retriable) until setFailing(false). */
  setFailing(failing: boolean): void {
    this.#failing = failing;
  }

  /**
   * A write containing a row that `match` selects is refused for good (PS_WAREHOUSE_REJECTED),
   * naming the refused transaction ids in the error's details or not.
   */
  refuse(match: (row: TransactionRow) => boolean, named: boolean): void {
    this.#refuse = { match, named };
  }

  /** From now on transaction writes wait in `held` until released. */
  hold(): void {
    this.#holding = true;
  }

  /** Releases every held write and stops holding new ones. */
  releaseAll(): void {
    this.#holding = false;
    for (const w of this.held.splice(0)) w.release();
  }

  async writeTransactions(rows: TransactionRow[]): Promise<void> {
    const call: WarehouseCall = { ids: rows.map((r) => r.transaction_id), outcome: "pending" };
    this.calls.push(call);
    if (this.#holding) {
      await new Promise<void>((release) => this.held.push({ ids: call.ids, release }));
    }
    if (this.#failing || this.#failNext > 0) {
      const retriable = this.#failing || this.#failRetriable;
      if (this.#failNext > 0) this.#failNext--;
      call.outcome = "failed";
      throw new PaystreamError(ErrorCodes.WAREHOUSE_UNAVAILABLE, "memwh: connection refused", { retriable });
    }
    const refused = this.#refuse ? rows.filter(this.#refuse.match) : [];
    if (refused.length > 0) {
      call.outcome = "refused";
      const ids = refused.map((r) => r.transaction_id);
      throw new PaystreamError(ErrorCodes.WAREHOUSE_REJECTED, "memwh: new row violates check constraint", {
        details: this.#refuse!.named ? { transactionIds: ids } : {},
      });
    }
    for (const r of rows) {
      this.rows.set(r.transaction_id, r);
      this.rowWrites.set(r.transaction_id, (this.rowWrites.get(r.transaction_id) ?? 0) + 1);
    }
    call.outcome = "ok";
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    for (const a of alerts) {
      this.alerts.set(a.alertId, a);
      this.alertWrites.set(a.alertId, (this.alertWrites.get(a.alertId) ?? 0) + 1);
    }
  }

  async close(): Promise<void> {}
}

// ---- sink and sources ---------------------------------------------------------------------------------

/**
 * The embedded sink, with every record sent kept as sent: the embedded log stores key and value
 * only, and the DLQ's contract is also in its headers.
 */
export class ObservedSink implements RecordSink {
  readonly #inner: RecordSink;
  readonly sent: OutRecord[] = [];

  constructor(inner: RecordSink) {
    this.#inner = inner;
  }
  async send(records: OutRecord[]): Promise<void> {
    await this.#inner.send(records);
    this.sent.push(...records);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  /** Records sent to one topic. */
  to(topic: string): OutRecord[] {
    return this.sent.filter((r) => r.topic === topic);
  }
}

/** Wraps a source and records, in order, every commit (`commit <partition>:<offset>`), stop and close. */
export class ObservedSource implements RecordSource {
  readonly #inner: RecordSource;
  readonly events: string[] = [];
  readonly commits: PartitionOffset[] = [];

  constructor(inner: RecordSource) {
    this.#inner = inner;
  }
  start(handlers: SourceHandlers): Promise<void> {
    return this.#inner.start(handlers);
  }
  async stop(): Promise<void> {
    this.events.push("stop");
    await this.#inner.stop();
    this.events.push("stopped");
  }
  async commit(offsets: PartitionOffset[]): Promise<void> {
    await this.#inner.commit(offsets);
    for (const o of offsets) {
      this.commits.push(o);
      this.events.push(`commit ${o.partition}:${o.offset}`);
    }
  }
  lag(): Promise<Map<number, bigint>> {
    return this.#inner.lag();
  }
  async close(): Promise<void> {
    await this.#inner.close();
    this.events.push("close");
  }
  /** The highest committed offset per partition. */
  committed(): Map<number, bigint> {
    const out = new Map<number, bigint>();
    for (const c of this.commits)
      if (c.offset > (out.get(c.partition) ?? -1n)) out.set(c.partition, c.offset);
    return out;
  }
}

export interface ReplayCall {
  partition: number;
  spanMs: number;
  until: bigint;
  replayed: InRecord[];
}

/**
 * A consumer-group member over the embedded log. `group` holds the group's committed offsets
 * (what Kafka keeps across replicas): pass the same map to every replica of a test. On
 * assignment a partition is read from its committed offset; `replay` hands over the records
 * appended within spanMs before the last record below max(committed, until), as the Kafka
 * adapter does. Batches are delivered only by deliver(), so the test decides what one fetch
 * returns.
 */
export class ReplayingSource implements RecordSource {
  readonly #log: EmbeddedLog;
  readonly #group: Map<number, bigint>;
  readonly #next = new Map<number, bigint>();
  #handlers: SourceHandlers | undefined;
  #stopped = false;
  readonly replays: ReplayCall[] = [];
  readonly commits: PartitionOffset[] = [];
  /** While true, commits are recorded but not applied to the group (a lost membership). */
  dropCommits = false;
  /** Why restart() was called, in order. */
  readonly restarts: string[] = [];

  constructor(log: EmbeddedLog, group: Map<number, bigint>) {
    this.#log = log;
    this.#group = group;
  }

  async start(handlers: SourceHandlers): Promise<void> {
    this.#handlers = handlers;
    this.assign(Array.from({ length: PARTITIONS }, (_, p) => p));
  }

  assign(partitions: number[]): void {
    for (const p of partitions) this.#next.set(p, this.#group.get(p) ?? 0n);
    this.#handlers!.onAssigned?.(partitions.map((partition) => ({ topic: IN, partition })));
  }

  revoke(partitions: number[]): void {
    for (const p of partitions) this.#next.delete(p);
    this.#handlers!.onRevoked?.(partitions.map((partition) => ({ topic: IN, partition })));
  }

  /** Hands everything appended to the owned partitions since the last delivery over as one batch. */
  async deliver(): Promise<InRecord[]> {
    const batch: InRecord[] = [];
    if (this.#stopped) return batch;
    for (const [p, from] of [...this.#next].sort((a, b) => a[0] - b[0])) {
      this.#next.set(p, this.#log.read(IN, p, from, Number.MAX_SAFE_INTEGER, batch));
    }
    if (batch.length > 0) await this.#handlers!.onBatch(batch);
    return batch;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
  }

  /** As the Kafka source: every partition revoked, then assigned again from the group's offsets. */
  restart(reason: string): void {
    this.restarts.push(reason);
    const owned = [...this.#next.keys()];
    this.revoke(owned);
    this.assign(owned);
  }

  async commit(offsets: PartitionOffset[]): Promise<void> {
    for (const o of offsets) {
      this.commits.push(o);
      if (!this.dropCommits && o.offset > (this.#group.get(o.partition) ?? 0n))
        this.#group.set(o.partition, o.offset);
    }
  }

  async replay(
    partition: number,
    spanMs: number,
    onRecords: (records: InRecord[]) => void,
    until = 0n,
  ): Promise<number> {
    const committed = this.#group.get(partition) ?? 0n;
    const to = committed > until ? committed : until;
    const below: InRecord[] = [];
    if (to > 0n) this.#log.read(IN, partition, 0n, Number(to), below);
    const last = below.at(-1)?.timestamp;
    const replayed = last === undefined ? [] : below.filter((r) => r.timestamp >= last - spanMs);
    this.replays.push({ partition, spanMs, until, replayed });
    if (replayed.length > 0) onRecords(replayed);
    return replayed.length;
  }

  async lag(): Promise<Map<number, bigint>> {
    const out = new Map<number, bigint>();
    for (const p of this.#next.keys()) out.set(p, this.#log.endOffset(IN, p) - (this.#group.get(p) ?? 0n));
    return out;
  }

  async close(): Promise<void> {
    this.#stopped = true;
  }
}

// ---- the rig ---------------------------------------------------------------------------------

export interface Rig {
  log: EmbeddedLog;
  processor: Processor;
  sink: ObservedSink;
  warehouse: MemoryWarehouse;
  alertStore: EmbeddedAlertStore;
  registry: Registry;
  metrics: ProcessorMetrics;
  fatal: unknown[];
  /** Releases held writes, clears failures and closes the processor (for cleanup after a failure too). */
  close: () => Promise<void>;
}

export interface RigOptions {
  log?: EmbeddedLog;
  warehouse?: MemoryWarehouse;
  alertStore?: EmbeddedAlertStore;
  /**
   * The shared (Redis-like) dedup tier (`--dedup-shared`); none unless given, as in
   * production by default: dedup is then the window's and the warehouse key's.
   */
  dedupStore?: SharedDedupStore;
  rules?: RuleSet;
  options?: Partial<ProcessorOptions>;
  /** Seals DLQ originals (none unless given). */
  dlqKey?: DlqKey;
  /** The processor's clock (default: fixed at NOW). */
  now?: () => number;
}

/** A new embedded log with the input, DLQ and alerts topics. */
export function newLog(): EmbeddedLog {
  const log = new EmbeddedLog();
  log.createTopic(IN, PARTITIONS);
  log.createTopic(DLQ, 1);
  log.createTopic(ALERTS, 1);
  return log;
}

/** Builds (does not start) a Processor on `source` and the embedded adapters. */
export function buildProcessor<S extends RecordSource>(
  source: (log: EmbeddedLog) => S,
  opts: RigOptions = {},
): Rig & { source: S } {
  const log = opts.log ?? newLog();
  const warehouse = opts.warehouse ?? new MemoryWarehouse();
  const alertStore = opts.alertStore ?? new EmbeddedAlertStore();
  const registry = testRegistry("processor-test");
  const metrics = createProcessorMetrics(registry);
  const fatal: unknown[] = [];
  const src = source(log);
  const sink = new ObservedSink(new EmbeddedSink(log));
  const processor = new Processor(
    {
      source: src,
      sink,
      alertStore,
      warehouse,
      ...(opts.dedupStore ? { deduper: new Deduper(opts.dedupStore) } : {}),
      masker: testMasker(),
      ...(opts.dlqKey ? { dlqKey: opts.dlqKey } : {}),
      metrics,
      log: silentLogger("processor-test"),
      now: opts.now ?? (() => NOW),
      onFatal: (err) => fatal.push(err),
    },
    {
      rules: opts.rules ?? defaultRules(),
      dlqTopic: DLQ,
      alertsTopic: ALERTS,
      // Retries back off by at most 5 ms: failure tests go through many attempts quickly.
      maxBackoffMs: 5,
      ...opts.options,
    },
  );
  return {
    log,
    source: src,
    processor,
    sink,
    warehouse,
    alertStore,
    registry,
    metrics,
    fatal,
    close: async () => {
      warehouse.setFailing(false);
      warehouse.failNext(0);
      warehouse.releaseAll();
      await processor.close();
    },
  };
}

/** A started Processor reading the embedded log through the embedded source, commits observed. */
export async function startRig(opts: RigOptions & { maxBatch?: number } = {}) {
  const rig = buildProcessor((log) => new ObservedSource(new EmbeddedSource(log, IN, opts.maxBatch)), opts);
  await rig.processor.start();
  return rig;
}

// ---- records ---------------------------------------------------------------------------------

export interface Sent {
  key: string;
  value: string;
}

/** A valid transaction record: `id` of `account` at event time EVENT_T0 + atSec seconds, 10.00 EUR at m-1. */
export function txRecord(
  account: string,
  id: string,
  atSec: number,
  patch: Record<string, unknown> = {},
): Sent {
  return {
    key: account,
    value: txJson({
      transaction_id: id,
      account_id: account,
      amount: "10.00",
      currency: "EUR",
      event_time: new Date(EVENT_T0 + atSec * 1000).toISOString(),
      ...patch,
    }),
  };
}

/** Account ids whose records land in n different partitions of the input topic. */
export function accountsInDistinctPartitions(n: number): string[] {
  const probe = newLog();
  const byPartition = new Map<number, string>();
  for (let i = 0; byPartition.size < n; i++) {
    const [r] = append(probe, [{ key: `acct-${i}`, value: "{}" }]);
    if (!byPartition.has(r!.partition)) byPartition.set(r!.partition, `acct-${i}`);
  }
  return [...byPartition.values()];
}

/** Appends records to the input topic and returns them as the log stored them (partition, offset). */
export function append(log: EmbeddedLog, records: Sent[]): InRecord[] {
  const before = Array.from({ length: PARTITIONS }, (_, p) => log.endOffset(IN, p));
  log.append(records.map((r) => ({ topic: IN, key: r.key, value: r.value })));
  const out: InRecord[] = [];
  for (let p = 0; p < PARTITIONS; p++) log.read(IN, p, before[p]!, Number.MAX_SAFE_INTEGER, out);
  return out;
}

/** The next offset to commit per partition once every record in `records` is processed. */
export function endOffsets(records: InRecord[]): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const r of records)
    if (r.offset + 1n > (out.get(r.partition) ?? 0n)) out.set(r.partition, r.offset + 1n);
  return out;
}

/**
 * Value of one sample of a metric (labels matched on the ones given), 0 when absent. For a
 * histogram, `sample` names the series (e.g. `<name>_count`).
 */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
  sample = name,
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  const want = Object.entries(labels);
  const found = data.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === sample &&
      want.every(([k, val]) => String((v.labels as Record<string, unknown>)[k]) === val),
  );
  return found?.value ?? 0;
}

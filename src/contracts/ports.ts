/**
 * The processor's ports: what it needs from the outside world, independent of technology.
 * Kafka and the embedded log implement the record ports, Redis and the embedded store the
 * alert and dedup ports, DuckDB/PostgreSQL/BigQuery the warehouse port. The processor code
 * path is the same whichever is plugged in.
 */
import type { Alert } from "./alert.ts";
import type { TransactionRow } from "./rows.ts";

/** One record as read from the source log. */
export interface InRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | undefined;
  value: Buffer;
  /** Log append time (ms since epoch): the start of the end-to-end latency clock. */
  timestamp: number;
}

export interface OutRecord {
  topic: string;
  key?: string;
  value: string | Buffer;
  headers?: Record<string, string>;
}

/** A produce-side log (Kafka producer or embedded log). Resolves once the records are durable. */
export interface RecordSink {
  send(records: OutRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface PartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to read (last processed + 1), as Kafka commits it. */
  offset: bigint;
}

export interface SourceHandlers {
  /** Called with records in partition order; the next call waits until the promise settles. */
  onBatch(records: InRecord[]): Promise<void>;
  onAssigned?(partitions: { topic: string; partition: number }[]): void;
  onRevoked?(partitions: { topic: string; partition: number }[]): void;
  /** A dependency of the source failing (problem set) or recovered (undefined): readiness. */
  onHealth?(dependency: string, problem: string | undefined): void;
}

/** A consume-side log in a consumer group (Kafka consumer or embedded log). */
export interface RecordSource {
  start(handlers: SourceHandlers): Promise<void>;
  /** Stops delivering batches; resolves once the onBatch call in progress (if any) returned. */
  stop(): Promise<void>;
  commit(offsets: PartitionOffset[]): Promise<void>;
  /**
   * Recovery: replays the records appended within `spanMs` before the partition's committed
   * offset (what the group will not deliver again), so a replica that gains the partition can
   * rebuild its windows. Resolves with the number of records replayed (0 on a first start).
   * Optional: a source whose state cannot outlive the process (the embedded log) has none.
   */
  replay?(
    partition: number,
    spanMs: number,
    onRecords: (records: InRecord[]) => void,
    /** Replay at least up to this offset (exclusive): records this replica already processed. */
    until?: bigint,
  ): Promise<number>;
  /** Records not yet consumed, per partition (for lag metrics). */
  lag(): Promise<Map<number, bigint>>;
  close(): Promise<void>;
}

/** Where alerts go for live consumers (Redis hash/stream/zset/pubsub or the embedded store). */
export interface AlertStore {
  writeAlerts(alerts: Alert[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The analytical store: masked rows and alerts. Writes are idempotent on transaction_id and
 * alert_id, so re-processing a range after a crash rewrites rather than adds. A write
 * resolves only once the rows are durable.
 */
export interface Warehouse {
  readonly name: string;
  writeTransactions(rows: TransactionRow[]): Promise<void>;
  writeAlerts(alerts: Alert[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The ports: what the services (collector, processor, verify, dashboard) need from the
 * outside world, independent of technology. Kafka and the embedded log implement the record
 * ports, Redis and the embedded store the alert and dedup ports, DuckDB/PostgreSQL/BigQuery
 * the warehouse ports. Services see only these interfaces; src/app picks the implementation,
 * so a service's code path is the same whichever is plugged in.
 */
import type { Alert } from "./alert.ts";
import type { CaseStatus, CaseStatusChange, FraudCase } from "./case.ts";
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
  /**
   * The source cannot go on: its log refused it for good (not authorized, topic deleted...).
   * The service should stop (non-zero exit) instead of waiting forever. Without this handler
   * the source keeps retrying, unready, and fails every commit.
   */
  onFatal?(err: unknown): void;
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
  /**
   * Leaves and rejoins the group: every partition is revoked and read again from its committed
   * offset. The processor's stall watchdog calls it when an owned partition has lag but its
   * records stopped arriving. Optional: a source that cannot stall (the embedded log) has none.
   */
  restart?(reason: string): void;
  close(): Promise<void>;
}

/** Where alerts go for live consumers (Redis hash/stream/zset/pubsub or the embedded store). */
export interface AlertStore {
  writeAlerts(alerts: Alert[]): Promise<void>;
  /**
   * Alerts of shadow rules, into the store's own capped shadow area: never the live feed,
   * the live channel or the active accounts. Idempotent per alert id like writeAlerts.
   * Optional: a store without it drops them (they are still counted by the processor).
   */
  writeShadowAlerts?(alerts: Alert[]): Promise<void>;
  close(): Promise<void>;
}

/** What shadow rules would have raised: per rule id since the store began, and the latest. */
export interface ShadowSummary {
  byRule: Record<string, number>;
  /** Newest first, as alert JSON objects (alertToJson, parsed). */
  latest: unknown[];
}

/** The latest alerts an AlertStore holds, for the dashboard's feed. */
export interface AlertFeed {
  /** What the UI names as the source (never a password). */
  readonly source: string;
  /** Newest first, as alert JSON objects (alertToJson, parsed). */
  latest(limit: number): Promise<unknown[]>;
  /** Accounts whose latest alert was detected at or after `sinceMs`. */
  activeAccounts(sinceMs: number): Promise<number>;
  /** Shadow rules' alerts (AlertStore.writeShadowAlerts); optional for feeds without a shadow area. */
  shadowSummary?(limit: number): Promise<ShadowSummary>;
}

/** Reading back what an AlertStore wrote: the dashboard's feed and verify's look-ups. */
export interface AlertReader extends AlertFeed {
  /** Which of `ids` the store holds. Any number of ids; implementations batch the look-ups. */
  existing(ids: readonly string[]): Promise<Set<string>>;
}

/** One transaction id to claim, and the record claiming it ("topic/partition/offset"). */
export interface DedupClaim {
  id: string;
  owner: string;
}

/**
 * The cross-replica, restart-surviving dedup tier (Redis, or an in-memory store when
 * embedded). Per claim: true when the caller should process the record (the id was unknown
 * and is now recorded with its owner, or is already recorded with the same owner: a
 * redelivery); false for a duplicate. One call per batch. core/dedup.ts explains why a claim
 * carries its owner.
 */
export interface DedupStore {
  claim(claims: readonly DedupClaim[]): Promise<boolean[]>;
}

/** Hits an analyst resolved, per rule: precision is fraud / (fraud + legitimate). */
export interface RuleResolutions {
  fraud: number;
  legitimate: number;
}

/**
 * Cases (contracts/case.ts) for the live view and the analyst's workflow: Redis, or the
 * embedded store in `paystream up`. The processor files alerts; the dashboard lists cases and
 * sets their status. Case state outlives processor restarts (it lives in the store).
 */
export interface CaseStore {
  /**
   * Files each alert into its account's current case or a new one (idempotent per alertId:
   * an alert already filed changes nothing). Resolves with every case touched, as stored.
   */
  fileAlerts(alerts: readonly Alert[]): Promise<FraudCase[]>;
  /** Open cases first by severity then age; `status` filters. */
  list(opts?: { status?: CaseStatus; limit?: number }): Promise<FraudCase[]>;
  get(caseId: string): Promise<FraudCase | undefined>;
  /** Records a status change (with who and when); undefined when the case does not exist. */
  setStatus(caseId: string, change: CaseStatusChange): Promise<FraudCase | undefined>;
  /**
   * The change feed the processor syncs into the warehouse: cases whose status was last
   * changed at or after `sinceMs` (the store's clock when it recorded the change), oldest
   * change first, as they are now; and the cursor to pass next time. At most `limit` cases,
   * except when more than `limit` changes share one millisecond: then all of that millisecond,
   * so the cursor always moves on. A case may come back in a later call (rewriting it is
   * idempotent); a change is never skipped while the feed keeps it (30 days).
   */
  changedSince(sinceMs: number, limit: number): Promise<{ cases: FraudCase[]; cursor: number }>;
  /** Resolved hits per rule id, counting each case's current resolution once per rule it hit. */
  resolutions(): Promise<Map<string, RuleResolutions>>;
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
  /**
   * Cases (`fraud_cases`), upserted by case_id: a replay rewrites rather than adds, a state
   * with fewer hits never overwrites the hits of one with more, and a status set earlier never
   * overwrites one set later (status_at). Every backend implements it;
   * optional so that test doubles of the other tables need not.
   */
  writeCases?(cases: readonly FraudCase[]): Promise<void>;
  close(): Promise<void>;
}

/** The tables `countByKey` reads, each counted by its primary key. */
export type KeyedTableName = "transactions" | "fraud_alerts" | "fraud_cases";

/**
 * The warehouse port plus the read side used by `paystream verify` and the tests. Every
 * backend implements it.
 */
export interface InspectableWarehouse extends Warehouse {
  writeCases(cases: readonly FraudCase[]): Promise<void>;
  countTransactions(): Promise<number>;
  countAlerts(): Promise<number>;
  /** transaction_ids stored more than once: always empty where the key is enforced. */
  duplicateTransactionIds(): Promise<string[]>;
  /** Every stored alert_id, sorted. */
  alertIds(): Promise<string[]>;
  /**
   * Rows stored per primary-key value, for the given keys only: `transaction_id` in
   * `transactions`, `alert_id` in `fraud_alerts`, `case_id` in `fraud_cases`. A key with no row is absent from the map; a
   * count above 1 is only possible where the key is not enforced (BigQuery). Takes any number
   * of keys and queries them in chunks (never one query per key).
   */
  countByKey(table: KeyedTableName, keys: readonly string[]): Promise<Map<string, number>>;
}

/** A record as a topic reader hands it over: where it sits, its bytes and its headers. */
export interface LogRecord {
  partition: number;
  offset: bigint;
  value: Buffer;
  headers: ReadonlyMap<string, string>;
  /** Kafka timestamp (ms since epoch) as the client gives it: the processing time verify decodes with. */
  timestamp: bigint;
}

export interface PartitionRange {
  partition: number;
  /** Log start offset when the read began (records below it were deleted by retention). */
  start: bigint;
  /** End offset listed before reading: every record below it was read. */
  end: bigint;
}

export interface TopicReadResult {
  topic: string;
  exists: boolean;
  partitions: number;
  records: number;
  /** Per partition: [log start, end snapshot). Empty when the topic does not exist. */
  ranges: PartitionRange[];
  durationMs: number;
}

export interface ReadToEndOptions {
  /** Give up (PS_KAFKA_UNREACHABLE) when the end offsets are not reached within this long. */
  timeoutMs: number;
  /** Called every `progressEvery` records with the count so far. */
  onProgress?: (records: number) => void;
  progressEvery?: number;
  /**
   * Start each partition at its first record appended at or after this time (ms since epoch)
   * instead of the log start (Kafka's offsets-by-timestamp); ranges then start there. Backtests.
   */
  fromTimestampMs?: number;
}

export interface GroupLag {
  group: string;
  /** Records between the group's committed offsets and the end offsets; undefined: no commits. */
  lag: number | undefined;
}

/**
 * Reading whole topics outside any processing group (what `paystream verify` needs of the
 * log): which topics exist, every record up to the end offsets listed before the read, and
 * how far a consumer group is behind them.
 */
export interface TopicReader {
  existingTopics(topics: readonly string[]): Promise<Set<string>>;
  /**
   * Calls `onRecord` once per record from the log start to the end offsets listed before
   * reading, in partition order; records appended later are not delivered. Completeness is
   * decided by offsets, never by a quiet period. A missing topic is `exists: false`, not an error.
   */
  readToEnd(
    topic: string,
    onRecord: (r: LogRecord) => void,
    opts: ReadToEndOptions,
  ): Promise<TopicReadResult>;
  /** Records between the group's committed offsets on `topic` and the end of `ranges`. */
  groupLag(group: string, topic: string, ranges: readonly PartitionRange[]): Promise<GroupLag>;
}

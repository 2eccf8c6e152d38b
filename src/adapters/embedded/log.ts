/**
 * An in-process partitioned log standing in for Kafka in `paystream up` (single-machine
 * demo and development). It implements the same ports as the Kafka adapter, so the
 * processor runs the identical code path.
 *
 * What it is not: durable (everything is lost on exit) or shared between processes. Memory
 * is bounded by a per-partition retention in records; a consumer that falls further behind
 * than the retention skips ahead and the skipped count is reported (Kafka's retention has
 * the same effect, on disk instead of in memory).
 */
import { EventEmitter } from "node:events";
import type {
  GroupLag,
  InRecord,
  LogRecord,
  OutRecord,
  PartitionOffset,
  PartitionRange,
  ReadToEndOptions,
  RecordSink,
  RecordSource,
  SourceHandlers,
  TopicReader,
  TopicReadResult,
} from "../../contracts/ports.ts";

/**
 * A record as the log keeps it: what a consumer reads, plus the headers it was produced
 * with. Consumers of the record ports never see headers (InRecord has none), but what was
 * written must be what is kept: a DLQ record's reason and source live in its headers.
 */
export interface StoredRecord extends InRecord {
  headers: Readonly<Record<string, string>>;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

interface Partition {
  /** Offset of records[0]. */
  base: bigint;
  records: StoredRecord[];
}

export interface EmbeddedLogOptions {
  /** Records kept per partition before the oldest are dropped. Default 200 000. */
  retentionRecords?: number;
}

/** Kafka's default partitioner hashes keys with murmur2; any stable hash keeps one account in one partition. */
function partitionFor(key: string | undefined, partitions: number, roundRobin: number): number {
  if (key === undefined) return roundRobin % partitions;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

export class EmbeddedLog {
  readonly #topics = new Map<string, Partition[]>();
  readonly #retention: number;
  readonly #events = new EventEmitter();
  #rr = 0;
  /** Records dropped by retention before any consumer read them. */
  skipped = 0;

  constructor(opts: EmbeddedLogOptions = {}) {
    this.#retention = opts.retentionRecords ?? 200_000;
    this.#events.setMaxListeners(100);
  }

  createTopic(name: string, partitions: number): void {
    if (this.#topics.has(name)) return;
    this.#topics.set(
      name,
      Array.from({ length: partitions }, () => ({ base: 0n, records: [] })),
    );
  }

  partitions(topic: string): Partition[] {
    const p = this.#topics.get(topic);
    if (!p) throw new Error(`embedded log: unknown topic ${topic}`);
    return p;
  }

  append(records: OutRecord[]): void {
    const now = Date.now();
    const touched = new Set<string>();
    for (const r of records) {
      const parts = this.partitions(r.topic);
      const idx = partitionFor(r.key, parts.length, this.#rr++);
      const p = parts[idx]!;
      p.records.push({
        topic: r.topic,
        partition: idx,
        offset: p.base + BigInt(p.records.length),
        key: r.key,
        value: typeof r.value === "string" ? Buffer.from(r.value) : r.value,
        timestamp: now,
        headers: r.headers ? { ...r.headers } : NO_HEADERS,
      });
      if (p.records.length > this.#retention * 1.25) {
        const drop = p.records.length - this.#retention;
        p.records.splice(0, drop);
        p.base += BigInt(drop);
      }
      touched.add(r.topic);
    }
    for (const t of touched) this.#events.emit(t);
  }

  endOffset(topic: string, partition: number): bigint {
    const p = this.partitions(topic)[partition]!;
    return p.base + BigInt(p.records.length);
  }

  /** Reads up to max records of one partition from offset; returns the records and the next offset. */
  read(topic: string, partition: number, from: bigint, max: number, out: InRecord[]): bigint {
    const p = this.partitions(topic)[partition]!;
    let start = from;
    if (start < p.base) {
      this.skipped += Number(p.base - start);
      start = p.base;
    }
    const i0 = Number(start - p.base);
    const i1 = Math.min(p.records.length, i0 + max);
    for (let i = i0; i < i1; i++) out.push(p.records[i]!);
    return p.base + BigInt(i1);
  }

  /** Resolves on the next append to the topic (or after waitMs). */
  waitForData(topic: string, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#events.off(topic, done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.#events.on(topic, done);
    });
  }

  /** Every record of a topic still retained, with its headers (tests and the dashboard's DLQ view). */
  all(topic: string): StoredRecord[] {
    return this.partitions(topic).flatMap((p) => p.records);
  }

  hasTopic(topic: string): boolean {
    return this.#topics.has(topic);
  }
}

/**
 * The TopicReader port on the embedded log: the same reads `paystream verify` and
 * `paystream dlq` make of Kafka, for code running in the same process (tests, `up`).
 * There are no consumer groups to report lag for.
 */
export class EmbeddedTopicReader implements TopicReader {
  readonly #log: EmbeddedLog;

  constructor(log: EmbeddedLog) {
    this.#log = log;
  }

  async existingTopics(topics: readonly string[]): Promise<Set<string>> {
    return new Set(topics.filter((t) => this.#log.hasTopic(t)));
  }

  async readToEnd(
    topic: string,
    onRecord: (r: LogRecord) => void,
    opts: ReadToEndOptions,
  ): Promise<TopicReadResult> {
    const t0 = performance.now();
    if (!this.#log.hasTopic(topic))
      return { topic, exists: false, partitions: 0, records: 0, ranges: [], durationMs: 0 };
    const parts = this.#log.partitions(topic);
    // The end offsets first, as Kafka's reader lists them: later appends are not delivered.
    const ranges: PartitionRange[] = parts.map((p, partition) => ({
      partition,
      start: p.base,
      end: p.base + BigInt(p.records.length),
    }));
    if (opts.fromTimestampMs !== undefined) {
      // Append times never go back within a partition: the first at or after the bound.
      const from = opts.fromTimestampMs;
      for (const range of ranges) {
        const recs = parts[range.partition]!.records;
        let lo = 0;
        let hi = Number(range.end - range.start);
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (recs[mid]!.timestamp < from) lo = mid + 1;
          else hi = mid;
        }
        range.start += BigInt(lo);
      }
    }
    let records = 0;
    const every = opts.progressEvery ?? 500_000;
    for (const range of ranges) {
      const p = parts[range.partition]!;
      for (let o = range.start; o < range.end; o++) {
        const r = p.records[Number(o - p.base)];
        if (r === undefined) continue;
        onRecord({
          partition: r.partition,
          offset: r.offset,
          value: r.value,
          headers: new Map(Object.entries(r.headers)),
          timestamp: BigInt(r.timestamp),
        });
        if (++records % every === 0) opts.onProgress?.(records);
      }
    }
    return {
      topic,
      exists: true,
      partitions: parts.length,
      records,
      ranges,
      durationMs: Math.round(performance.now() - t0),
    };
  }

  async groupLag(group: string): Promise<GroupLag> {
    return { group, lag: undefined };
  }
}

export class EmbeddedSink implements RecordSink {
  readonly #log: EmbeddedLog;
  constructor(log: EmbeddedLog) {
    this.#log = log;
  }
  async send(records: OutRecord[]): Promise<void> {
    this.#log.append(records);
  }
  async close(): Promise<void> {}
}

/**
 * A consumer-group member that owns every partition (there is only one process). Committed
 * offsets live in memory: a restart of `paystream up` starts from an empty log anyway.
 */
export class EmbeddedSource implements RecordSource {
  readonly #log: EmbeddedLog;
  readonly #topic: string;
  readonly #maxBatch: number;
  readonly #next: bigint[];
  readonly #committed: bigint[];
  #running = false;
  #loop: Promise<void> | undefined;

  /**
   * `resumeFrom`: per partition, the offset to start at — what a group member restarted in
   * the same process resumes from (its predecessor's commits), as a Kafka group member
   * resumes from the group's committed offsets. Partitions not named start at 0.
   */
  constructor(log: EmbeddedLog, topic: string, maxBatch = 5000, resumeFrom?: ReadonlyMap<number, bigint>) {
    this.#log = log;
    this.#topic = topic;
    this.#maxBatch = maxBatch;
    const n = log.partitions(topic).length;
    this.#next = Array.from({ length: n }, (_, p) => resumeFrom?.get(p) ?? 0n);
    this.#committed = [...this.#next];
  }

  async start(handlers: SourceHandlers): Promise<void> {
    this.#running = true;
    handlers.onAssigned?.(this.#next.map((_, partition) => ({ topic: this.#topic, partition })));
    this.#loop = this.#run(handlers);
  }

  async #run(handlers: SourceHandlers): Promise<void> {
    const n = this.#next.length;
    let start = 0;
    while (this.#running) {
      const batch: InRecord[] = [];
      // Round-robin over partitions so a busy one cannot starve the others.
      for (let k = 0; k < n && batch.length < this.#maxBatch; k++) {
        const p = (start + k) % n;
        this.#next[p] = this.#log.read(this.#topic, p, this.#next[p]!, this.#maxBatch - batch.length, batch);
      }
      start = (start + 1) % n;
      if (batch.length === 0) {
        await this.#log.waitForData(this.#topic, 100);
        continue;
      }
      await handlers.onBatch(batch);
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async commit(offsets: PartitionOffset[]): Promise<void> {
    for (const o of offsets)
      if (o.offset > this.#committed[o.partition]!) this.#committed[o.partition] = o.offset;
  }

  async lag(): Promise<Map<number, bigint>> {
    const out = new Map<number, bigint>();
    for (let p = 0; p < this.#committed.length; p++) {
      out.set(p, this.#log.endOffset(this.#topic, p) - this.#committed[p]!);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

/**
 * `paystream verify`, the I/O half: reading a topic to its end offsets, the processor group's
 * committed offsets, row counts from the warehouse and alert hashes from Redis. Everything is
 * batched: one fetch stream per topic, one warehouse query per chunk of keys, one pipelined
 * Redis round trip per 1,000 ids.
 */
import type { Message, MessagesStream } from "@platformatic/kafka";
import {
  createAdmin,
  createConsumer,
  type KafkaConnection,
  type RawConsumer,
} from "../adapters/kafka/client.ts";
import type { Redis } from "../adapters/redis/client.ts";
import type { InspectableWarehouse, KeyedTableName } from "../adapters/warehouse/schema.ts";
import { AlertKeys } from "../contracts/redis.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import type { GroupLag, PartitionRange, TopicReadFacts } from "./reconcile.ts";

export type KafkaRecord = Message<string, Buffer, string, string>;

export interface TopicRead extends TopicReadFacts {
  /** Per partition: [log start, end snapshot). Empty when the topic does not exist. */
  ranges: PartitionRange[];
  durationMs: number;
}

export interface ReadTopicOptions {
  /** Give up (PS_KAFKA_UNREACHABLE) when the end offsets are not reached within this long. */
  timeoutMs: number;
  /** Called every `progressEvery` records with the count so far. */
  onProgress?: (records: number) => void;
  progressEvery?: number;
}

function kafkaError(conn: KafkaConnection, topic: string, what: string, err: unknown): PaystreamError {
  return new PaystreamError(
    ErrorCodes.KAFKA_UNREACHABLE,
    `cannot read topic ${topic} on ${conn.brokers.join(",")} (${what}): ${(err as Error)?.message ?? String(err)}`,
    { cause: err, retriable: true, details: { brokers: conn.brokers, topic, tried: what } },
  );
}

/** Which of `topics` exist on the cluster (one metadata round trip). */
export async function existingTopics(conn: KafkaConnection, topics: readonly string[]): Promise<Set<string>> {
  const admin = createAdmin(conn);
  try {
    const all = new Set(await admin.listTopics());
    return new Set(topics.filter((t) => all.has(t)));
  } catch (err) {
    throw kafkaError(conn, topics.join(","), "list topics", err);
  } finally {
    await admin.close().catch(() => {});
  }
}

/**
 * Reads a topic from its log start to the end offsets listed before reading, and calls
 * `onRecord` once per record below them, in partition order. Completeness is decided by
 * offsets, never by a quiet period: a partition is done when a record at end − 1 arrived, or
 * (for offsets that hold no record, e.g. compacted or transaction markers) when the client's
 * next fetch offset is at the end and nothing is buffered. Records appended after the
 * snapshot are not delivered. Uses a throw-away consumer group, deleted afterwards.
 */
export async function readTopicToEnd(
  conn: KafkaConnection,
  topic: string,
  onRecord: (m: KafkaRecord) => void,
  opts: ReadTopicOptions,
): Promise<TopicRead> {
  const t0 = performance.now();
  const exists = (await existingTopics(conn, [topic])).has(topic);
  if (!exists) return { topic, exists: false, partitions: 0, records: 0, ranges: [], durationMs: 0 };

  const group = `paystream-verify-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const consumer: RawConsumer = createConsumer(conn, group, {
    maxWaitTime: 250,
    maxBytes: 32 * 1024 * 1024,
    highWaterMark: 16_384,
  });
  let stream: MessagesStream<string, Buffer, string, string> | undefined;
  let records = 0;
  try {
    let start: bigint[];
    let end: bigint[];
    try {
      const [s, e] = await Promise.all([
        consumer.listOffsets({ topics: [topic], timestamp: -2n }),
        consumer.listOffsets({ topics: [topic], timestamp: -1n }),
      ]);
      start = s.get(topic) ?? [];
      end = e.get(topic) ?? [];
    } catch (err) {
      throw kafkaError(conn, topic, "list offsets", err);
    }
    const ranges: PartitionRange[] = end.map((e, partition) => ({
      partition,
      start: start[partition] ?? 0n,
      end: e,
    }));
    const pending = new Set(ranges.filter((r) => r.end > r.start).map((r) => r.partition));
    const facts = () => ({
      topic,
      exists: true,
      partitions: ranges.length,
      records,
      ranges,
      durationMs: Math.round(performance.now() - t0),
    });
    if (pending.size === 0) return facts();

    try {
      stream = await consumer.consume({ topics: [topic], mode: "earliest" });
    } catch (err) {
      throw kafkaError(conn, topic, "join a reader group", err);
    }
    const s = stream;
    const every = opts.progressEvery ?? 500_000;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(poll);
        s.off("data", onData);
        s.off("error", finish);
        if (err === undefined) resolve();
        else reject(err);
      };
      const done = (p: number) => {
        if (pending.delete(p) && pending.size === 0) finish();
      };
      const onData = (m: KafkaRecord) => {
        if (settled) return;
        const e = end[m.partition];
        if (e === undefined || m.offset >= e) return;
        records++;
        try {
          onRecord(m);
        } catch (err) {
          finish(err);
          return;
        }
        if (records % every === 0) opts.onProgress?.(records);
        if (m.offset >= e - 1n) done(m.partition);
      };
      // Offsets at the end of a partition that hold no record never arrive as a message.
      const poll = setInterval(() => {
        if (s.readableLength > 0) return;
        for (const p of [...pending]) {
          const next = s.offsetsToFetch.get(`${topic}:${p}`);
          if (next !== undefined && next >= end[p]!) done(p);
        }
      }, 200);
      const timer = setTimeout(() => {
        const left = [...pending].map(
          (p) => `${p}@${s.offsetsToFetch.get(`${topic}:${p}`) ?? "?"}/${end[p]}`,
        );
        finish(
          kafkaError(
            conn,
            topic,
            `read to the end offsets within ${opts.timeoutMs} ms`,
            new Error(
              `${records} records read; partitions not at their end (partition@next/end): ${left.slice(0, 10).join(" ")}`,
            ),
          ),
        );
      }, opts.timeoutMs);
      s.on("data", onData);
      s.on("error", finish);
    });
    return facts();
  } finally {
    await stream?.close().catch(() => {});
    await consumer.close(true).catch(() => {});
    const admin = createAdmin(conn);
    await admin.deleteGroups({ groups: [group] }).catch(() => {});
    await admin.close().catch(() => {});
  }
}

/**
 * How far the processor group is behind the end snapshot: records between its committed
 * offsets and the end offsets. undefined lag: the group has no commits on the topic.
 */
export async function groupLag(
  conn: KafkaConnection,
  group: string,
  topic: string,
  ranges: readonly PartitionRange[],
): Promise<GroupLag> {
  const admin = createAdmin(conn);
  try {
    const res = await admin.listConsumerGroupOffsets({ groups: [group] });
    const committed = new Map<number, bigint>();
    for (const g of res) {
      for (const t of g.topics) {
        if (t.name !== topic) continue;
        for (const p of t.partitions)
          if (p.committedOffset >= 0n) committed.set(p.partitionIndex, p.committedOffset);
      }
    }
    if (committed.size === 0) return { group, lag: undefined };
    let lag = 0n;
    for (const r of ranges) {
      const c = committed.get(r.partition) ?? r.start;
      // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
      const from = c > r.start ? c : r.start;
      if (r.end > from) lag += r.end - from;
    }
    return { group, lag: Number(lag) };
  } catch (err) {
    throw kafkaError(conn, topic, `list offsets of group ${group}`, err);
  } finally {
    await admin.close().catch(() => {});
  }
}

/**
 * Row counts by primary key for many keys, asked while the keys are still being found: ids
 * are pushed one by one (as the input topic is read), handed to the warehouse in chunks (it
 * splits them further per query) one chunk at a time behind the reading, and each chunk's
 * counts go to `onChunk` at once, so memory holds one chunk's answer, not millions.
 */
export class ChunkedKeyCounter {
  readonly #wh: InspectableWarehouse;
  readonly #table: KeyedTableName;
  readonly #size: number;
  readonly #onChunk: (ids: readonly string[], counts: ReadonlyMap<string, number>) => void;
  #chunk: string[] = [];
  #chain: Promise<void> = Promise.resolve();
  /** Keys whose counts have arrived. */
  checked = 0;

  constructor(
    wh: InspectableWarehouse,
    table: KeyedTableName,
    onChunk: (ids: readonly string[], counts: ReadonlyMap<string, number>) => void,
    chunkSize = 200_000,
  ) {
    this.#wh = wh;
    this.#table = table;
    this.#onChunk = onChunk;
    this.#size = chunkSize;
  }

  push(key: string): void {
    this.#chunk.push(key);
    if (this.#chunk.length >= this.#size) this.#submit();
  }

  #submit(): void {
    if (this.#chunk.length === 0) return;
    const ids = this.#chunk;
    this.#chunk = [];
    this.#chain = this.#chain.then(async () => {
      this.#onChunk(ids, await this.#wh.countByKey(this.#table, ids));
      this.checked += ids.length;
    });
    // Failures surface in finish(); until then they must not count as unhandled.
    this.#chain.catch(() => {});
  }

  /** Submits what is left and waits for every chunk's answer (rethrows the first failure). */
  async finish(): Promise<void> {
    this.#submit();
    await this.#chain;
  }
}

/** Which alert ids have their `fraud:alert:<id>` hash in Redis (pipelined EXISTS, 1,000 per round trip). */
export async function alertsInRedis(redis: Redis, ids: readonly string[]): Promise<Set<string>> {
  const present = new Set<string>();
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const pipe = redis.multi();
    for (const id of chunk) pipe.exists(AlertKeys.alert(id));
    const res = await pipe.execAsPipeline();
    res.forEach((n, j) => {
      if (Number(n) > 0) present.add(chunk[j]!);
    });
  }
  return present;
}

/**
 * The TopicReader port on Kafka (what `paystream verify` reads): which topics exist, a whole
 * topic to the end offsets listed before reading, and a consumer group's committed offsets.
 * One fetch stream per topic, in a throw-away consumer group deleted afterwards, so a read
 * never moves the processors' offsets.
 */
import type { Message, MessagesStream } from "@platformatic/kafka";
import type {
  GroupLag,
  LogRecord,
  PartitionRange,
  ReadToEndOptions,
  TopicReader,
  TopicReadResult,
} from "../../contracts/ports.ts";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
import { createAdmin, createConsumer, type KafkaConnection, type RawConsumer } from "./client.ts";

type KafkaRecord = Message<string, Buffer, string, string>;

function kafkaError(conn: KafkaConnection, topic: string, what: string, err: unknown): PaystreamError {
  return new PaystreamError(
    ErrorCodes.KAFKA_UNREACHABLE,
    `cannot read topic ${topic} on ${conn.brokers.join(",")} (${what}): ${(err as Error)?.message ?? String(err)}`,
    { cause: err, retriable: true, details: { brokers: conn.brokers, topic, tried: what } },
  );
}

export class KafkaTopicReader implements TopicReader {
  readonly #conn: KafkaConnection;

  constructor(conn: KafkaConnection) {
    this.#conn = conn;
  }

  /** One metadata round trip. */
  async existingTopics(topics: readonly string[]): Promise<Set<string>> {
    const admin = createAdmin(this.#conn);
    try {
      const all = new Set(await admin.listTopics());
      return new Set(topics.filter((t) => all.has(t)));
    } catch (err) {
      throw kafkaError(this.#conn, topics.join(","), "list topics", err);
    } finally {
      await admin.close().catch(() => {});
    }
  }

  /**
   * A partition is done when a record at end − 1 arrived, or (for offsets that hold no
   * record, e.g. compacted or transaction markers) when the client's next fetch offset is at
   * the end and nothing is buffered.
   */
  async readToEnd(
    topic: string,
    onRecord: (r: LogRecord) => void,
    opts: ReadToEndOptions,
  ): Promise<TopicReadResult> {
    const conn = this.#conn;
    const t0 = performance.now();
    const exists = (await this.existingTopics([topic])).has(topic);
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
        if (opts.fromTimestampMs !== undefined)
          start = await this.#offsetsAt(consumer, topic, start, end, opts.fromTimestampMs);
      } catch (err) {
        throw kafkaError(conn, topic, "list offsets", err);
      }
      const ranges: PartitionRange[] = end.map((e, partition) => ({
        partition,
        start: start[partition] ?? 0n,
        end: e,
      }));
      const pending = new Set(ranges.filter((r) => r.end > r.start).map((r) => r.partition));
      const facts = (): TopicReadResult => ({
        topic,
        exists: true,
        partitions: ranges.length,
        records,
        ranges,
        durationMs: Math.round(performance.now() - t0),
      });
      if (pending.size === 0) return facts();

      try {
        stream = await (opts.fromTimestampMs === undefined
          ? consumer.consume({ topics: [topic], mode: "earliest" })
          : consumer.consume({
              topics: [topic],
              mode: "manual",
              offsets: ranges.map((r) => ({ topic, partition: r.partition, offset: r.start })),
            }));
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
   * Per partition, the first offset appended at or after `timestampMs` (ListOffsets by
   * timestamp), or the end when nothing was: a read of the recent past skips the retention
   * before it instead of fetching it.
   */
  async #offsetsAt(
    consumer: RawConsumer,
    topic: string,
    start: bigint[],
    end: bigint[],
    timestampMs: number,
  ): Promise<bigint[]> {
    const found = await consumer.listOffsetsWithTimestamps({
      topics: [topic],
      timestamp: BigInt(timestampMs),
    });
    const byPartition = found.get(topic);
    return end.map((e, p) => {
      const o = byPartition?.get(p)?.offset ?? -1n;
      if (o < 0n) return e;
      const s = start[p] ?? 0n;
      return o < s ? s : o;
    });
  }

  /** A partition without a commit counts from its log start. */
  async groupLag(group: string, topic: string, ranges: readonly PartitionRange[]): Promise<GroupLag> {
    const admin = createAdmin(this.#conn);
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
      throw kafkaError(this.#conn, topic, `list offsets of group ${group}`, err);
    } finally {
      await admin.close().catch(() => {});
    }
  }
}

/**
 * Kafka implementations of the processor's record ports.
 *
 * Consumption pulls from the client's object stream with `read()` rather than 'data' events:
 * while a batch is being processed nothing is read, the stream's buffer fills to its high
 * water mark and the client stops fetching. That is the backpressure: a slow sink slows
 * fetching instead of growing memory.
 */
import type { Message, MessagesStream } from "@platformatic/kafka";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
import type {
  InRecord,
  OutRecord,
  PartitionOffset,
  RecordSink,
  RecordSource,
  SourceHandlers,
} from "../../processor/ports.ts";
import {
  createConsumer,
  createProducer,
  type KafkaConnection,
  type RawConsumer,
  type StringProducer,
} from "./client.ts";

type RawMessage = Message<string, Buffer, string, string>;

export interface KafkaSourceOptions {
  topic: string;
  groupId: string;
  /** Most records handed to one onBatch call. */
  maxBatch?: number;
  /** Records buffered ahead of processing before fetching stops. */
  bufferRecords?: number;
  maxWaitMs?: number;
}

export class KafkaSource implements RecordSource {
  readonly #conn: KafkaConnection;
  readonly #opts: Required<KafkaSourceOptions>;
  readonly #consumer: RawConsumer;
  #stream: MessagesStream<string, Buffer, string, string> | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  /** leaderEpoch per partition, needed by the commit request. */
  readonly #epochs = new Map<number, number>();
  #assigned = new Set<number>();

  constructor(conn: KafkaConnection, opts: KafkaSourceOptions) {
    this.#conn = conn;
    this.#opts = { maxBatch: 5000, bufferRecords: 16_384, maxWaitMs: 100, ...opts };
    this.#consumer = createConsumer(conn, opts.groupId, {
      maxWaitTime: this.#opts.maxWaitMs,
      highWaterMark: this.#opts.bufferRecords,
    });
  }

  get consumer(): RawConsumer {
    return this.#consumer;
  }

  async start(handlers: SourceHandlers): Promise<void> {
    try {
      this.#stream = await this.#consumer.consume({
        topics: [this.#opts.topic],
        mode: "committed",
        fallbackMode: "earliest",
      });
    } catch (err) {
      throw new PaystreamError(
        ErrorCodes.KAFKA_UNREACHABLE,
        `cannot join consumer group ${this.#opts.groupId} on ${this.#conn.brokers.join(",")}: ${(err as Error).message}`,
        { cause: err, retriable: true },
      );
    }
    const onRebalance = () => this.#diffAssignments(handlers);
    this.#consumer.on("consumer:group:join", onRebalance);
    this.#consumer.on("consumer:group:rebalance", onRebalance);
    this.#diffAssignments(handlers);
    this.#loop = this.#run(handlers);
  }

  #diffAssignments(handlers: SourceHandlers): void {
    const now = new Set<number>();
    for (const a of this.#consumer.assignments ?? []) {
      if (a.topic === this.#opts.topic) for (const p of a.partitions) now.add(p);
    }
    const added = [...now].filter((p) => !this.#assigned.has(p));
    const removed = [...this.#assigned].filter((p) => !now.has(p));
    this.#assigned = now;
    const topic = this.#opts.topic;
    if (removed.length) handlers.onRevoked?.(removed.map((partition) => ({ topic, partition })));
    if (added.length) handlers.onAssigned?.(added.map((partition) => ({ topic, partition })));
  }

  async #run(handlers: SourceHandlers): Promise<void> {
    const stream = this.#stream!;
    // A permanent 'readable' listener keeps the stream in paused (pull) mode. Attaching one
    // only while waiting would flip readableFlowing back to null in between, and the client
    // stops fetching when it sees nobody listening.
    let wake: (() => void) | undefined;
    const onSignal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    stream.on("readable", onSignal);
    stream.on("close", onSignal);
    const max = this.#opts.maxBatch;
    while (!this.#closed) {
      const batch: InRecord[] = [];
      while (batch.length < max) {
        const msg = stream.read() as RawMessage | null;
        if (msg === null) break;
        this.#epochs.set(msg.partition, msg.leaderEpoch);
        batch.push({
          topic: msg.topic,
          partition: msg.partition,
          offset: msg.offset,
          key: msg.key,
          value: msg.value,
          timestamp: Number(msg.timestamp),
        });
      }
      if (batch.length === 0) {
        if (stream.destroyed || stream.readableEnded) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        continue;
      }
      this.#diffAssignments(handlers);
      await handlers.onBatch(batch);
    }
  }

  async stop(): Promise<void> {
    this.#closed = true;
    this.#stream?.pause();
    // Wake the loop if it is waiting for data, then wait for the batch in progress.
    this.#stream?.emit("readable");
    await this.#loop?.catch(() => {});
  }

  async commit(offsets: PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.#consumer.commit({
      offsets: offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        leaderEpoch: this.#epochs.get(o.partition) ?? -1,
      })),
    });
  }

  async lag(): Promise<Map<number, bigint>> {
    const lag = await this.#consumer.getLag({ topics: [this.#opts.topic] });
    const out = new Map<number, bigint>();
    const perPartition = lag.get(this.#opts.topic) ?? [];
    perPartition.forEach((v, p) => {
      if (v >= 0n) out.set(p, v);
    });
    return out;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#stream?.close().catch(() => {});
    await this.#consumer.close(true).catch(() => {});
  }
}

export class KafkaSink implements RecordSink {
  readonly #producer: StringProducer;

  constructor(conn: KafkaConnection, producer?: StringProducer) {
    this.#producer = producer ?? createProducer(conn);
  }

  async send(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.#producer.send({
        messages: records.map((r) => ({
          topic: r.topic,
          ...(r.key === undefined ? {} : { key: r.key }),
          value: r.value,
          ...(r.headers ? { headers: r.headers } : {}),
        })),
      });
    } catch (err) {
      throw new PaystreamError(ErrorCodes.KAFKA_PRODUCE, `produce failed: ${(err as Error).message}`, {
        cause: err,
        retriable: true,
      });
    }
  }

  async close(): Promise<void> {
    await this.#producer.close().catch(() => {});
  }
}

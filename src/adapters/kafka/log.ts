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
import { readRange, recoveryRange } from "./replay.ts";

type RawMessage = Message<string, Buffer, string, string>;

export interface KafkaSourceOptions {
  topic: string;
  groupId: string;
  /** Most records handed to one onBatch call. */
  maxBatch?: number;
  /** Records buffered ahead of processing before fetching stops. */
  bufferRecords?: number;
  maxWaitMs?: number;
  /** "consumer" (KIP-848, broker-driven incremental) or "classic" (client-side assignment). */
  groupProtocol?: "consumer" | "classic";
}

export class KafkaSource implements RecordSource {
  readonly #conn: KafkaConnection;
  readonly #opts: Required<KafkaSourceOptions>;
  readonly #consumer: RawConsumer;
  #stream: MessagesStream<string, Buffer, string, string> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** leaderEpoch per partition, needed by the commit request. */
  readonly #epochs = new Map<number, number>();
  #assigned = new Set<number>();

  constructor(conn: KafkaConnection, opts: KafkaSourceOptions) {
    this.#conn = conn;
    this.#opts = {
      maxBatch: 5000,
      bufferRecords: 16_384,
      maxWaitMs: 100,
      groupProtocol: "consumer",
      ...opts,
    };
    this.#consumer = createConsumer(conn, opts.groupId, {
      maxWaitTime: this.#opts.maxWaitMs,
      highWaterMark: this.#opts.bufferRecords,
      ...(this.#opts.groupProtocol === "classic"
        ? { groupProtocol: "classic", sessionTimeout: 10_000, heartbeatInterval: 1000 }
        : {}),
    } as Parameters<typeof createConsumer>[2]);
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
    // Flowing mode with our own bounded buffer. Pull mode (read()) is not safe here: the
    // client calls resume() on its stream after a rebalance, which switches a pulled stream
    // to flowing and emits records to nobody. In flowing mode every record reaches this
    // listener; when the buffer is full we pause, and a resume by the client only lets the
    // buffer grow until the next record pauses it again.
    const limit = this.#opts.bufferRecords;
    let buffer: RawMessage[] = [];
    let wake: (() => void) | undefined;
    const signal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    stream.on("data", (msg: RawMessage) => {
      buffer.push(msg);
      if (buffer.length >= limit) stream.pause();
      signal();
    });
    stream.on("close", signal);
    this.#wake = signal;
    const max = this.#opts.maxBatch;
    while (!this.#closed) {
      if (buffer.length === 0) {
        if (stream.destroyed || stream.readableEnded) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        continue;
      }
      let taken: RawMessage[];
      if (buffer.length <= max) {
        taken = buffer;
        buffer = [];
      } else {
        taken = buffer.splice(0, max);
      }
      if (stream.isPaused() && buffer.length < limit / 2 && !this.#closed) stream.resume();
      const batch: InRecord[] = new Array(taken.length);
      for (let i = 0; i < taken.length; i++) {
        const msg = taken[i]!;
        this.#epochs.set(msg.partition, msg.leaderEpoch);
        batch[i] = {
          topic: msg.topic,
          partition: msg.partition,
          offset: msg.offset,
          key: msg.key,
          value: msg.value,
          timestamp: Number(msg.timestamp),
        };
      }
      this.#diffAssignments(handlers);
      await handlers.onBatch(batch);
    }
  }

  async stop(): Promise<void> {
    this.#closed = true;
    this.#stream?.pause();
    // Wake the loop if it is waiting for data, then wait for the batch in progress.
    this.#wake?.();
    await this.#loop?.catch(() => {});
  }

  async commit(offsets: PartitionOffset[]): Promise<void> {
    // A partition revoked since its batch was read now belongs to another replica, which
    // re-processes from the last commit (outputs are idempotent). Committing it from here
    // would be rejected by the broker and retried forever.
    const owned = offsets.filter((o) => this.#assigned.has(o.partition));
    if (owned.length === 0) return;
    await this.#consumer.commit({
      offsets: owned.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        leaderEpoch: this.#epochs.get(o.partition) ?? -1,
      })),
    });
  }

  async replay(
    partition: number,
    spanMs: number,
    onRecords: (records: InRecord[]) => void,
    until = 0n,
  ): Promise<number> {
    const range = await recoveryRange(this.#consumer, this.#opts.topic, partition, spanMs, until);
    if (!range || range.from >= range.to) return 0;
    return readRange(this.#consumer, this.#opts.topic, partition, range.from, range.to, onRecords);
  }

  /**
   * End offset minus the group's committed offset, per partition, from the broker itself.
   * (The client's own lag figure goes stale across rebalances.)
   */
  async lag(): Promise<Map<number, bigint>> {
    const topic = this.#opts.topic;
    const ends = (await this.#consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const partitions = ends.map((_, i) => i);
    const committed =
      (await this.#consumer.listCommittedOffsets({ topics: [{ topic, partitions }] })).get(topic) ?? [];
    const out = new Map<number, bigint>();
    ends.forEach((end, p) => {
      const c = committed[p] ?? -1n;
      out.set(p, end - (c < 0n ? 0n : c));
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

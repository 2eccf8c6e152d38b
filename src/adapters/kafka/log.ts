/**
 * Kafka implementations of the processor's record ports.
 *
 * Consumption pulls from the client's object stream with `read()` rather than 'data' events:
 * while a batch is being processed nothing is read, the stream's buffer fills to its high
 * water mark and the client stops fetching. That is the backpressure: a slow sink slows
 * fetching instead of growing memory.
 */
import type { Message, MessagesStream } from "@platformatic/kafka";
import type {
  InRecord,
  OutRecord,
  PartitionOffset,
  RecordSink,
  RecordSource,
  SourceHandlers,
} from "../../contracts/ports.ts";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
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
  #consumer: RawConsumer;
  #stream: MessagesStream<string, Buffer, string, string> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** leaderEpoch per partition, needed by the commit request. */
  readonly #epochs = new Map<number, number>();
  #assigned = new Set<number>();
  /** Times the consumer was rebuilt after losing the broker (for tests and logs). */
  reconnects = 0;
  #membershipLost = false;

  constructor(conn: KafkaConnection, opts: KafkaSourceOptions) {
    this.#conn = conn;
    this.#opts = {
      maxBatch: 5000,
      bufferRecords: 16_384,
      maxWaitMs: 100,
      groupProtocol: "consumer",
      ...opts,
    };
    this.#consumer = this.#newConsumer();
  }

  #newConsumer(): RawConsumer {
    return createConsumer(this.#conn, this.#opts.groupId, {
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

  /** Joins the group. The first join fails fast (a wrong address should stop start-up). */
  async start(handlers: SourceHandlers): Promise<void> {
    try {
      await this.#consume(handlers);
    } catch (err) {
      throw new PaystreamError(
        ErrorCodes.KAFKA_UNREACHABLE,
        `cannot join consumer group ${this.#opts.groupId} on ${this.#conn.brokers.join(",")}: ${(err as Error).message}`,
        { cause: err, retriable: true },
      );
    }
    this.#loop = this.#run(handlers);
  }

  async #consume(handlers: SourceHandlers): Promise<void> {
    this.#stream = await this.#consumer.consume({
      topics: [this.#opts.topic],
      mode: "committed",
      fallbackMode: "earliest",
    });
    const onRebalance = () => this.#diffAssignments(handlers);
    this.#consumer.on("consumer:group:join", onRebalance);
    this.#consumer.on("consumer:group:rebalance", onRebalance);
    this.#diffAssignments(handlers);
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

  /**
   * Consumes until stopped. When the client gives up on the broker (its stream or the
   * consumer emits an error, or heartbeats stall), the membership is treated as lost: every
   * partition is revoked (its state dropped; uncommitted records come again from the last
   * commit), the client is rebuilt and rejoins with backoff, and the partitions it gets back
   * are rebuilt by the usual recovery. The process never dies of a broker restart.
   */
  async #run(handlers: SourceHandlers): Promise<void> {
    while (!this.#closed) {
      const lost = await this.#pump(this.#stream!, handlers);
      if (this.#closed) return;
      handlers.onHealth?.("kafka", `consumer lost the broker: ${lost}`);
      const gone = [...this.#assigned];
      this.#assigned.clear();
      if (gone.length)
        handlers.onRevoked?.(gone.map((partition) => ({ topic: this.#opts.topic, partition })));
      this.#epochs.clear();
      for (let attempt = 0; !this.#closed; attempt++) {
        const old = this.#consumer;
        await old.close(true).catch(() => {});
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
        if (this.#closed) return;
        this.#consumer = this.#newConsumer();
        try {
          this.#membershipLost = false;
          await this.#consume(handlers);
          this.reconnects++;
          handlers.onHealth?.("kafka", undefined);
          break;
        } catch (err) {
          handlers.onHealth?.("kafka", `rejoining the consumer group: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Hands the stream's records to onBatch until the stream dies; resolves with why. */
  async #pump(
    stream: MessagesStream<string, Buffer, string, string>,
    handlers: SourceHandlers,
  ): Promise<string> {
    // Flowing mode with our own bounded buffer. Pull mode (read()) is not safe here: the
    // client calls resume() on its stream after a rebalance, which switches a pulled stream
    // to flowing and emits records to nobody. In flowing mode every record reaches this
    // listener; when the buffer is full we pause, and a resume by the client only lets the
    // buffer grow until the next record pauses it again.
    const limit = this.#opts.bufferRecords;
    let buffer: RawMessage[] = [];
    let wake: (() => void) | undefined;
    let lost: string | undefined;
    const signal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const fail = (why: string) => {
      lost ??= why;
      // The membership is gone: commits for it are skipped (see commit()), or the batches
      // still in flight would retry them forever against a broker that fenced this member.
      this.#membershipLost = true;
      signal();
    };
    stream.on("data", (msg: RawMessage) => {
      buffer.push(msg);
      if (buffer.length >= limit) stream.pause();
      signal();
    });
    stream.on("error", (err: Error) => fail(err.message));
    stream.on("close", () => fail("stream closed"));
    this.#consumer.on("error", (err: Error) => fail(err.message));
    this.#consumer.on("consumer:heartbeat:stalled", (e: { lastError?: Error }) =>
      fail(`heartbeats stalled${e?.lastError ? `: ${e.lastError.message}` : ""}`),
    );
    this.#wake = signal;
    const max = this.#opts.maxBatch;
    while (!this.#closed) {
      if (buffer.length === 0) {
        if (lost !== undefined) return lost;
        await new Promise<void>((r) => {
          wake = r;
        });
        continue;
      }
      // Records read before the loss are still processed: they are in order, and their
      // outputs are idempotent if they come again after the rejoin.
      let taken: RawMessage[];
      if (buffer.length <= max) {
        taken = buffer;
        buffer = [];
      } else {
        taken = buffer.splice(0, max);
      }
      if (lost === undefined && stream.isPaused() && buffer.length < limit / 2 && !this.#closed)
        stream.resume();
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
      if (lost === undefined) this.#diffAssignments(handlers);
      await handlers.onBatch(batch);
    }
    return lost ?? "stopped";
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
    if (this.#membershipLost) return;
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

/** Producer-state errors after which an idempotent producer never gets a batch in again. */
const PRODUCER_STATE_ERRORS = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "INVALID_PRODUCER_EPOCH",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_ID_MAPPING",
]);

/** Whether a (possibly nested: MultipleErrors, cause) client error carries one of `ids`. */
export function hasProtocolError(err: unknown, ids: ReadonlySet<string>, depth = 0): boolean {
  if (err === null || typeof err !== "object" || depth > 6) return false;
  const e = err as { apiId?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e.apiId === "string" && ids.has(e.apiId)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => hasProtocolError(x, ids, depth + 1))) return true;
  return hasProtocolError(e.cause, ids, depth + 1);
}

/**
 * The client's message plus the distinct messages nested under it ("Producing messages
 * failed." alone says nothing; the protocol error under it does), at most `max` of them.
 */
export function describeClientError(err: unknown, max = 3): string {
  const seen: string[] = [];
  const walk = (e: unknown, depth: number) => {
    if (e === null || typeof e !== "object" || depth > 6 || seen.length > max) return;
    const x = e as { message?: unknown; apiId?: unknown; errors?: unknown; cause?: unknown };
    const msg = `${typeof x.apiId === "string" ? `${x.apiId}: ` : ""}${String(x.message ?? "")}`;
    if (msg && !seen.includes(msg)) seen.push(msg);
    if (Array.isArray(x.errors)) for (const inner of x.errors) walk(inner, depth + 1);
    walk(x.cause, depth + 1);
  };
  walk(err, 0);
  return seen.slice(0, max + 1).join(" <- ");
}

export class KafkaSink implements RecordSink {
  readonly #makeProducer: () => StringProducer;
  #producer: StringProducer;
  /** Bumped each time the producer is replaced, so concurrent failures replace it once. */
  #generation = 0;
  /** Producers replaced after a sequence error (for logs and tests). */
  resets = 0;

  constructor(conn: KafkaConnection, producer?: StringProducer, makeProducer?: () => StringProducer) {
    this.#makeProducer = makeProducer ?? (() => createProducer(conn));
    this.#producer = producer ?? this.#makeProducer();
  }

  async send(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return;
    const generation = this.#generation;
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
      // One failed request among several in flight to a partition leaves a gap in the
      // idempotent producer's sequence numbers: the broker then refuses every later batch
      // (OUT_OF_ORDER_SEQUENCE_NUMBER) and this client does not reset its sequence by itself,
      // so every retry would fail forever. A new producer (new producer id) starts clean; the
      // caller's retry then sends the batch again. (A batch whose request succeeded but whose
      // answer was lost can thereby be appended twice: consumers dedup by transaction_id.)
      if (hasProtocolError(err, PRODUCER_STATE_ERRORS) && generation === this.#generation) {
        this.#generation++;
        this.resets++;
        const old = this.#producer;
        this.#producer = this.#makeProducer();
        void old.close().catch(() => {});
      }
      throw new PaystreamError(ErrorCodes.KAFKA_PRODUCE, `produce failed: ${describeClientError(err)}`, {
        cause: err,
        retriable: true,
      });
    }
  }

  async close(): Promise<void> {
    await this.#producer.close().catch(() => {});
  }
}

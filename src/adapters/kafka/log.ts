/**
 * Kafka implementations of the processor's record ports.
 *
 * Consumption pulls from the client's object stream with `read()` rather than 'data' events:
 * while a batch is being processed nothing is read, the stream's buffer fills to its high
 * water mark and the client stops fetching. That is the backpressure: a slow sink slows
 * fetching instead of growing memory.
 *
 * Over 500 lines: source and sink share the connection, the rebuild after an outage and the
 * error mapping (errors.ts); split them when either grows further.
 */
import type { Message, MessagesStream } from "@platformatic/kafka";
import { ProcessorDefaults } from "../../contracts/defaults.ts";
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
import { classifyKafkaError, toKafkaError } from "./errors.ts";
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
  /** Ends the current pump as if the broker were lost (restart()). */
  #abort: ((why: string) => void) | undefined;
  #loop: Promise<void> | undefined;
  /** leaderEpoch per partition, needed by the commit request. */
  readonly #epochs = new Map<number, number>();
  #assigned = new Set<number>();
  /** Times the consumer was rebuilt after losing the broker (for tests and logs). */
  reconnects = 0;
  #membershipLost = false;
  /** Set when Kafka refused this consumer for good (not authorized, topic gone...). */
  #final: PaystreamError | undefined;

  constructor(conn: KafkaConnection, opts: KafkaSourceOptions) {
    this.#conn = conn;
    this.#opts = {
      maxBatch: ProcessorDefaults.maxBatch,
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

  /**
   * Joins the group. The first join fails fast (a wrong address should stop start-up):
   * PS_KAFKA_UNREACHABLE, or PS_KAFKA_REJECTED when Kafka refused it for good.
   */
  async start(handlers: SourceHandlers): Promise<void> {
    try {
      await this.#consume(handlers);
    } catch (err) {
      throw toKafkaError(
        err,
        "fetch",
        `joining consumer group ${this.#opts.groupId} on ${this.#conn.brokers.join(",")}`,
        ErrorCodes.KAFKA_UNREACHABLE,
        { groupId: this.#opts.groupId, topic: this.#opts.topic, brokers: this.#conn.brokers },
      );
    }
    this.#loop = this.#run(handlers);
  }

  /** The consumer error as ours, if Kafka refused it for good (else undefined: rejoin). */
  #finalError(err: unknown, what: string): PaystreamError | undefined {
    if (err === undefined || classifyKafkaError(err, "fetch").retriable) return undefined;
    return toKafkaError(
      err,
      "fetch",
      `${what} ${this.#opts.topic} in group ${this.#opts.groupId}`,
      ErrorCodes.KAFKA_UNREACHABLE,
      {
        groupId: this.#opts.groupId,
        topic: this.#opts.topic,
      },
    );
  }

  /**
   * Kafka refused this consumer for good: commits fail from now on (so batches in flight
   * stop the processor rather than commit), readiness says why, and the handler's onFatal,
   * when there is one, stops the service. True when the caller should stop rejoining.
   */
  #refused(final: PaystreamError, handlers: SourceHandlers): boolean {
    this.#final = final;
    this.#membershipLost = true;
    handlers.onHealth?.("kafka", final.message);
    if (!handlers.onFatal) return false;
    handlers.onFatal(final);
    return true;
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
   * are rebuilt by the usual recovery. The process never dies of a broker restart. An error
   * Kafka says is final (not authorized, unknown topic...) is not waited out: see #refused.
   */
  async #run(handlers: SourceHandlers): Promise<void> {
    while (!this.#closed) {
      const { why: lost, err: lostErr } = await this.#pump(this.#stream!, handlers);
      if (this.#closed) return;
      const final = this.#finalError(lostErr, "consuming");
      if (final && this.#refused(final, handlers)) return;
      if (!final) handlers.onHealth?.("kafka", `consumer rejoining the group: ${lost}`);
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
          this.#final = undefined;
          this.reconnects++;
          handlers.onHealth?.("kafka", undefined);
          break;
        } catch (err) {
          const refused = this.#finalError(err, "rejoining");
          if (refused && this.#refused(refused, handlers)) return;
          if (!refused)
            handlers.onHealth?.("kafka", `rejoining the consumer group: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Hands the stream's records to onBatch until the stream dies; resolves with why. */
  async #pump(
    stream: MessagesStream<string, Buffer, string, string>,
    handlers: SourceHandlers,
  ): Promise<{ why: string; err?: unknown }> {
    // Flowing mode with our own bounded buffer. Pull mode (read()) is not safe here: the
    // client calls resume() on its stream after a rebalance, which switches a pulled stream
    // to flowing and emits records to nobody. In flowing mode every record reaches this
    // listener; when the buffer is full we pause, and a resume by the client only lets the
    // buffer grow until the next record pauses it again.
    const limit = this.#opts.bufferRecords;
    let buffer: RawMessage[] = [];
    let wake: (() => void) | undefined;
    let lost: string | undefined;
    let lostErr: unknown;
    const signal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const fail = (why: string, err?: unknown) => {
      if (lost === undefined) lostErr = err;
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
    stream.on("error", (err: Error) => fail(err.message, err));
    stream.on("close", () => fail("stream closed"));
    this.#consumer.on("error", (err: Error) => fail(err.message, err));
    this.#consumer.on("consumer:heartbeat:stalled", (e: { lastError?: Error }) =>
      fail(`heartbeats stalled${e?.lastError ? `: ${e.lastError.message}` : ""}`),
    );
    this.#wake = signal;
    this.#abort = (why) => fail(why);
    const max = this.#opts.maxBatch;
    while (!this.#closed) {
      if (buffer.length === 0) {
        if (lost !== undefined) return { why: lost, err: lostErr };
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
    return { why: lost ?? "stopped", err: lostErr };
  }

  /** Rejoins through the outage path of #run: revoke all, rebuild the client, read from commits. */
  restart(reason: string): void {
    if (!this.#closed) this.#abort?.(reason);
  }

  async stop(): Promise<void> {
    this.#closed = true;
    this.#stream?.pause();
    // Wake the loop if it is waiting for data, then wait for the batch in progress.
    this.#wake?.();
    await this.#loop?.catch(() => {});
  }

  /**
   * Commits. Errors become ours: PS_KAFKA_UNREACHABLE retriable (the broker, the coordinator
   * moving, a stale member epoch: the caller retries, and a lost membership skips it), or
   * PS_KAFKA_REJECTED final (not authorized...): the caller must stop, not retry forever.
   */
  async commit(offsets: PartitionOffset[]): Promise<void> {
    if (this.#final) throw this.#final;
    // A partition revoked since its batch was read now belongs to another replica, which
    // re-processes from the last commit (outputs are idempotent). Committing it from here
    // would be rejected by the broker and retried forever.
    if (this.#membershipLost) return;
    const owned = offsets.filter((o) => this.#assigned.has(o.partition));
    if (owned.length === 0) return;
    try {
      await this.#consumer.commit({
        offsets: owned.map((o) => ({
          topic: o.topic,
          partition: o.partition,
          offset: o.offset,
          leaderEpoch: this.#epochs.get(o.partition) ?? -1,
        })),
      });
    } catch (err) {
      throw toKafkaError(
        err,
        "commit",
        `commit of ${this.#opts.topic} offsets for group ${this.#opts.groupId}`,
        ErrorCodes.KAFKA_UNREACHABLE,
        { groupId: this.#opts.groupId, partitions: owned.map((o) => o.partition) },
      );
    }
  }

  async replay(
    partition: number,
    spanMs: number,
    onRecords: (records: InRecord[]) => void,
    until = 0n,
  ): Promise<number> {
    try {
      const range = await recoveryRange(this.#consumer, this.#opts.topic, partition, spanMs, until);
      if (!range || range.from >= range.to) return 0;
      return await readRange(this.#consumer, this.#opts.topic, partition, range.from, range.to, onRecords);
    } catch (err) {
      throw toKafkaError(
        err,
        "fetch",
        `replay of ${this.#opts.topic}/${partition}`,
        ErrorCodes.KAFKA_UNREACHABLE,
        { topic: this.#opts.topic, partition },
      );
    }
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

export interface KafkaSinkOptions {
  /**
   * Most bytes (keys, values, headers and per-record overhead) in one produce request. A
   * send bigger than this goes out as several requests, so many small records never add up
   * to a batch above the broker's default message.max.bytes (1 MiB). Default 900 KiB.
   */
  maxRequestBytes?: number;
}

/** One send() call, settled once all its requests are acknowledged or one failed. */
interface PendingSend {
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Requests of this send not yet acknowledged. */
  left: number;
  settled: boolean;
}

/** One produce request: a slice of one send's records, in order. */
interface ProduceRequest {
  send: PendingSend;
  records: OutRecord[];
}

/** Per-record bytes on the wire besides key, value and headers (attributes, deltas, lengths). */
const RECORD_OVERHEAD = 32;
const HEADER_OVERHEAD = 10;

function recordBytes(r: OutRecord): number {
  let n = RECORD_OVERHEAD;
  if (r.key !== undefined) n += Buffer.byteLength(r.key);
  n += typeof r.value === "string" ? Buffer.byteLength(r.value) : r.value.length;
  if (r.headers) {
    for (const k in r.headers) n += HEADER_OVERHEAD + Buffer.byteLength(k) + Buffer.byteLength(r.headers[k]!);
  }
  return n;
}

/** Consecutive slices of `records` of at most `maxBytes` each (a bigger record alone). */
function sliceByBytes(records: OutRecord[], maxBytes: number): OutRecord[][] {
  const out: OutRecord[][] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const b = recordBytes(records[i]!);
    if (i > start && bytes + b > maxBytes) {
      out.push(records.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += b;
  }
  out.push(start === 0 ? records : records.slice(start));
  return out;
}

function topicsOf(records: OutRecord[]): string[] {
  return [...new Set(records.map((r) => r.topic))];
}

function settle(send: PendingSend, err: unknown): void {
  if (send.settled) return;
  send.settled = true;
  if (err === undefined) send.resolve();
  else send.reject(err);
}

const TOO_LARGE = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"]);

/**
 * The produce side on Kafka: an idempotent producer (acks=all) fed ONE request at a time.
 *
 * Why one at a time. The client numbers each send's records from one counter per partition
 * when the send starts, then queues the request behind the one on the wire (an idempotent
 * producer has one request in flight per broker). With several sends to one partition at
 * once (the collector keeps 8, the processor one per batch), a request that fails on the
 * wire (a dropped connection, a time-out) is retried after a delay while the ones queued
 * behind it go on. Not written: they reach the broker out of sequence, are refused with
 * OUT_OF_ORDER_SEQUENCE_NUMBER, and the client re-sends them under a new producer id, out of
 * order. Written but unanswered, with more than five later batches written meanwhile: the
 * broker (which remembers a producer's last five batches) no longer knows the retry for a
 * copy, refuses it, and the client writes it again under a new id: a duplicate. A send out of
 * retries failed to its caller, the client reset its numbering under the other sends in
 * flight, and the caller's retry wrote the batch again. The previous fix here, replacing the
 * producer on OUT_OF_ORDER_SEQUENCE_NUMBER, closed it under the other seven sends, which
 * failed and were sent again too. Measured on the local broker, 200,000 records from 8
 * senders with the connection dropped after every acknowledged send: 18,000–32,000 duplicates
 * and reordering (2,000 duplicates even with client.ts's longer retries and no send failing).
 * One request at a time removes the race: a failed request is retried by the client with the
 * same producer id and sequence numbers, nothing is written meanwhile (so the broker knows a
 * copy), and nothing overtakes it. It costs nothing measurable: the wire already carried one
 * request at a time (kafka-sink.test.ts; docs/guarantees.md "Kafka errors").
 *
 * Errors (see errors.ts). Retriable (the broker unreachable, or a partition without a leader,
 * for longer than the client's ~15 s of retries): the send rejects with PS_KAFKA_PRODUCE retriable, and so do
 * the sends queued behind it, at once (they would fail the same way, one after another); the
 * callers retry. After a producer-state error the producer is replaced, so the retry starts
 * from a new producer id. Final (too large, not authorized, unknown topic, invalid record):
 * the send rejects with PS_KAFKA_REJECTED retriable:false and the queue goes on. A request of
 * several records refused as too large is split in halves first: only a record too large by
 * itself is final.
 */
export class KafkaSink implements RecordSink {
  readonly #makeProducer: () => StringProducer;
  #producer: StringProducer;
  readonly #maxRequestBytes: number;
  readonly #queue: ProduceRequest[] = [];
  #pumping = false;
  #closed = false;
  /** Producers replaced after a producer-state error (for logs and tests). */
  resets = 0;
  /** Produce requests acknowledged (for tests). */
  requests = 0;

  constructor(
    conn: KafkaConnection,
    producer?: StringProducer,
    makeProducer?: () => StringProducer,
    opts: KafkaSinkOptions = {},
  ) {
    this.#makeProducer = makeProducer ?? (() => createProducer(conn));
    this.#producer = producer ?? this.#makeProducer();
    this.#maxRequestBytes = opts.maxRequestBytes ?? 900 * 1024;
  }

  send(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.#closed)
      return Promise.reject(
        new PaystreamError(ErrorCodes.KAFKA_PRODUCE, "produce failed: the Kafka sink is closed", {
          retriable: true,
        }),
      );
    return new Promise<void>((resolve, reject) => {
      const send: PendingSend = { resolve, reject, left: 0, settled: false };
      for (const slice of sliceByBytes(records, this.#maxRequestBytes)) {
        this.#queue.push({ send, records: slice });
        send.left++;
      }
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const req = this.#queue.shift()!;
        if (req.send.settled) continue; // an earlier request of the same send failed
        try {
          await this.#producer.send({
            messages: req.records.map((r) => ({
              topic: r.topic,
              ...(r.key === undefined ? {} : { key: r.key }),
              value: r.value,
              ...(r.headers ? { headers: r.headers } : {}),
            })),
          });
          this.requests++;
          if (--req.send.left === 0) settle(req.send, undefined);
        } catch (err) {
          this.#failed(req, err);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #failed(req: ProduceRequest, err: unknown): void {
    const c = classifyKafkaError(err, "produce");
    if (c.producerStateLost) {
      // The client has dropped its producer id already; a new client also starts with fresh
      // connections and metadata. Nothing else is in flight on the old one.
      this.resets++;
      const old = this.#producer;
      this.#producer = this.#makeProducer();
      void old.close().catch(() => {});
    }
    if (!c.retriable && req.records.length > 1 && c.reason !== undefined && TOO_LARGE.has(c.reason)) {
      // Many records can be too large together and fine apart: halve, ahead of the queue.
      const mid = req.records.length >> 1;
      this.#queue.unshift(
        { send: req.send, records: req.records.slice(0, mid) },
        { send: req.send, records: req.records.slice(mid) },
      );
      req.send.left++;
      return;
    }
    const topics = topicsOf(req.records);
    const e = toKafkaError(err, "produce", `produce to ${topics.join(",")}`, ErrorCodes.KAFKA_PRODUCE, {
      topics,
      records: req.records.length,
      bytes: req.records.reduce((a, r) => a + recordBytes(r), 0),
      producerReset: c.producerStateLost,
    });
    settle(req.send, e);
    if (e.retriable) {
      // What waits behind would fail the same way, each after its own retry budget: fail
      // it now and let the callers retry (they back off; nothing of theirs was sent).
      for (const other of this.#queue.splice(0)) {
        settle(
          other.send,
          new PaystreamError(ErrorCodes.KAFKA_PRODUCE, `not sent, an earlier produce failed: ${e.message}`, {
            cause: e,
            retriable: true,
          }),
        );
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    // A request still in the client's retries fails at once ("client closed"), and what is
    // queued behind it with it: a stop must not wait for a broker that is gone.
    await this.#producer.close().catch(() => {});
  }
}

/**
 * KafkaSink on the real broker (acks=all, idempotent producer):
 *
 * - one partition filled at full speed by 8 concurrent senders (the collector's pattern):
 *   every record arrives exactly once, in the order sent, and the sink never wedges;
 * - the same while the producer's connections are dropped every few thousand records (a
 *   request fails in flight, the case that used to end in OUT_OF_ORDER_SEQUENCE_NUMBER,
 *   duplicates and reordering);
 * - errors Kafka says are final fail at once with PS_KAFKA_REJECTED instead of stalling the
 *   partition: a record above the topic's max.message.bytes, a topic that does not exist.
 *
 * Bounded in records and by each test's timeout (a wedge fails it); nothing asserts timing.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { after, before, describe, it } from "node:test";
import {
  createAdmin,
  createConsumer,
  createProducer,
  type KafkaConnection,
  type StringProducer,
  waitForLeaders,
} from "../../src/adapters/kafka/client.ts";
import { KafkaSink } from "../../src/adapters/kafka/log.ts";
import { readRange } from "../../src/adapters/kafka/replay.ts";
import type { OutRecord } from "../../src/contracts/ports.ts";
import { isPaystreamError } from "../../src/core/errors.ts";
import { services, uniqueName } from "../helpers/services.ts";

const conn: KafkaConnection = { brokers: services.kafka, clientId: "paystream-it-sink" };
const topics: string[] = [];

async function createTopic(prefix: string, configs: { name: string; value: string }[] = []): Promise<string> {
  const topic = uniqueName(prefix);
  const admin = createAdmin(conn);
  try {
    await admin.createTopics({ topics: [{ topic, partitions: 1, replicas: 1 }], configs });
    await waitForLeaders(admin, [topic]);
  } finally {
    await admin.close();
  }
  topics.push(topic);
  return topic;
}

/** Every value of the topic's only partition, in log order. */
async function readAll(topic: string): Promise<string[]> {
  const consumer = createConsumer(conn, uniqueName("it-sink-read"));
  try {
    const end = (await consumer.listOffsets({ topics: [topic] })).get(topic)?.[0] ?? 0n;
    const values: string[] = [];
    await readRange(consumer, topic, 0, 0n, end, (recs) => {
      for (const r of recs) values.push(r.value.toString());
    });
    assert.equal(BigInt(values.length), end, "read the whole partition");
    return values;
  } finally {
    await consumer.close(true);
  }
}

/** Where `values` differs from "0", "1", ... "total-1": duplicates, missing, first misplaced. */
function exactlyOnceInOrder(values: string[], total: number): string | undefined {
  const seen = new Map<string, number>();
  for (const v of values) seen.set(v, (seen.get(v) ?? 0) + 1);
  let missing = 0;
  let duplicated = 0;
  for (let i = 0; i < total; i++) {
    const n = seen.get(String(i)) ?? 0;
    if (n === 0) missing++;
    if (n > 1) duplicated += n - 1;
  }
  const misplaced = values.findIndex((v, i) => v !== String(i));
  if (missing === 0 && duplicated === 0 && misplaced < 0 && values.length === total) return undefined;
  return `${values.length} records for ${total}: ${missing} missing, ${duplicated} duplicated, first out of place at offset ${misplaced} (${values[misplaced]})`;
}

/**
 * Sends records "0".."total-1" the way the collector does: `senders` concurrent callers of
 * `batch` records each, taking the next batch in turn and retrying a send that fails
 * retriably. A final error fails the fill. `afterAck` runs after each acknowledged send.
 */
async function fill(
  sink: KafkaSink,
  topic: string,
  total: number,
  opts: { batch?: number; senders?: number; afterAck?: (acked: number) => void } = {},
): Promise<string[]> {
  const batch = opts.batch ?? 2000;
  const failures: string[] = [];
  let next = 0;
  let acked = 0;
  const sender = async () => {
    while (next < total) {
      const start = next;
      const n = Math.min(batch, total - start);
      next += n;
      const records: OutRecord[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const seq = start + i;
        records[i] = { topic, key: `acct-${seq % 9973}`, value: String(seq) };
      }
      for (;;) {
        try {
          await sink.send(records);
          break;
        } catch (err) {
          if (!isPaystreamError(err) || !err.retriable) throw err;
          failures.push(err.message);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      acked += n;
      opts.afterAck?.(acked);
    }
  };
  await Promise.all(Array.from({ length: opts.senders ?? 8 }, sender));
  return failures;
}

describe("KafkaSink on the real broker", () => {
  before(async () => {
    // Fails (never skips) when the broker is down.
    const admin = createAdmin(conn);
    await admin.metadata({ topics: [] });
    await admin.close();
  });

  after(async () => {
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics }).catch(() => {});
    await admin.close();
  });

  it("fills one partition at full speed from 8 senders: 400,000 records, each once, in order", {
    timeout: 300_000,
  }, async () => {
    const topic = await createTopic("it-sink-fill");
    const sink = new KafkaSink(conn);
    try {
      const failures = await fill(sink, topic, 400_000);
      const problem = exactlyOnceInOrder(await readAll(topic), 400_000);
      assert.equal(problem, undefined, `${problem}; send failures: ${failures.slice(0, 5).join(" | ")}`);
    } finally {
      await sink.close();
    }
  });

  it("keeps every record once and in order while its connections drop every 2,000 records (each acknowledged send)", {
    timeout: 300_000,
  }, async () => {
    const topic = await createTopic("it-sink-drops");
    // The producers' connections, found through the client's diagnostics channel.
    const owners = new Set<number>();
    const connections: { ownerId: number; isConnected(): boolean; socket?: { destroy(): void } }[] = [];
    const onInstance = (m: unknown) => {
      const { type, instance } = m as { type: string; instance: (typeof connections)[number] };
      if (type === "connection") connections.push(instance);
    };
    subscribe("plt:kafka:instances", onInstance);
    const sink = new KafkaSink(conn, undefined, () => {
      const p: StringProducer = createProducer(conn);
      owners.add(p.instanceId);
      return p;
    });
    let drops = 0;
    let nextDrop = 2000;
    try {
      const failures = await fill(sink, topic, 200_000, {
        afterAck: (acked) => {
          if (acked < nextDrop) return;
          nextDrop += 2000;
          for (const c of connections) {
            if (owners.has(c.ownerId) && c.isConnected()) {
              c.socket?.destroy();
              drops++;
            }
          }
        },
      });
      assert.ok(drops >= 50, `connections dropped: ${drops}`);
      const problem = exactlyOnceInOrder(await readAll(topic), 200_000);
      assert.equal(
        problem,
        undefined,
        `${problem}; ${drops} drops, ${sink.resets} producer resets, send failures: ${failures.slice(0, 5).join(" | ")}`,
      );
    } finally {
      unsubscribe("plt:kafka:instances", onInstance);
      await sink.close();
    }
  });

  it("refuses a record above the topic's max.message.bytes at once (PS_KAFKA_REJECTED), and still takes many small ones", {
    timeout: 60_000,
  }, async () => {
    const topic = await createTopic("it-sink-large", [{ name: "max.message.bytes", value: "1024" }]);
    const sink = new KafkaSink(conn);
    try {
      await assert.rejects(sink.send([{ topic, key: "big", value: "x".repeat(2000) }]), (err: unknown) => {
        assert.ok(isPaystreamError(err), String(err));
        assert.equal(err.code, "PS_KAFKA_REJECTED");
        assert.equal(err.retriable, false);
        assert.equal(err.details.reason, "MESSAGE_TOO_LARGE");
        assert.match(err.message, /max\.message\.bytes/);
        return true;
      });
      // 40 records of 200 bytes: together far above 1,024 bytes, each well below.
      const small = Array.from({ length: 40 }, (_, i) => ({
        topic,
        key: `k${i}`,
        value: String(i).padEnd(200, "."),
      }));
      await sink.send(small);
      assert.deepEqual(
        await readAll(topic),
        small.map((r) => r.value),
      );
    } finally {
      await sink.close();
    }
  });

  it("fails a produce to a topic that does not exist (auto-creation off) with PS_KAFKA_REJECTED", {
    timeout: 60_000,
  }, async () => {
    // Fewer client retries than the default (~15 s of grace for a topic being created).
    const sink = new KafkaSink(conn, undefined, () => createProducer(conn, { retries: 2 }));
    try {
      await assert.rejects(
        sink.send([{ topic: uniqueName("it-sink-missing"), value: "x" }]),
        (err: unknown) => {
          assert.ok(isPaystreamError(err), String(err));
          assert.equal(err.code, "PS_KAFKA_REJECTED");
          assert.equal(err.retriable, false);
          assert.equal(err.details.reason, "UNKNOWN_TOPIC");
          return true;
        },
      );
    } finally {
      await sink.close();
    }
  });
});

/**
 * A produce error Kafka says is final stops the processor instead of stalling it: a record
 * whose DLQ copy is larger than the DLQ topic's max.message.bytes. The real `paystream
 * processor` (Kafka, Redis, PostgreSQL) exits non-zero (Kubernetes restarts it), says why,
 * and never commits the offset of the batch it could not write (after a restart that batch
 * is read again). Before, KafkaSink called every produce error retriable and the partition
 * stood still forever.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  createAdmin,
  createProducer,
  type KafkaConnection,
  waitForLeaders,
} from "../../src/adapters/kafka/client.ts";
import { produceTraffic, type TestTopics } from "../helpers/pipeline.ts";
import { freshDatabase, startProcessor, waitUntil } from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const conn: KafkaConnection = { brokers: services.kafka, clientId: "paystream-it-fatal" };

describe("processor on a final Kafka produce error", () => {
  const topics: TestTopics = {
    input: uniqueName("it-fatal-in"),
    dlq: uniqueName("it-fatal-dlq"),
    alerts: uniqueName("it-fatal-alerts"),
    labels: uniqueName("it-fatal-labels"),
  };
  const group = uniqueName("it-fatal-group");
  let db: Awaited<ReturnType<typeof freshDatabase>>;

  before(async () => {
    const admin = createAdmin(conn);
    try {
      await admin.createTopics({
        topics: [topics.input, topics.alerts, topics.labels].map((topic) => ({
          topic,
          partitions: 1,
          replicas: 1,
        })),
      });
      // The DLQ takes records of at most 1 KiB.
      await admin.createTopics({
        topics: [{ topic: topics.dlq, partitions: 1, replicas: 1 }],
        configs: [{ name: "max.message.bytes", value: "1024" }],
      });
      await waitForLeaders(admin, Object.values(topics));
    } finally {
      await admin.close();
    }
    db = await freshDatabase();
  });

  after(async () => {
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
    await admin.close();
    await db?.drop();
  });

  it("exits non-zero, names the error, and commits nothing from the failed batch on", {
    timeout: 180_000,
  }, async () => {
    const noFaults = { duplicate: 0, late: 0, outOfOrder: 0, malformed: 0 };
    const traffic = { accounts: 5_000, merchants: 500, seconds: 2, ratePerSecond: 200, faultRates: noFaults };
    const first = await produceTraffic(topics.input, { ...traffic, seed: 11 });
    const proc = startProcessor(topics, group, db.url);
    try {
      // Healthy first: everything so far is processed and committed.
      await waitUntil(
        async () => (await committedOffsets()).some((c) => c === BigInt(first.length)),
        120_000,
        `the first ${first.length} records committed`,
      );
      // Not JSON, 3 KB: the processor dead-letters it, and its DLQ copy is above 1 KiB.
      const producer = createProducer(conn);
      const sent = await producer.send({
        messages: [{ topic: topics.input, key: "oversized", value: `{"not json ${"x".repeat(3000)}` }],
      });
      await producer.close();
      assert.equal(sent.offsets?.[0]?.offset, BigInt(first.length));
      await produceTraffic(topics.input, { ...traffic, seed: 12 });

      await waitUntil(() => proc.child.exitCode !== null, 120_000, "the processor stops").catch(
        (err: Error) => {
          throw new Error(`${err.message}; output:\n${proc.output().slice(-3000)}`);
        },
      );
      assert.equal(await proc.exited, 1, `exit code; output:\n${proc.output().slice(-3000)}`);
      assert.match(proc.output(), /PS_KAFKA_REJECTED/, "the log says why");
      assert.match(proc.output(), /MESSAGE_TOO_LARGE/, "the log names Kafka's error");
    } finally {
      if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    }
    // The refused record's batch, and everything after it, stay uncommitted: read again after a restart.
    assert.deepEqual(await committedOffsets(), [BigInt(first.length)]);
  });

  /** The group's committed offsets on the input topic, as an operator looks them up. */
  async function committedOffsets(): Promise<bigint[]> {
    const admin = createAdmin(conn);
    try {
      const groups = await admin.listConsumerGroupOffsets({ groups: [group] });
      return groups
        .flatMap((g) => g.topics)
        .filter((t) => t.name === topics.input)
        .flatMap((t) => t.partitions.map((p) => p.committedOffset));
    } finally {
      await admin.close();
    }
  }
});

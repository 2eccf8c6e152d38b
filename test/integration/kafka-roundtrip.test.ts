import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  checkKafka,
  createAdmin,
  createConsumer,
  createProducer,
  ensureTopics,
  type KafkaConnection,
} from "../../src/adapters/kafka/client.ts";
import { Topics } from "../../src/contracts/topics.ts";
import type { TransactionWireV1 } from "../../src/contracts/transaction.ts";
import { decodeTransaction, luhnCheckDigit } from "../../src/core/schema.ts";
import { services, uniqueName } from "../helpers/services.ts";

const conn: KafkaConnection = { brokers: services.kafka, clientId: "paystream-test" };

function card(i: number): string {
  const partial = `411111${String(i).padStart(9, "0")}`;
  return partial + luhnCheckDigit(partial);
}

function tx(i: number): TransactionWireV1 {
  return {
    schema_version: 1,
    transaction_id: randomUUID(),
    account_id: `acct-${i % 97}`,
    card_number: card(i),
    cardholder_name: "Test Holder",
    email: "holder@example.com",
    ip_address: "203.0.113.7",
    device_id: `dev-${i % 97}`,
    amount: `${(i % 500) + 1}.25`,
    currency: "EUR",
    merchant_id: `m-${i % 31}`,
    merchant_category: "5411",
    country: "DE",
    city: "Berlin",
    lat: 52.52,
    lon: 13.405,
    event_time: new Date(Date.now() - (i % 1000)).toISOString(),
  };
}

describe("Kafka round trip on the real broker", () => {
  before(async () => {
    await checkKafka(conn);
  });

  it("creates the project topics with their partition counts (24 for transactions)", async () => {
    const counts = await ensureTopics(conn);
    assert.equal(counts.get(Topics.transactions), 24);
    for (const t of Object.values(Topics)) assert.ok((counts.get(t) ?? 0) > 0, `${t} exists`);
    // Idempotent: a second call changes nothing and does not throw.
    assert.deepEqual(await ensureTopics(conn), counts);
  });

  describe("produce → consumer group", () => {
    const topic = uniqueName("it-roundtrip");
    const N = 5000;
    const sent = new Map<string, string>(); // transaction_id → key
    const producer = createProducer(conn);
    const consumer = createConsumer(conn, uniqueName("it-group"), { maxWaitTime: 200 });

    before(async () => {
      const admin = createAdmin(conn);
      await admin.createTopics({ topics: [{ topic, partitions: 24, replicas: 1 }] });
      await admin.close();
    });
    after(async () => {
      await consumer.close(true);
      await producer.close();
      const admin = createAdmin(conn);
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.close();
    });

    it("delivers every schema-v1 transaction exactly once, with its key, keyed to one partition", async () => {
      const messages = [];
      for (let i = 0; i < N; i++) {
        const t = tx(i);
        sent.set(t.transaction_id, t.account_id);
        messages.push({ topic, key: t.account_id, value: JSON.stringify(t) });
      }
      for (let i = 0; i < messages.length; i += 1000)
        await producer.send({ messages: messages.slice(i, i + 1000) });

      const stream = await consumer.consume({ topics: [topic], mode: "earliest" });
      const seen = new Map<string, number>();
      const partitionOfKey = new Map<string, number>();
      const deadline = Date.now() + 60_000;
      for await (const msg of stream) {
        const decoded = decodeTransaction(msg.value);
        assert.ok(decoded.ok, `record at ${msg.partition}/${msg.offset} decodes`);
        const id = decoded.tx.transaction_id;
        seen.set(id, (seen.get(id) ?? 0) + 1);
        assert.equal(msg.key, sent.get(id), "key is the account id it was sent with");
        const p = partitionOfKey.get(msg.key);
        if (p === undefined) partitionOfKey.set(msg.key, msg.partition);
        else assert.equal(msg.partition, p, `all records of ${msg.key} land in one partition`);
        if (seen.size === N || Date.now() > deadline) break;
      }
      await stream.close();
      assert.equal(seen.size, N, "every transaction arrived");
      for (const [id, count] of seen) assert.equal(count, 1, `${id} arrived once`);
      assert.ok(new Set(partitionOfKey.values()).size > 1, "keys spread over several partitions");
    });
  });
});

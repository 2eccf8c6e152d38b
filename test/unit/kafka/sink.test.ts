/**
 * KafkaSink replaces an idempotent producer whose sequence numbers the broker no longer
 * accepts — once per failure episode, however many sends in flight fail with it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { StringProducer } from "../../../src/adapters/kafka/client.ts";
import { describeClientError, hasProtocolError, KafkaSink } from "../../../src/adapters/kafka/log.ts";

/** The shape the client gives: MultipleErrors wrapping ProtocolErrors with an apiId. */
function clientError(apiId: string): Error {
  const inner = Object.assign(new Error("Received response with error"), { apiId });
  return Object.assign(new Error("Producing messages failed."), {
    errors: [Object.assign(new Error("x"), { errors: [inner] })],
  });
}

class FakeProducer {
  sent = 0;
  closed = false;
  fail: Error | undefined;
  async send(): Promise<void> {
    if (this.fail) throw this.fail;
    this.sent++;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const conn = { brokers: ["127.0.0.1:1"], clientId: "t" };
const rec = [{ topic: "t", key: "k", value: "v" }];

describe("KafkaSink", () => {
  it("finds a protocol error id nested in MultipleErrors and causes", () => {
    const ids = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER"]);
    assert.equal(hasProtocolError(clientError("OUT_OF_ORDER_SEQUENCE_NUMBER"), ids), true);
    assert.equal(
      hasProtocolError(new Error("x", { cause: clientError("OUT_OF_ORDER_SEQUENCE_NUMBER") }), ids),
      true,
    );
    assert.equal(hasProtocolError(clientError("NOT_LEADER_OR_FOLLOWER"), ids), false);
    assert.equal(hasProtocolError("text", ids), false);
  });

  it("replaces the producer after a sequence error, once for concurrent failures", async () => {
    const made: FakeProducer[] = [];
    const make = () => {
      const p = new FakeProducer();
      made.push(p);
      return p as unknown as StringProducer;
    };
    const sink = new KafkaSink(conn, undefined, make);
    made[0]!.fail = clientError("OUT_OF_ORDER_SEQUENCE_NUMBER");
    const results = await Promise.allSettled([sink.send(rec), sink.send(rec), sink.send(rec)]);
    assert.ok(
      results.every((r) => r.status === "rejected"),
      "the failed sends still fail (the caller retries)",
    );
    const err = (results[0] as PromiseRejectedResult).reason as { code: string; retriable: boolean };
    assert.equal(err.code, "PS_KAFKA_PRODUCE");
    assert.equal(err.retriable, true);
    assert.equal(made.length, 2, "one new producer, not one per failed send");
    assert.equal(sink.resets, 1);
    assert.equal(made[0]!.closed, true);
    await sink.send(rec);
    assert.equal(made[1]!.sent, 1, "the retry goes through the new producer");
  });

  it("says what failed underneath the client's generic message", async () => {
    const text = describeClientError(clientError("OUT_OF_ORDER_SEQUENCE_NUMBER"));
    assert.match(
      text,
      /^Producing messages failed\. <- .*OUT_OF_ORDER_SEQUENCE_NUMBER: Received response with error/,
    );
    const sink = new KafkaSink(conn, undefined, () => {
      const p = new FakeProducer();
      p.fail = clientError("NOT_LEADER_OR_FOLLOWER");
      return p as unknown as StringProducer;
    });
    await assert.rejects(sink.send(rec), /produce failed: .*NOT_LEADER_OR_FOLLOWER/);
  });

  it("keeps the producer on other errors", async () => {
    const made: FakeProducer[] = [];
    const sink = new KafkaSink(conn, undefined, () => {
      const p = new FakeProducer();
      made.push(p);
      return p as unknown as StringProducer;
    });
    made[0]!.fail = clientError("NOT_LEADER_OR_FOLLOWER");
    await assert.rejects(sink.send(rec));
    assert.equal(made.length, 1);
    assert.equal(sink.resets, 0);
  });
});

/**
 * KafkaSink on a fake producer that fails the way the client does: one request at a time in
 * call order, sends sliced by bytes, final errors fail fast (only the send they concern),
 * retriable errors fail the queue for the callers to retry, producer-state errors get a new
 * producer.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MultipleErrors, NetworkError, protocolErrors, ResponseError } from "@platformatic/kafka";
import type { StringProducer } from "../../../src/adapters/kafka/client.ts";
import { KafkaSink } from "../../../src/adapters/kafka/log.ts";
import type { OutRecord } from "../../../src/contracts/ports.ts";

const code = (id: string) => (protocolErrors as Record<string, { code: number }>)[id]!.code;

function produceFailure(id: string): Error {
  return new MultipleErrors("Producing messages failed.", [
    new ResponseError(0, 11, { "/responses/0/partition_responses/0": [code(id), null] }, {}),
  ]);
}

type Msg = { topic: string; key?: string; value: string | Buffer };

class FakeProducer {
  /** Values of every acknowledged message, in the order acknowledged. */
  readonly log: string[] = [];
  requests = 0;
  inFlight = 0;
  maxInFlight = 0;
  closed = false;
  /** Decides per request: an error to throw, or undefined to accept. */
  fail: ((messages: Msg[]) => Error | undefined) | undefined;

  async send(opts: { messages: Msg[] }): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      if (this.closed) throw new NetworkError("Client is closed.", { canRetry: false, closed: true });
      const err = this.fail?.(opts.messages);
      if (err) throw err;
      this.requests++;
      for (const m of opts.messages) this.log.push(String(m.value));
    } finally {
      this.inFlight--;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const conn = { brokers: ["127.0.0.1:1"], clientId: "t" };

function records(from: number, n: number, value = (i: number) => `v${i}`): OutRecord[] {
  return Array.from({ length: n }, (_, i) => ({ topic: "t", key: `k${from + i}`, value: value(from + i) }));
}

function sinkWith(...producers: FakeProducer[]): { sink: KafkaSink; made: FakeProducer[] } {
  const made: FakeProducer[] = [];
  const make = () => {
    const p = producers[made.length] ?? new FakeProducer();
    made.push(p);
    return p as unknown as StringProducer;
  };
  return { sink: new KafkaSink(conn, undefined, make, { maxRequestBytes: 1000 }), made };
}

describe("KafkaSink", () => {
  it("sends one request at a time, in the order of the send() calls", async () => {
    const { sink, made } = sinkWith();
    await Promise.all(Array.from({ length: 8 }, (_, b) => sink.send(records(b * 5, 5))));
    assert.equal(made[0]!.maxInFlight, 1, "never two requests in flight");
    assert.deepEqual(
      made[0]!.log,
      Array.from({ length: 40 }, (_, i) => `v${i}`),
    );
  });

  it("slices a send bigger than maxRequestBytes into several requests, in order", async () => {
    const { sink, made } = sinkWith();
    // 50 records of ~46 bytes each (value 10 + key ~3 + overhead 32): ~2,300 bytes → 3 requests.
    await sink.send(records(0, 50, (i) => String(i).padStart(10, "0")));
    assert.equal(made[0]!.requests, 3);
    assert.equal(made[0]!.log.length, 50);
    assert.deepEqual(
      made[0]!.log,
      Array.from({ length: 50 }, (_, i) => String(i).padStart(10, "0")),
    );
  });

  it("rejects a record too large by itself with PS_KAFKA_REJECTED, not retriable, and goes on with the queue", async () => {
    const p = new FakeProducer();
    p.fail = (ms) =>
      ms.some((m) => String(m.value).length > 500) ? produceFailure("MESSAGE_TOO_LARGE") : undefined;
    const { sink } = sinkWith(p);
    const big = sink.send([{ topic: "t", key: "x", value: "x".repeat(600) }]);
    const after = sink.send(records(0, 2));
    await assert.rejects(
      big,
      (err: { code: string; retriable: boolean; details: Record<string, unknown> }) => {
        assert.equal(err.code, "PS_KAFKA_REJECTED");
        assert.equal(err.retriable, false);
        assert.equal(err.details.reason, "MESSAGE_TOO_LARGE");
        assert.deepEqual(err.details.topics, ["t"]);
        return true;
      },
    );
    await after;
    assert.deepEqual(p.log, ["v0", "v1"]);
  });

  it("halves a request the broker finds too large as a whole until each part fits", async () => {
    const p = new FakeProducer();
    // The "broker" takes at most 300 bytes per request; the sink's own slices are 1,000.
    p.fail = (ms) =>
      ms.reduce((a, m) => a + String(m.value).length + 40, 0) > 300
        ? produceFailure("MESSAGE_TOO_LARGE")
        : undefined;
    const { sink } = sinkWith(p);
    await sink.send(records(0, 16, (i) => `value-${i}`.padEnd(20, ".")));
    assert.equal(p.log.length, 16);
    assert.deepEqual(
      p.log,
      Array.from({ length: 16 }, (_, i) => `value-${i}`.padEnd(20, ".")),
    );
  });

  it("on a retriable error rejects that send and the queued ones (retriable); the callers' retries go through", async () => {
    const p = new FakeProducer();
    let failures = 1;
    p.fail = () =>
      failures-- > 0
        ? new MultipleErrors("produce failed 19 times.", [new NetworkError("Connection closed")])
        : undefined;
    const { sink } = sinkWith(p);
    const sends = [sink.send(records(0, 1)), sink.send(records(1, 1)), sink.send(records(2, 1))];
    const results = await Promise.allSettled(sends);
    for (const r of results) {
      assert.equal(r.status, "rejected");
      const err = (r as PromiseRejectedResult).reason as { code: string; retriable: boolean };
      assert.equal(err.code, "PS_KAFKA_PRODUCE");
      assert.equal(err.retriable, true);
    }
    assert.match(
      ((results[1] as PromiseRejectedResult).reason as Error).message,
      /^not sent, an earlier produce failed: produce to t failed: produce failed 19 times\. <- Connection closed/,
    );
    await sink.send(records(0, 3));
    assert.deepEqual(p.log, ["v0", "v1", "v2"]);
  });

  it("replaces the producer after a producer-state error; the retry goes through the new one", async () => {
    const first = new FakeProducer();
    first.fail = () => produceFailure("OUT_OF_ORDER_SEQUENCE_NUMBER");
    const { sink, made } = sinkWith(first);
    await assert.rejects(
      sink.send(records(0, 1)),
      (err: { code: string; retriable: boolean; message: string }) => {
        assert.equal(err.code, "PS_KAFKA_PRODUCE");
        assert.equal(err.retriable, true);
        assert.match(
          err.message,
          /OUT_OF_ORDER_SEQUENCE_NUMBER: The broker received an out of order sequence number/,
        );
        return true;
      },
    );
    assert.equal(sink.resets, 1);
    assert.equal(made.length, 2);
    assert.equal(first.closed, true);
    await sink.send(records(0, 1));
    assert.deepEqual(made[1]!.log, ["v0"]);
  });

  it("keeps the producer on other errors", async () => {
    const p = new FakeProducer();
    let failures = 1;
    p.fail = () => (failures-- > 0 ? produceFailure("NOT_LEADER_OR_FOLLOWER") : undefined);
    const { sink, made } = sinkWith(p);
    await assert.rejects(sink.send(records(0, 1)), /produce to t failed: .*NOT_LEADER_OR_FOLLOWER/);
    await sink.send(records(0, 1));
    assert.equal(made.length, 1);
    assert.equal(sink.resets, 0);
  });

  it("after close, sends reject (retriable) and the producer is closed", async () => {
    const { sink, made } = sinkWith();
    await sink.close();
    assert.equal(made[0]!.closed, true);
    await assert.rejects(sink.send(records(0, 1)), (err: { code: string; retriable: boolean }) => {
      assert.equal(err.code, "PS_KAFKA_PRODUCE");
      assert.equal(err.retriable, true);
      return true;
    });
  });

  it("resolves an empty send without a request", async () => {
    const { sink, made } = sinkWith();
    await sink.send([]);
    assert.equal(made[0]!.requests, 0);
  });
});

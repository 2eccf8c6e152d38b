/**
 * Kafka error classification, on the client's own error objects (the shapes a failed send,
 * commit or fetch really throws): retriable ones are waited out, final ones stop the caller.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AuthenticationError,
  MultipleErrors,
  NetworkError,
  ProtocolError,
  protocolErrors,
  ResponseError,
  TimeoutError,
  UserError,
} from "@platformatic/kafka";
import {
  classifyKafkaError,
  describeClientError,
  GROUP_MEMBERSHIP_ERRORS,
  PRODUCER_STATE_ERRORS,
  toKafkaError,
} from "../../../src/adapters/kafka/errors.ts";
import { ErrorCodes, PaystreamError } from "../../../src/core/errors.ts";

const PRODUCE_API = 0;

/** A produce that failed as the client reports it: per-partition codes under "Producing messages failed.". */
function produceFailure(...codes: number[]): Error {
  const byPath: Record<string, [number, null]> = {};
  codes.forEach((c, i) => {
    byPath[`/responses/0/partition_responses/${i}`] = [c, null];
  });
  return new MultipleErrors("Producing messages failed.", [new ResponseError(PRODUCE_API, 11, byPath, {})]);
}

/** The client's retry history: "produce failed N times." with each attempt's error. */
function retried(...errors: Error[]): Error {
  return new MultipleErrors(`produce failed ${errors.length} times.`, errors);
}

const code = (id: string) => (protocolErrors as Record<string, { code: number }>)[id]!.code;

describe("classifyKafkaError", () => {
  it("follows the client's protocol table for every error code on a produce", () => {
    for (const [id, def] of Object.entries(
      protocolErrors as Record<string, { code: number; canRetry: boolean }>,
    )) {
      if (def.code === 0) continue;
      const c = classifyKafkaError(produceFailure(def.code), "produce");
      assert.deepEqual(c.protocolErrors, [id]);
      if (PRODUCER_STATE_ERRORS.has(id)) {
        assert.equal(c.retriable, true, `${id}: a new producer id starts clean`);
        assert.equal(c.producerStateLost, true, id);
      } else {
        assert.equal(c.retriable, def.canRetry, `${id} retriable as the client says (${def.canRetry})`);
        assert.equal(c.reason, def.canRetry ? undefined : id);
        assert.equal(c.producerStateLost, false, id);
      }
    }
  });

  it("is final for a record too large, authorization, invalid records; retriable for leader moves and time-outs", () => {
    for (const id of [
      "MESSAGE_TOO_LARGE",
      "RECORD_LIST_TOO_LARGE",
      "TOPIC_AUTHORIZATION_FAILED",
      "CLUSTER_AUTHORIZATION_FAILED",
      "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
      "INVALID_RECORD",
      "INVALID_REQUIRED_ACKS",
      "POLICY_VIOLATION",
    ]) {
      assert.equal(classifyKafkaError(produceFailure(code(id)), "produce").reason, id);
    }
    for (const id of [
      "NOT_LEADER_OR_FOLLOWER",
      "LEADER_NOT_AVAILABLE",
      "REQUEST_TIMED_OUT",
      "NOT_ENOUGH_REPLICAS",
      "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
      "KAFKA_STORAGE_ERROR",
      "UNKNOWN_TOPIC_OR_PARTITION",
      "THROTTLING_QUOTA_EXCEEDED",
    ]) {
      assert.equal(classifyKafkaError(produceFailure(code(id)), "produce").retriable, true, id);
    }
  });

  it("is final when any partition is, whatever the others said", () => {
    const c = classifyKafkaError(
      produceFailure(code("NOT_LEADER_OR_FOLLOWER"), code("MESSAGE_TOO_LARGE")),
      "produce",
    );
    assert.equal(c.retriable, false);
    assert.equal(c.reason, "MESSAGE_TOO_LARGE");
    assert.deepEqual(c.protocolErrors, ["NOT_LEADER_OR_FOLLOWER", "MESSAGE_TOO_LARGE"]);
  });

  it("waits out network errors, time-outs and a closed client, even where the client says it will not retry", () => {
    const cases: Error[] = [
      retried(new TimeoutError("Request timed out"), new NetworkError("Connection closed")),
      new MultipleErrors("Cannot connect to any broker.", [
        new NetworkError("Connection to 127.0.0.1:9092 failed.", {
          cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9092"), { code: "ECONNREFUSED" }),
        }),
      ]),
      new NetworkError("Client is closed.", { canRetry: false, closed: true }),
      new NetworkError("Connection pool is closed.", { canRetry: false, closed: true }),
      retried(new NetworkError("Connection closed"), new UserError("Client closed while retrying produce.")),
      new Error("socket hang up"),
    ];
    for (const e of cases)
      assert.equal(classifyKafkaError(e, "produce").retriable, true, describeClientError(e));
  });

  it("is final for an unknown topic (auto-creation off), failed SASL credentials, a record the client cannot serialize", () => {
    assert.equal(
      classifyKafkaError(new UserError("Unknown topic payments.nope."), "produce").reason,
      "UNKNOWN_TOPIC",
    );
    const sasl = new NetworkError("Connection to 127.0.0.1:9092 failed.", {
      cause: new AuthenticationError("SASL authentication failed."),
    });
    assert.equal(classifyKafkaError(sasl, "produce").reason, "SASL_AUTHENTICATION");
    assert.equal(classifyKafkaError(sasl, "fetch").reason, "SASL_AUTHENTICATION");
    const serialize = new UserError("Failed to serialize a message.", { cause: new TypeError("x") });
    assert.equal(classifyKafkaError(serialize, "produce").reason, "PLT_KFK_USER");
  });

  it("takes a final error out of the client's retry history", () => {
    const e = new MultipleErrors("Producing messages failed.", [
      retried(new NetworkError("Connection closed"), produceFailure(code("TOPIC_AUTHORIZATION_FAILED"))),
    ]);
    assert.equal(classifyKafkaError(e, "produce").reason, "TOPIC_AUTHORIZATION_FAILED");
  });

  it("flags producer-state errors so the producer gets a new id", () => {
    const c = classifyKafkaError(produceFailure(code("OUT_OF_ORDER_SEQUENCE_NUMBER")), "produce");
    assert.deepEqual([c.retriable, c.producerStateLost], [true, true]);
    const other = classifyKafkaError(produceFailure(code("NOT_LEADER_OR_FOLLOWER")), "produce");
    assert.equal(other.producerStateLost, false);
  });

  it("on commits and fetches, rejoins after group-membership errors and stops on authorization", () => {
    for (const id of GROUP_MEMBERSHIP_ERRORS) {
      const e = new ResponseError(8, 9, { "/topics/0/partitions/0": [code(id), null] }, {});
      assert.equal(classifyKafkaError(e, "commit").retriable, true, `${id} on commit`);
      assert.equal(classifyKafkaError(e, "fetch").retriable, true, `${id} on fetch`);
    }
    const denied = new ResponseError(8, 9, { "": [code("GROUP_AUTHORIZATION_FAILED"), null] }, {});
    assert.equal(classifyKafkaError(denied, "commit").reason, "GROUP_AUTHORIZATION_FAILED");
    // Passing states the consumer reports as user errors are not final there.
    assert.equal(
      classifyKafkaError(new UserError("Cannot find broker with node id 1"), "fetch").retriable,
      true,
    );
    assert.equal(classifyKafkaError(new UserError("Unknown topic t."), "fetch").reason, "UNKNOWN_TOPIC");
    // A replay whose start fell out of retention computes its range again.
    const range = new Error("replay fetch failed", { cause: new ProtocolError(code("OFFSET_OUT_OF_RANGE")) });
    assert.equal(classifyKafkaError(range, "fetch").retriable, true);
  });

  it("survives errors that are not the client's, and cycles", () => {
    assert.equal(classifyKafkaError("text", "produce").retriable, true);
    assert.equal(classifyKafkaError(undefined, "produce").retriable, true);
    const a = new Error("a") as Error & { cause?: unknown };
    a.cause = a;
    assert.equal(classifyKafkaError(a, "produce").retriable, true);
  });
});

describe("toKafkaError", () => {
  it("makes a final error PS_KAFKA_REJECTED, not retriable, with the reason and what to do", () => {
    const e = toKafkaError(
      produceFailure(code("MESSAGE_TOO_LARGE")),
      "produce",
      "produce to t",
      ErrorCodes.KAFKA_PRODUCE,
      {
        topics: ["t"],
      },
    );
    assert.equal(e.code, "PS_KAFKA_REJECTED");
    assert.equal(e.retriable, false);
    assert.equal(e.details.reason, "MESSAGE_TOO_LARGE");
    assert.deepEqual(e.details.kafkaErrors, ["MESSAGE_TOO_LARGE"]);
    assert.deepEqual(e.details.topics, ["t"]);
    assert.match(
      e.message,
      /^produce to t refused by Kafka for good \(MESSAGE_TOO_LARGE: .*max\.message\.bytes/,
    );
    assert.match(e.message, /MESSAGE_TOO_LARGE: The request included a message larger/);
    assert.ok(e.cause instanceof Error);
  });

  it("keeps a retriable error retriable under the caller's code", () => {
    const e = toKafkaError(
      retried(new NetworkError("Connection closed")),
      "commit",
      "commit",
      ErrorCodes.KAFKA_UNREACHABLE,
    );
    assert.equal(e.code, "PS_KAFKA_UNREACHABLE");
    assert.equal(e.retriable, true);
    assert.match(e.message, /^commit failed: produce failed 1 times\. <- Connection closed/);
  });

  it("passes our own errors through", () => {
    const ours = new PaystreamError(ErrorCodes.KAFKA_PRODUCE, "x", { retriable: true });
    assert.equal(toKafkaError(ours, "produce", "p", ErrorCodes.KAFKA_PRODUCE), ours);
  });
});

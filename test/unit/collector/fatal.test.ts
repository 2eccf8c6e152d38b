/**
 * A sink that refuses records for good (Kafka's PS_KAFKA_REJECTED: too large, not
 * authorized, unknown topic) stops the collector instead of being retried forever: the
 * records are counted as unsent, the error is kept, and `finished` resolves so the command
 * exits non-zero. A retriable failure is still retried.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Collector } from "../../../src/collector/service.ts";
import type { OutRecord, RecordSink } from "../../../src/contracts/ports.ts";
import { ErrorCodes, PaystreamError } from "../../../src/core/errors.ts";
import { collectorTestConfig, silentLogger, testRegistry } from "../../helpers/fixtures.ts";

const cfg = collectorTestConfig;

class RefusingSink implements RecordSink {
  calls = 0;
  readonly error: () => Error;
  constructor(error: () => Error) {
    this.error = error;
  }
  async send(_records: OutRecord[]): Promise<void> {
    this.calls++;
    throw this.error();
  }
  async close(): Promise<void> {}
}

const rejected = () =>
  new PaystreamError(ErrorCodes.KAFKA_REJECTED, "produce to t: MESSAGE_TOO_LARGE", {
    retriable: false,
    details: { reason: "MESSAGE_TOO_LARGE" },
  });

describe("collector on a final sink error", () => {
  // The timeout is the assertion that nothing is retried forever.
  it("stops by itself, counts what it generated as unsent and keeps the error", {
    timeout: 10_000,
  }, async () => {
    const sink = new RefusingSink(rejected);
    const c = new Collector(cfg, sink, silentLogger("t"), testRegistry("t"));
    c.start();
    await c.finished;
    assert.equal(c.fatal?.code, ErrorCodes.KAFKA_REJECTED);
    assert.equal(c.totals.produced, 0);
    assert.ok(c.totals.unsent > 0, `unsent ${c.totals.unsent}`);
    assert.ok(c.failing?.includes("MESSAGE_TOO_LARGE"));
    // No retries: at most one attempt per send that was in flight.
    assert.ok(sink.calls <= cfg.maxInFlight, `${sink.calls} attempts`);
    await c.stop(100);
  });

  it("keeps retrying a retriable failure (the broker may come back)", { timeout: 10_000 }, async () => {
    const sink = new RefusingSink(
      () => new PaystreamError(ErrorCodes.KAFKA_PRODUCE, "broker unreachable", { retriable: true }),
    );
    const c = new Collector(cfg, sink, silentLogger("t"), testRegistry("t"));
    c.start();
    let finished = false;
    void c.finished.then(() => {
      finished = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(finished, false);
    assert.equal(c.fatal, undefined);
    assert.ok(sink.calls > cfg.maxInFlight, `retried: ${sink.calls} attempts`);
    await c.stop(200);
    assert.ok(c.totals.unsent > 0);
  });
});

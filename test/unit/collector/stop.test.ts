/**
 * A stop while the broker refuses everything: SIGTERM must not hang on retries forever; the
 * records given up on are counted, and nothing is counted as produced that was not taken.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Collector } from "../../../src/collector/service.ts";
import type { OutRecord, RecordSink } from "../../../src/contracts/ports.ts";
import { collectorTestConfig, silentLogger, testRegistry } from "../../helpers/fixtures.ts";

const cfg = collectorTestConfig;

class Sink implements RecordSink {
  refuse = true;
  taken = 0;
  async send(records: OutRecord[]): Promise<void> {
    if (this.refuse) throw new Error("broker says no");
    this.taken += records.length;
  }
  async close(): Promise<void> {}
}

describe("collector stop", () => {
  // The timeout is the assertion that a stop never hangs on a refusing broker.
  it("gives up on in-flight records after the grace period and counts them as unsent", {
    timeout: 10_000,
  }, async () => {
    const sink = new Sink();
    const c = new Collector(cfg, sink, silentLogger("t"), testRegistry("t"));
    c.start();
    await new Promise((r) => setTimeout(r, 200));
    await c.stop(300);
    assert.equal(c.totals.produced, 0);
    assert.ok(c.totals.unsent > 0, `unsent ${c.totals.unsent}`);
    assert.ok(c.totals.sendErrors > 0);
  });

  it("flushes everything when the broker takes it within the grace period", async () => {
    const sink = new Sink();
    sink.refuse = false;
    const c = new Collector(cfg, sink, silentLogger("t"), testRegistry("t"));
    c.start();
    await new Promise((r) => setTimeout(r, 200));
    await c.stop(5000);
    assert.equal(c.totals.unsent, 0);
    assert.equal(c.totals.produced, sink.taken);
    assert.ok(c.totals.produced > 0);
  });
});

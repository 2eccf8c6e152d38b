/**
 * The processor service as `paystream up` runs it (embedded log, demo mode): its DLQ records
 * keep their reason and source headers in the embedded log (they used to be dropped there),
 * carry a sealed original under a throwaway key, and start-up says once which DLQ key seals
 * originals — or that none does and nothing can be redriven — without ever logging a key.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { EmbeddedAlertStore } from "../../../src/adapters/embedded/alerts.ts";
import { EmbeddedLog, EmbeddedSink, EmbeddedSource } from "../../../src/adapters/embedded/log.ts";
import { InMemorySharedDedupStore } from "../../../src/core/dedup.ts";
import type { Logger } from "../../../src/lib/log.ts";
import { toProcessorConfig } from "../../../src/processor/config.ts";
import { resolveDlqKey, startProcessor } from "../../../src/processor/service.ts";
import { TEST_PAN, txJson } from "../../helpers/fixtures.ts";
import { ALERTS, DLQ, IN, MemoryWarehouse, until } from "./harness.ts";

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const log = pino({ level: "info" }, stream) as unknown as Logger;
  return {
    log,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const KEY_HEX = "3c".repeat(32);

describe("processor start-up: the DLQ key", () => {
  it("says which key id seals originals, and never logs the key", () => {
    const { log, lines } = capturingLogger();
    const key = resolveDlqKey({ dlqKey: KEY_HEX, dlqKeyId: undefined, demo: false }, log);
    assert.match(key!.id, /^[0-9a-f]{16}$/);
    const [line] = lines();
    assert.equal(line?.dlqKeyId, key!.id);
    assert.ok(!JSON.stringify(lines()).includes(KEY_HEX));
    assert.equal(resolveDlqKey({ dlqKey: KEY_HEX, dlqKeyId: "2026-q1", demo: false }, log)?.id, "2026-q1");
  });

  it("warns once when there is no key: no originals kept, nothing redrivable", () => {
    const { log, lines } = capturingLogger();
    assert.equal(resolveDlqKey({ dlqKey: undefined, dlqKeyId: undefined, demo: false }, log), undefined);
    const warnings = lines().filter((l) => l.level === 40);
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!.msg), /no DLQ key .*cannot redrive/);
  });
});

describe("paystream up's processor on the embedded log", () => {
  it("writes DLQ records with their headers and a sealed original under a throwaway demo key, and says so", async (t) => {
    const log = new EmbeddedLog();
    for (const [topic, n] of [
      [IN, 4],
      [DLQ, 1],
      [ALERTS, 1],
    ] as const)
      log.createTopic(topic, n);
    const { log: logger, lines } = capturingLogger();
    const cfg = toProcessorConfig({
      demo: true,
      "kafka.topic": IN,
      "kafka.dlqTopic": DLQ,
      "kafka.alertsTopic": ALERTS,
    });
    const running = await startProcessor(
      cfg,
      logger,
      {
        source: new EmbeddedSource(log, IN),
        sink: new EmbeddedSink(log),
        alertStore: new EmbeddedAlertStore(),
        dedupStore: new InMemorySharedDedupStore(),
        warehouse: new MemoryWarehouse(),
        close: async () => {},
      },
      { listenHttp: false },
    );
    t.after(() => running.stop());
    const demoWarning = lines().find((l) => /throwaway DLQ key/.test(String(l.msg)));
    assert.ok(demoWarning, "start-up says the DLQ key is a throwaway");
    log.append([{ topic: IN, key: "acct-1", value: txJson({ card_number: "4111111111111112" }) }]);
    await until(() => log.all(DLQ).length === 1, "the record dead-lettered");
    const [rec] = log.all(DLQ);
    assert.equal(rec!.headers.reason, "luhn_invalid");
    assert.equal(rec!.headers.source_topic, IN);
    assert.match(rec!.headers.source_offset ?? "", /^\d+$/);
    assert.ok(rec!.headers.raw_enc, "the sealed original");
    assert.equal(rec!.headers.raw_key_id, demoWarning.dlqKeyId);
    assert.ok(!rec!.value.toString().includes(TEST_PAN.slice(0, 12)));
  });
});

/**
 * Window state survives a replica change: a processor that gains a partition rebuilds the
 * windows from Kafka (the span before the committed offset) before processing new records.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createProducer } from "../../src/adapters/kafka/client.ts";
import { defaultRules, txJson } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { uniqueName } from "../helpers/services.ts";

const rules = defaultRules();

const tx = (account: string, id: string, eventTimeMs: number) =>
  txJson({
    transaction_id: id,
    account_id: account,
    amount: "12.00",
    currency: "EUR",
    event_time: new Date(eventTimeMs).toISOString(),
  });

describe("recovery of window state from Kafka", () => {
  let topics: TestTopics;
  let first: TestProcessor | undefined;
  let second: TestProcessor | undefined;

  after(async () => {
    await first?.close().catch(() => {});
    await second?.close().catch(() => {});
    if (topics) await deleteTopics(topics);
  });

  it("a new replica rebuilds the windows, so an incident spanning the handover alerts exactly once", async () => {
    topics = await createTestTopics("it-recover", 2);
    const group = uniqueName("it-recover-group");
    const account = uniqueName("acct");
    const t0 = Date.now() - 20_000;
    const producer = createProducer(conn);
    const send = (from: number, n: number) =>
      producer.send({
        messages: Array.from({ length: n }, (_, k) => ({
          topic: topics.input,
          key: account,
          value: tx(account, `${account}-${from + k}`, t0 + (from + k) * 1000),
        })),
      });

    // 8 transactions: below the velocity threshold of 10, processed and committed by the first replica.
    await send(0, 8);
    first = await startTestProcessor(topics, rules, { groupId: group });
    await waitFor(() => first!.processor.totals.records >= 8, 30_000, "first replica processed 8");
    await first.processor.drain();
    assert.equal(first.processor.totals.alerts, 0);
    await first.close();
    first = undefined;

    // A new replica takes over the partition and gets 3 more: only with the first 8 rebuilt
    // does the 10th transaction cross the threshold.
    second = await startTestProcessor(topics, rules, { groupId: group });
    await send(8, 3);
    await producer.close();
    await waitFor(() => second!.processor.totals.records >= 3, 30_000, "second replica processed 3");
    await second.processor.drain();
    assert.equal(second.processor.totals.records, 3, "committed records are not delivered again");
    assert.equal(
      second.processor.alertsByRule.get("velocity_count"),
      1,
      "velocity alert from the rebuilt window",
    );
    const alertIds = await second.warehouse.alertIds();
    assert.equal(alertIds.length, 1);
  });
});

/**
 * `paystream dlq` end to end on the embedded log (the command's own code: src/app/dlq.ts over
 * the TopicReader and RecordSink ports): list and show masked entries, redrive those whose
 * cause is fixed, report every other one by why not, and a second redrive of the same entry
 * changes nothing downstream (the processor drops the copy as a duplicate).
 *
 * The fix here is real: a processor started with a maximum amount of 10.00 refuses a 12.34
 * payment (amount_out_of_range); the maximum is raised, the processor restarted (resuming
 * from its commits), and the entry redriven.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EmbeddedSink, EmbeddedSource, EmbeddedTopicReader } from "../../../src/adapters/embedded/log.ts";
import { listDlq, redriveDlq, showDlq } from "../../../src/app/dlq.ts";
import type { InRecord } from "../../../src/contracts/ports.ts";
import { InMemorySharedDedupStore } from "../../../src/core/dedup.ts";
import { DlqKey } from "../../../src/core/dlq-crypto.ts";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import { decodeOptionsFrom } from "../../../src/core/schema.ts";
import { DeadLetters } from "../../../src/processor/dead-letter.ts";
import type { RedriveReport } from "../../../src/processor/dlq-redrive.ts";
import { SAMPLE_WIRE_TX, TEST_PAN, testMasker } from "../../helpers/fixtures.ts";
import {
  append,
  buildProcessor,
  DLQ,
  IN,
  MemoryWarehouse,
  NOW,
  ObservedSource,
  startRig,
  txRecord,
  until,
} from "./harness.ts";

const KEY_HEX = "5e".repeat(32);
const key = new DlqKey(Buffer.from(KEY_HEX, "hex"), "k-2026");
const keys = { key: KEY_HEX, keyId: "k-2026", previous: undefined };

function statusOf(report: RedriveReport, entry: string): string | undefined {
  return report.results.find((r) => r.entry === entry)?.status;
}

describe("paystream dlq on the embedded log", () => {
  it("lists and shows masked entries, redrives the fixed one once, and reports every other by why not", async (t) => {
    const warehouse = new MemoryWarehouse();
    const dedupStore = new InMemorySharedDedupStore({ now: () => NOW });
    const strict = await startRig({ dlqKey: key, warehouse, dedupStore, options: { maxAmountMinor: 1000 } });
    t.after(() => strict.close());
    const sent = append(strict.log, [
      txRecord("acct-a", "tx-big", 0, { amount: "12.34" }),
      { key: "acct-b", value: `{"cardholder_name":"Ada Lovelace","card_number":"${TEST_PAN}"` },
      txRecord("acct-c", "tx-ok", 1, { amount: "9.99" }),
    ]);
    await until(() => strict.processor.totals.records === 3, "three records processed");
    await strict.processor.drain();
    const resume = strict.source.committed();
    await strict.close();
    assert.deepEqual([...warehouse.rows.keys()], ["tx-ok"]);

    // Entries another processor wrote: without a key, with a key since rotated out, a copy
    // moved under another entry's coordinates, and a row the warehouse refused just now.
    const log = strict.log;
    const at = (o: number, value: string, k = "acct-x"): InRecord => ({
      topic: IN,
      partition: 0,
      offset: BigInt(1000 + o),
      key: k,
      value: Buffer.from(value),
      timestamp: NOW,
    });
    const valid = txRecord("acct-w", "tx-refused", 2).value;
    const [bigEntry] = log.all(DLQ).filter((r) => r.headers.reason === "amount_out_of_range");
    assert.ok(bigEntry);
    log.append([
      new DeadLetters(DLQ, testMasker(), undefined).record(at(1, valid), "amount_out_of_range", "x"),
      new DeadLetters(DLQ, testMasker(), new DlqKey(Buffer.alloc(32, 1), "k-2025")).record(
        at(2, valid),
        "amount_out_of_range",
        "x",
      ),
      {
        topic: DLQ,
        key: "acct-a",
        value: bigEntry.value,
        headers: { ...bigEntry.headers, source_offset: "999" },
      },
      new DeadLetters(DLQ, testMasker(), key).record(at(3, valid), "warehouse_rejected", "check constraint"),
    ]);
    const reader = new EmbeddedTopicReader(log);
    const spec = { brokers: [], dlqTopic: DLQ, timeoutMs: 5000, reader };

    // list: masked, newest last, filtered by reason and time.
    const all = await listDlq(spec, {}, 100);
    assert.equal(all.entries.length, 6);
    const printed = JSON.stringify(all.entries, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    for (const pii of [TEST_PAN, "Ada Lovelace", SAMPLE_WIRE_TX.email, SAMPLE_WIRE_TX.ip_address]) {
      assert.ok(!printed.includes(pii), `${pii} listed`);
    }
    const big = (await listDlq(spec, { reasons: new Set(["amount_out_of_range"]) }, 100)).entries;
    assert.equal(big.length, 4);
    assert.equal(big[0]!.transactionId, "tx-big");
    assert.deepEqual(big[0]!.source, {
      topic: IN,
      partition: sent[0]!.partition,
      offset: String(sent[0]!.offset),
      timestampMs: sent[0]!.timestamp,
    });
    assert.equal(big[0]!.raw?.keyId, "k-2026");
    assert.equal((await listDlq(spec, { sinceMs: Date.now() + 60_000 }, 100)).entries.length, 0);
    assert.equal((await listDlq(spec, {}, 2)).entries.length, 2, "--limit");
    const shown = await showDlq(spec, big[0]!.id);
    assert.equal(shown?.reason, "amount_out_of_range");
    assert.equal(await showDlq(spec, "0:99999"), undefined);

    const redrive = (filter: Parameters<typeof redriveDlq>[0]["filter"], dryRun = false) =>
      redriveDlq({
        ...spec,
        sink: new EmbeddedSink(log),
        keys,
        filter,
        limit: 100,
        dryRun,
        decode: decodeOptionsFrom({}),
        dedupTtlMs: 24 * 3_600_000,
      });
    const inputEnd = () => log.all(IN).length;

    // Dry run: decided, nothing produced.
    const before = inputEnd();
    const dry = await redrive({ ids: new Set([big[0]!.id]) }, true);
    assert.equal(statusOf(dry, big[0]!.id), "would_redrive");
    assert.equal(inputEnd(), before);

    // The limit is raised and the processor restarted where it stopped; then the redrive.
    const relaxed = buildProcessor((l) => new ObservedSource(new EmbeddedSource(l, IN, undefined, resume)), {
      log,
      dlqKey: key,
      warehouse,
      dedupStore,
    });
    t.after(() => relaxed.close());
    await relaxed.processor.start();
    const report = await redrive({ reasons: new Set(["amount_out_of_range", "warehouse_rejected"]) });
    assert.deepEqual(report.results.map((r) => r.status).sort(), [
      "auth_failed",
      "dedup_pending",
      "no_raw_copy",
      "redriven",
      "wrong_key_id",
    ]);
    assert.equal(report.produced, 1);
    assert.equal(statusOf(report, big[0]!.id), "redriven");
    const copies = log.all(IN).filter((r) => r.headers.redriven_from !== undefined);
    assert.equal(copies.length, 1);
    const copy = copies[0]!;
    assert.equal(copy.key, "acct-a", "the original key");
    assert.equal(copy.value.toString(), sent[0]!.value.toString(), "the original bytes");
    assert.equal(copy.headers.redriven_from, `${DLQ}/${big[0]!.id}`);
    await until(() => warehouse.rows.has("tx-big"), "the redriven record processed");

    // Again: the processor drops the second copy as a duplicate; one row, written once.
    const again = await redrive({ ids: new Set([big[0]!.id]) });
    assert.equal(statusOf(again, big[0]!.id), "redriven");
    await until(() => relaxed.processor.totals.duplicates === 1, "the second copy seen as a duplicate");
    await relaxed.processor.drain();
    assert.equal(warehouse.rowWrites.get("tx-big"), 1);

    // Still invalid, and an address that holds nothing.
    const [bad] = (await listDlq(spec, { reasons: new Set(["bad_json"]) }, 10)).entries;
    const rest = await redrive({ ids: new Set([bad!.id, "0:99999"]) });
    const stillBad = rest.results.find((r) => r.entry === bad!.id);
    assert.equal(stillBad?.status, "still_invalid");
    assert.equal(stillBad?.nowReason, "bad_json");
    assert.equal(statusOf(rest, "0:99999"), "not_found");
  });

  it("refuses to redrive without a key, before reading anything, and names where the key comes from", async () => {
    await assert.rejects(
      redriveDlq({
        brokers: [],
        dlqTopic: DLQ,
        timeoutMs: 1000,
        reader: {
          existingTopics: () => Promise.reject(new Error("must not be read")),
          readToEnd: () => Promise.reject(new Error("must not be read")),
          groupLag: () => Promise.reject(new Error("must not be read")),
        },
        keys: { key: undefined, keyId: undefined, previous: undefined },
        filter: { reasons: new Set(["bad_json"]) },
        limit: 10,
        dryRun: true,
        decode: decodeOptionsFrom({}),
        dedupTtlMs: 1000,
      }),
      (err: unknown) =>
        isPaystreamError(err) &&
        err.code === ErrorCodes.SECRET_MISSING &&
        /PAYSTREAM_DLQ_KEY/.test(err.message),
    );
  });
});

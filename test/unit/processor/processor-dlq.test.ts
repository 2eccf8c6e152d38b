/**
 * What the Processor dead-letters, on the embedded adapters: records that fail decoding
 * (with their reason and where they came from, as a masked projection: no card number,
 * name, email or IP in the clear, in the value or any header; the original sealed for
 * redrive when a DLQ key is given), and valid rows the warehouse refuses for good — found by
 * halving the write when the warehouse does not say which row it refused — while every
 * other row is written once and the offsets move on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DlqProjection } from "../../../src/contracts/dlq.ts";
import type { InRecord, OutRecord } from "../../../src/contracts/ports.ts";
import { DlqKey, DlqKeyring } from "../../../src/core/dlq-crypto.ts";
import { findLuhnDigitRuns } from "../../../src/core/pan.ts";
import { SAMPLE_WIRE_TX, TEST_PAN, txJson, wireTx } from "../../helpers/fixtures.ts";
import {
  accountsInDistinctPartitions,
  append,
  DLQ,
  endOffsets,
  IN,
  metricValue,
  type Rig,
  startRig,
  txRecord,
  until,
} from "./harness.ts";

/** The raw PII of the sample transaction: none of it may be in a DLQ record. */
const RAW_PII = [
  TEST_PAN,
  TEST_PAN.slice(0, 12),
  SAMPLE_WIRE_TX.cardholder_name,
  SAMPLE_WIRE_TX.email,
  SAMPLE_WIRE_TX.ip_address,
];

function assertNoPii(dlq: OutRecord, what: string): void {
  const texts = [dlq.value.toString(), dlq.key ?? "", ...Object.values(dlq.headers ?? {})];
  for (const text of texts) {
    for (const pii of RAW_PII) assert.ok(!text.includes(pii), `${what}: ${pii} in ${text}`);
    assert.deepEqual(findLuhnDigitRuns(text), [], `${what}: no card number`);
  }
}

function assertSourceHeaders(dlq: OutRecord, from: InRecord): void {
  assert.equal(dlq.key, from.key, "same key as the source record");
  const h = dlq.headers ?? {};
  assert.equal(h.source_topic, IN);
  assert.equal(h.source_partition, String(from.partition));
  assert.equal(h.source_offset, String(from.offset));
  assert.equal(h.source_timestamp, String(from.timestamp));
  assert.ok((h.detail ?? "").length > 0, "a human-readable detail");
}

const projection = (r: OutRecord) => JSON.parse(r.value.toString()) as DlqProjection;

const idOf = (r: InRecord) => JSON.parse(r.value.toString()).transaction_id as string;

async function waitCommitted(rig: Rig & { source: { committed(): Map<number, bigint> } }, sent: InRecord[]) {
  const want = endOffsets(sent);
  await until(
    () => [...want].every(([p, o]) => rig.source.committed().get(p) === o),
    "every offset committed",
  );
}

describe("Processor: DLQ routing of records that fail decoding", () => {
  const { email: _dropped, ...noEmail } = wireTx({ transaction_id: "no-email", account_id: "acct-s" });
  const cases = [
    {
      reason: "bad_json",
      id: "bad-json",
      format: "text",
      masked: ["card_number", "cardholder_name", "email", "ip_address", "device_id", "lat", "lon"],
      record: {
        key: "acct-j",
        value: txJson({ transaction_id: "bad-json", account_id: "acct-j" }).slice(0, -25),
      },
    },
    {
      reason: "schema_violation",
      id: "no-email",
      format: "object",
      masked: ["card_number", "cardholder_name", "ip_address", "device_id", "lat", "lon"],
      record: { key: "acct-s", value: JSON.stringify(noEmail) },
    },
    {
      reason: "luhn_invalid",
      id: "bad-luhn",
      format: "object",
      masked: ["card_number", "cardholder_name", "email", "ip_address", "device_id", "lat", "lon"],
      record: {
        key: "acct-l",
        value: txJson({ transaction_id: "bad-luhn", account_id: "acct-l", card_number: "4111111111111112" }),
      },
    },
  ] as const;

  it("sends malformed JSON, schema violations and Luhn-invalid cards to the DLQ as masked projections with reason and source, never to the warehouse", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const sent = append(rig.log, [txRecord("acct-ok", "ok-1", 0), ...cases.map((c) => c.record)]);
    await waitCommitted(rig, sent);

    const dlq = rig.sink.to(DLQ);
    assert.equal(dlq.length, cases.length, "one DLQ record per invalid record");
    for (const c of cases) {
      const from = sent.find((r) => r.key === c.record.key)!;
      const out = dlq.find((r) => r.key === c.record.key);
      assert.ok(out, `${c.reason}: in the DLQ`);
      assert.equal(out.headers?.reason, c.reason);
      assertSourceHeaders(out, from);
      assertNoPii(out, c.reason);
      const v = projection(out);
      assert.equal(v.dlq_value, 1);
      assert.equal(v.format, c.format, `${c.reason}: projected as ${c.format}`);
      assert.deepEqual(v.masked_fields, [...c.masked], `${c.reason}: the Masker's fields masked`);
      assert.equal(v.transaction_id, c.id, "the transaction id, read even from broken JSON");
      assert.equal(v.original_bytes, Buffer.byteLength(c.record.value));
      assert.equal(v.raw_encrypted, false, "no DLQ key: no original kept");
      assert.equal(v.raw_omitted, "no_key");
      assert.equal(out.headers?.raw_enc, undefined);
      assert.ok(Number(out.headers?.pans_redacted) >= 1, "the card counted as cut");
      if (v.format === "object") {
        const m = v.masked as Record<string, unknown>;
        const card = m.card_number as { bin: string; last4: string; token: string };
        assert.equal(card.bin, "411111");
        assert.equal(card.last4, c.reason === "luhn_invalid" ? "1112" : "1111");
        assert.match(card.token, /^[A-Za-z0-9_-]{22}$/);
        assert.equal(m.amount, "12.34", "fields the Masker does not know pass through");
        assert.equal(m.lat, 51.5, "coarsened to 2 decimals");
      }
      assert.equal(await metricValue(rig.registry, "paystream_dlq_total", { reason: c.reason }), 1);
    }
    assert.deepEqual([...rig.warehouse.rows.keys()], ["ok-1"], "only the valid record reaches the warehouse");
    assert.equal(rig.processor.totals.invalid, cases.length);
    assert.equal(rig.processor.totals.ok, 1);
  });

  it("does not write a Luhn-invalid card number out in full either (its check digit gives the real PAN back)", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    // The collector's luhn_invalid fault: a real PAN with its check digit altered.
    const typo = `${TEST_PAN.slice(0, -1)}2`;
    const sent = append(rig.log, [
      {
        key: "acct-l",
        value: txJson({ transaction_id: "bad-luhn", account_id: "acct-l", card_number: typo }),
      },
    ]);
    await waitCommitted(rig, sent);
    const [out] = rig.sink.to(DLQ);
    assert.equal(out?.headers?.reason, "luhn_invalid");
    assert.ok(
      !out.value.toString().includes(TEST_PAN.slice(0, -1)),
      `the DLQ value carries the card's first ${TEST_PAN.length - 1} digits: ${out.value.toString()}`,
    );
  });

  it("with a DLQ key, seals the original key and bytes (bound to the source record) in raw_enc, and cuts spaced cards in unparseable text", async (t) => {
    const key = new DlqKey(Buffer.alloc(32, 7), "k1");
    const rig = await startRig({ dlqKey: key });
    t.after(() => rig.close());
    const spaced = "4111 1111 1111 1111";
    const value = `not json: pay ${spaced} for ${SAMPLE_WIRE_TX.email} from ${SAMPLE_WIRE_TX.ip_address}`;
    const sent = append(rig.log, [{ key: "acct-x", value }]);
    await waitCommitted(rig, sent);
    const [out] = rig.sink.to(DLQ);
    assert.ok(out);
    assert.equal(out.headers?.reason, "bad_json");
    assertNoPii(out, "bad_json with a key");
    assert.ok(!out.value.toString().includes(spaced));
    const v = projection(out);
    assert.equal(v.format, "text");
    assert.equal(v.masked, "not json: pay 4111 11** **** 1111 for [email] from [ip]");
    assert.equal(v.raw_encrypted, true);
    assert.equal(out.headers?.raw_key_id, "k1");
    const from = sent[0]!;
    const opened = new DlqKeyring([key]).open(out.headers!.raw_enc!, "k1", {
      sourceTopic: IN,
      sourcePartition: from.partition,
      sourceOffset: from.offset,
    });
    assert.ok(opened.ok, "opens for its own source record");
    assert.equal(opened.record.key, "acct-x");
    assert.equal(opened.record.value.toString(), value);
    const moved = new DlqKeyring([key]).open(out.headers!.raw_enc!, "k1", {
      sourceTopic: IN,
      sourcePartition: from.partition,
      sourceOffset: from.offset + 1n,
    });
    assert.equal(moved.ok, false, "not as another record");
  });
});

describe("Processor: rows the warehouse refuses for good", () => {
  /** Ten valid records over several partitions, handed over as one batch. */
  function tenRecords() {
    const accounts = accountsInDistinctPartitions(3);
    return Array.from({ length: 10 }, (_, i) => txRecord(accounts[i % 3]!, `r-${i}`, i));
  }

  for (const bad of [["r-6"], ["r-1", "r-8"]]) {
    it(`halves a refused write down to the refused row(s) when the warehouse does not name them (${bad.join(", ")})`, async (t) => {
      const rig = await startRig();
      t.after(() => rig.close());
      const wh = rig.warehouse;
      wh.refuse((row) => bad.includes(row.transaction_id), false);
      const sent = append(rig.log, tenRecords());
      await waitCommitted(rig, sent);

      const rejected = rig.sink.to(DLQ);
      assert.deepEqual(
        rejected.map((r) => r.headers?.transaction_id).sort(),
        bad,
        "exactly the refused rows",
      );
      for (const out of rejected) {
        const from = sent.find((r) => idOf(r) === out.headers?.transaction_id)!;
        assert.equal(out.headers?.reason, "warehouse_rejected");
        assert.match(out.headers?.detail ?? "", /check constraint/, "the warehouse's message");
        assertSourceHeaders(out, from);
        assertNoPii(out, "warehouse_rejected");
        assert.equal(projection(out).format, "object");
        assert.equal(projection(out).transaction_id, out.headers?.transaction_id);
      }
      for (const r of sent) {
        const id = idOf(r);
        assert.equal(wh.rowWrites.get(id), bad.includes(id) ? undefined : 1, `${id} written exactly once`);
      }
      // log2(10) rounds of halving, two writes each, at most once per refused row.
      const bound = 1 + 2 * Math.ceil(Math.log2(10)) * bad.length;
      assert.ok(wh.calls.length <= bound, `${wh.calls.length} writes (halving, not row by row)`);
      assert.equal(rig.processor.totals.warehouseRejected, bad.length);
      assert.equal(
        await metricValue(rig.registry, "paystream_dlq_total", { reason: "warehouse_rejected" }),
        bad.length,
      );
      assert.deepEqual(rig.processor.health, new Map(), "a refusal is not an outage");
      assert.deepEqual(rig.fatal, []);
    });
  }

  it("dead-letters a row the warehouse names at once and writes the rest in one go", async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const wh = rig.warehouse;
    wh.refuse((row) => row.transaction_id === "r-3", true);
    const sent = append(rig.log, tenRecords());
    await waitCommitted(rig, sent);
    assert.deepEqual(
      wh.calls.map((c) => [c.outcome, c.ids.length]),
      [
        ["refused", 10],
        ["ok", 9],
      ],
    );
    assert.ok(!wh.calls[1]!.ids.includes("r-3"));
    assert.deepEqual(
      rig.sink.to(DLQ).map((r) => [r.headers?.reason, r.headers?.transaction_id]),
      [["warehouse_rejected", "r-3"]],
    );
  });
});

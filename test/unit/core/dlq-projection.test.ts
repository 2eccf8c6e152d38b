/**
 * core/dlq-projection.ts: the value of a DLQ record. Every field the Masker knows is masked
 * (and its tokens are the warehouse's), every card-like run, email and IP elsewhere is cut,
 * and no input — deep, huge, not UTF-8, hostile keys — crashes it or gets through whole.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DLQ_TEXT_MAX_CHARS } from "../../../src/contracts/dlq.ts";
import { MAX_DEPTH, projectRecord, scrubDetail } from "../../../src/core/dlq-projection.ts";
import { findLuhnDigitRuns } from "../../../src/core/pan.ts";
import { SAMPLE_WIRE_TX, TEST_PAN, testMasker, txJson, wireTx } from "../../helpers/fixtures.ts";

const masker = testMasker();
const RAW = [
  TEST_PAN,
  SAMPLE_WIRE_TX.cardholder_name,
  SAMPLE_WIRE_TX.email,
  SAMPLE_WIRE_TX.ip_address,
  SAMPLE_WIRE_TX.device_id,
];

function project(value: string | Buffer, asText = false) {
  return projectRecord(typeof value === "string" ? Buffer.from(value) : value, masker, { asText });
}

function assertClean(p: ReturnType<typeof project>, extra: string[] = []): string {
  const out = JSON.stringify(p);
  for (const s of [...RAW, ...extra]) assert.ok(!out.includes(s), `${s} in ${out.slice(0, 400)}`);
  assert.deepEqual(findLuhnDigitRuns(out), []);
  return out;
}

describe("projectRecord: a JSON object, field by field", () => {
  it("masks every field the Masker knows, with the warehouse's tokens, and passes the rest through", () => {
    const p = project(txJson());
    assert.equal(p.format, "object");
    assertClean(p);
    const m = p.masked as Record<string, unknown>;
    const row = masker.maskTransaction({
      ...SAMPLE_WIRE_TX,
      amountMinor: 1234,
      eventTimeMs: Date.parse(SAMPLE_WIRE_TX.event_time),
    });
    assert.deepEqual(m.card_number, { bin: row.card_bin, last4: row.card_last4, token: row.card_token });
    assert.equal(m.cardholder_name, row.name_token);
    assert.equal(m.email, row.email_token);
    assert.equal(m.ip_address, row.ip_token);
    assert.equal(m.device_id, row.device_token);
    assert.equal(m.lat, 51.5);
    assert.equal(m.lon, -0.12);
    assert.equal(m.amount, "12.34");
    assert.equal(m.event_time, SAMPLE_WIRE_TX.event_time);
    assert.equal(p.transaction_id, SAMPLE_WIRE_TX.transaction_id);
    assert.deepEqual(p.masked_fields, [
      "card_number",
      "cardholder_name",
      "email",
      "ip_address",
      "device_id",
      "lat",
      "lon",
    ]);
    assert.equal(p.cards, 1);
  });

  it("masks spaced, dashed and Luhn-invalid card numbers, and card numbers sent as JSON numbers", () => {
    for (const card of ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111112"]) {
      const p = project(txJson({ card_number: card }));
      assertClean(p, [card, card.replace(/\D/g, "").slice(0, 12)]);
      const c = (p.masked as { card_number: { bin: string; last4: string } }).card_number;
      assert.equal(c.bin, "411111");
      assert.equal(c.last4, card.slice(-4));
    }
    const asNumber = project(`{"card_number":4111111111111111,"note":4111111111111111}`);
    assertClean(asNumber);
    assert.deepEqual((asNumber.masked as { note: unknown }).note, "411111******1111");
  });

  it("coarsens lat/lon, and cuts cards, emails and IPs in unknown fields, nested fields and keys", () => {
    const p = project(
      JSON.stringify({
        lat: 48.856613,
        lon: "2.352222",
        note: `call ${SAMPLE_WIRE_TX.email} from ${SAMPLE_WIRE_TX.ip_address} re 5500 0000 0000 0004`,
        payer: { email: "x@example.org", list: [{ ip_address: "2001:db8::7" }] },
        [TEST_PAN]: "a card as a key",
      }),
    );
    const out = assertClean(p, ["x@example.org", "2001:db8::7", "5500 0000 0000 0004"]);
    const m = p.masked as Record<string, unknown>;
    assert.equal(m.lat, 48.86);
    assert.equal(m.lon, "2.35");
    assert.equal(m.note, "call [email] from [ip] re 5500 00** **** 0004");
    assert.deepEqual(p.masked_fields, ["lat", "lon", "payer.email", "payer.list[0].ip_address"]);
    assert.ok(out.includes("411111******1111"), "the key, cut");
    assert.equal(p.redactions, 4);
  });

  it("tokenises known fields of any type (a name as an object, an email as a number)", () => {
    const p = project(
      JSON.stringify(wireTx({ cardholder_name: { first: "Ada", last: "Lovelace" }, email: 42 })),
    );
    assertClean(p, ["Lovelace"]);
    const m = p.masked as Record<string, unknown>;
    assert.match(String(m.cardholder_name), /^[A-Za-z0-9_-]{22}$/);
    assert.match(String(m.email), /^[A-Za-z0-9_-]{22}$/);
  });

  it("keeps a __proto__ key as data", () => {
    const p = project('{"__proto__":{"email":"ada@example.com"},"a":1}');
    assertClean(p);
    assert.equal(Object.getPrototypeOf(p.masked), Object.prototype);
    assert.ok(Object.hasOwn(p.masked as object, "__proto__"));
  });
});

describe("projectRecord: text that is not a JSON object", () => {
  it("masks the known fields it can read in broken JSON, then cuts cards, emails and IPs", () => {
    const broken = txJson().slice(0, -20);
    const p = project(broken);
    assert.equal(p.format, "text");
    assertClean(p);
    assert.deepEqual(p.masked_fields.slice(0, 5), [
      "card_number",
      "cardholder_name",
      "email",
      "ip_address",
      "device_id",
    ]);
    assert.match(String(p.masked), /"card_number":"\[card 411111…1111 [A-Za-z0-9_-]{22}\]"/);
    assert.equal(p.transaction_id, SAMPLE_WIRE_TX.transaction_id);
  });

  it("scrubs free text: spaced and Luhn-invalid cards, emails, IPv4 and IPv6", () => {
    const p = project("pay 4111 1111 1111 1112 ada@example.com 198.51.100.4 fe80::1 thanks");
    assert.equal(p.masked, "pay 4111 11** **** 1112 [email] [ip] [ip] thanks");
    assert.equal(p.redactions, 4);
  });

  it("projects arrays, strings and numbers as text (not_object)", () => {
    for (const v of [`[${txJson()}]`, JSON.stringify(TEST_PAN), "4111111111111111"]) {
      const p = project(v);
      assert.equal(p.format, "text");
      assertClean(p);
    }
  });

  it("projects an oversized record as text when told, cut to the bound", () => {
    const big = JSON.stringify(wireTx({ merchant_id: "m".repeat(50_000) }));
    const p = project(big, true);
    assert.equal(p.format, "text");
    assert.ok(p.truncated);
    assert.ok(String(p.masked).length <= DLQ_TEXT_MAX_CHARS);
    assert.equal(p.original_bytes, Buffer.byteLength(big));
    assertClean(p);
  });
});

describe("projectRecord: JSON inside strings (double-encoded records)", () => {
  it("masks a transaction sent as a JSON string by field name, one or more levels down", () => {
    for (const value of [JSON.stringify(txJson()), JSON.stringify(JSON.stringify(txJson()))]) {
      const p = project(value);
      assert.equal(p.format, "object");
      assertClean(p);
      assert.ok(p.masked_fields.includes("cardholder_name"), JSON.stringify(p.masked_fields));
    }
  });

  it("masks a transaction embedded as JSON text in a field", () => {
    const p = project(JSON.stringify({ note: "resend", payload: txJson() }));
    assertClean(p);
    assert.ok(p.masked_fields.includes("payload.cardholder_name"), JSON.stringify(p.masked_fields));
  });

  it("masks names in a double-encoded record that is cut short (text, escaped quotes)", () => {
    const cut = JSON.stringify(txJson()).slice(0, -20);
    const p = project(cut);
    assert.equal(p.format, "text");
    assertClean(p);
  });
});

describe("projectRecord: hostile input", () => {
  it("falls back to scrubbed text for nesting deeper than the bound (and does not crash at 100 000 levels)", () => {
    const deep = (n: number) => `${'{"a":'.repeat(n)}"${SAMPLE_WIRE_TX.email}"${"}".repeat(n)}`;
    assert.equal(project(deep(MAX_DEPTH - 2)).format, "object");
    for (const n of [MAX_DEPTH + 5, 100_000]) {
      const p = project(deep(n));
      assert.equal(p.format, "text");
      assert.equal(p.truncated, n > 1000);
      assertClean(p);
    }
    const arrays = project(`{"x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`);
    assert.equal(arrays.format, "text");
  });

  it("falls back to text for too many values, and bounds huge strings", () => {
    const many = project(
      JSON.stringify({ email: SAMPLE_WIRE_TX.email, xs: Array.from({ length: 20_000 }, (_, i) => i) }),
    );
    assert.equal(many.format, "text");
    assertClean(many);
    const huge = project(`{"note":"${"a".repeat(5_000_000)} ${TEST_PAN}"}`);
    assert.equal(huge.format, "text");
    assert.ok(String(huge.masked).length <= DLQ_TEXT_MAX_CHARS);
    assertClean(huge);
  });

  it("takes bytes that are not UTF-8 and keeps cutting around them", () => {
    const bytes = Buffer.concat([
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from(`{"cardholder_name":"${SAMPLE_WIRE_TX.cardholder_name}","n":"${TEST_PAN}"`),
      Buffer.from([0x80, 0xed, 0xa0, 0x80]),
      Buffer.from(` ${SAMPLE_WIRE_TX.email}`),
    ]);
    const p = project(bytes);
    assert.equal(p.format, "text");
    assertClean(p);
    assert.ok(String(p.masked).includes("\ufffd"));
    assert.equal(p.original_bytes, bytes.byteLength);
  });

  it("cuts full-width digits like ASCII ones", () => {
    const wide = "４１１１１１１１１１１１１１１１";
    const p = project(`pay ${wide}`);
    assert.ok(!String(p.masked).includes(wide));
  });
});

describe("scrubDetail", () => {
  it("drops the snippet JSON.parse quotes and masks what else it holds", () => {
    let message = "";
    try {
      JSON.parse(`{"cardholder_name":"${SAMPLE_WIRE_TX.cardholder_name}" x}`);
    } catch (err) {
      message = (err as Error).message;
    }
    try {
      JSON.parse(`Ada Lovelace ${SAMPLE_WIRE_TX.email}`);
    } catch (err) {
      const d = scrubDetail("bad_json", (err as Error).message, masker);
      assert.ok(!d.text.includes("Lovelace"), d.text);
      assert.ok(!d.text.includes(SAMPLE_WIRE_TX.email), d.text);
    }
    assert.ok(message.length > 0);
    const d = scrubDetail("bad_json", message, masker);
    assert.ok(!d.text.includes("Lovelace"));
    const db = scrubDetail(
      "warehouse_rejected",
      `Failing row contains (${TEST_PAN}, ${SAMPLE_WIRE_TX.email}, 198.51.100.4) ${"x".repeat(1000)}`,
      masker,
    );
    assert.ok(db.text.length <= 500);
    assert.ok(
      !db.text.includes(TEST_PAN) && !db.text.includes(SAMPLE_WIRE_TX.email) && !db.text.includes("198.51"),
    );
    assert.equal(db.cards, 1);
  });
});

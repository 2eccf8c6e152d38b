import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DlqReasons } from "../../../src/contracts/dlq.ts";
import {
  decodeTransaction,
  formatMinor,
  luhnCheckDigit,
  luhnValid,
  parseAmountMinor,
} from "../../../src/core/schema.ts";
import { SAMPLE_WIRE_TX } from "../../helpers/fixtures.ts";

const valid = SAMPLE_WIRE_TX;

function decode(patch: Record<string, unknown>, drop?: string) {
  const o: Record<string, unknown> = { ...valid, ...patch };
  if (drop) delete o[drop];
  return decodeTransaction(JSON.stringify(o));
}

describe("Luhn", () => {
  it("accepts known-good PANs and rejects a changed digit", () => {
    for (const pan of ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]) {
      assert.ok(luhnValid(pan), pan);
      const bad = pan.slice(0, -1) + ((Number(pan.at(-1)) + 1) % 10);
      assert.ok(!luhnValid(bad), bad);
    }
    assert.ok(!luhnValid(""));
    assert.ok(!luhnValid("41111111111111a1"));
  });
  it("check digit completes a valid number", () => {
    for (const partial of ["411111111111111", "555555555555444", "37828224631000"]) {
      assert.ok(luhnValid(partial + luhnCheckDigit(partial)));
    }
  });
});

describe("amounts in exact minor units", () => {
  it("parses decimal strings without float drift", () => {
    assert.equal(parseAmountMinor("0.29"), 29);
    assert.equal(parseAmountMinor("12"), 1200);
    assert.equal(parseAmountMinor("12.3"), 1230);
    assert.equal(parseAmountMinor("1234567.89"), 123456789);
    assert.equal(parseAmountMinor("-5.00"), -500);
  });
  it("parses numbers with at most two decimals", () => {
    assert.equal(parseAmountMinor(0.29), 29);
    assert.equal(parseAmountMinor(19.99), 1999);
    assert.ok(Number.isNaN(parseAmountMinor(1.005)));
    assert.ok(Number.isNaN(parseAmountMinor(Number.POSITIVE_INFINITY)));
  });
  it("rejects malformed strings", () => {
    for (const s of ["", ".5", "1.", "1.234", "1,00", "abc", "1e3", "--1"]) {
      assert.ok(Number.isNaN(parseAmountMinor(s)), s);
    }
  });
  it("formats back", () => {
    assert.equal(formatMinor(29), "0.29");
    assert.equal(formatMinor(123456), "1234.56");
    assert.equal(formatMinor(-5), "-0.05");
  });
});

describe("decodeTransaction", () => {
  it("accepts a valid v1 transaction and derives cents and event time", () => {
    const r = decodeTransaction(Buffer.from(JSON.stringify(valid)));
    assert.ok(r.ok);
    assert.equal(r.tx.amountMinor, 1234);
    assert.equal(r.tx.eventTimeMs, Date.parse(valid.event_time));
  });
  it("accepts numeric amounts and explicit offsets", () => {
    const r = decode({ amount: 5, event_time: "2026-11-25T11:00:00+01:00" });
    assert.ok(r.ok);
    assert.equal(r.tx.amountMinor, 500);
    assert.equal(r.tx.eventTimeMs, Date.parse("2026-11-25T10:00:00Z"));
  });
  const cases: [string, () => ReturnType<typeof decodeTransaction>, string, RegExp?][] = [
    ["bad JSON", () => decodeTransaction('{"schema_version":1,'), DlqReasons.badJson],
    ["an array", () => decodeTransaction("[1,2]"), DlqReasons.notObject],
    ["schema major 2", () => decode({ schema_version: 2 }), DlqReasons.unsupportedSchemaVersion],
    [
      "a missing field",
      () => decode({}, "account_id"),
      DlqReasons.schemaViolation,
      /missing field account_id/,
    ],
    ["a wrong type", () => decode({ lat: "51.5" }), DlqReasons.schemaViolation, /lat/],
    [
      "a non-digit card",
      () => decode({ card_number: "4111-1111-1111" }),
      DlqReasons.schemaViolation,
      /card_number/,
    ],
    ["a Luhn-invalid card", () => decode({ card_number: "4111111111111112" }), DlqReasons.luhnInvalid],
    ["a negative amount", () => decode({ amount: "-1.00" }), DlqReasons.nonPositiveAmount],
    ["a zero amount", () => decode({ amount: 0 }), DlqReasons.nonPositiveAmount],
    ["three decimals", () => decode({ amount: "1.001" }), DlqReasons.badAmount],
    ["an impossible date", () => decode({ event_time: "2026-13-45T10:00:00Z" }), DlqReasons.badEventTime],
    [
      "no offset on event_time",
      () => decode({ event_time: "2026-11-25T10:00:00.000" }),
      DlqReasons.badEventTime,
    ],
    ["an oversized payload", () => decode({ city: "x".repeat(20_000) }), DlqReasons.oversized],
  ];
  for (const [name, run, reason, detail] of cases) {
    it(`rejects ${name} with reason ${reason}`, () => {
      const r = run();
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.reason, reason);
      assert.ok(r.detail.length > 0);
      if (detail) assert.match(r.detail, detail);
    });
  }
});

/**
 * Bounded values (issue 10, items 2 and 3): every finding of the hostile-input review, one
 * case each, plus the valid edge cases that must still pass.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DlqReasons } from "../../../src/contracts/dlq.ts";
import {
  DEFAULT_MAX_AMOUNT_MINOR,
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_MAX_FUTURE_SKEW_MS,
  type TransactionWireV1,
} from "../../../src/contracts/transaction.ts";
import { isPaystreamError } from "../../../src/core/errors.ts";
import {
  type DecodeOptions,
  type DecodeResult,
  decodeOptionsFrom,
  decodeTransaction,
  luhnCheckDigit,
  parseAmountMinor,
  parseEventTime,
  validateTransaction,
} from "../../../src/core/schema.ts";
import { wireTx } from "../../helpers/fixtures.ts";

const NOW = Date.UTC(2026, 10, 25, 10, 0, 0);

const valid: TransactionWireV1 = wireTx({ event_time: new Date(NOW - 1_000).toISOString() });

/** Decodes `valid` with a patch, at processing time NOW unless told otherwise (null: none). */
function decode(patch: Record<string, unknown>, options: DecodeOptions = {}, nowMs: number | null = NOW) {
  return decodeTransaction(JSON.stringify({ ...valid, ...patch }), options, nowMs ?? undefined);
}

/** The wire text with `amount` replaced by raw JSON (JSON.stringify cannot write 1e309). */
function withRawAmount(raw: string): string {
  return JSON.stringify({ ...valid, amount: 0 }).replace('"amount":0', `"amount":${raw}`);
}

function rejected(r: DecodeResult, reason: string, detail?: RegExp): void {
  assert.equal(r.ok, false, `expected ${reason}, got a valid transaction`);
  if (r.ok) return;
  assert.equal(r.reason, reason, r.detail);
  assert.ok(r.detail.length > 0);
  if (detail) assert.match(r.detail, detail);
}

function accepted(r: DecodeResult): NonNullable<Extract<DecodeResult, { ok: true }>["tx"]> {
  assert.ok(r.ok, r.ok ? "" : `${r.reason}: ${r.detail}`);
  return r.tx;
}

/** A Luhn-valid PAN starting with `prefix`, `length` digits long. */
function pan(prefix: string, length = 16): string {
  const partial = prefix.padEnd(length - 1, "0");
  return partial + luhnCheckDigit(partial);
}

describe("amounts: safe-integer minor units with a maximum", () => {
  it("1e308 is out of range, not Infinity cents written as NaN.NaN", () => {
    const r = decodeTransaction(withRawAmount("1e308"), {}, NOW);
    rejected(r, DlqReasons.amountOutOfRange);
    assert.ok(!r.ok && !r.detail.includes("NaN"), "the detail names the maximum, never the huge amount");
    rejected(decodeTransaction(withRawAmount("1e309")), DlqReasons.amountOutOfRange);
    rejected(decodeTransaction(withRawAmount("-1e309")), DlqReasons.nonPositiveAmount);
    assert.ok(Number.isNaN(parseAmountMinor(1e308)));
  });
  it("1e17 (beyond int64 cents) and long digit strings are out of range", () => {
    rejected(decodeTransaction(withRawAmount("1e17")), DlqReasons.amountOutOfRange);
    rejected(decode({ amount: "100000000000000000" }), DlqReasons.amountOutOfRange);
    rejected(decode({ amount: `${"9".repeat(400)}.99` }), DlqReasons.amountOutOfRange);
    assert.ok(Number.isNaN(parseAmountMinor(1e17)));
    assert.ok(Number.isNaN(parseAmountMinor("100000000000000000")));
  });
  it("the maximum is inclusive, and configurable", () => {
    assert.equal(DEFAULT_MAX_AMOUNT_MINOR, 100_000_000_000);
    assert.equal(accepted(decode({ amount: "1000000000.00" })).amountMinor, DEFAULT_MAX_AMOUNT_MINOR);
    assert.equal(accepted(decode({ amount: 1_000_000_000 })).amountMinor, DEFAULT_MAX_AMOUNT_MINOR);
    rejected(decode({ amount: "1000000000.01" }), DlqReasons.amountOutOfRange, /1000000000\.00/);
    rejected(decode({ amount: 1_000_000_000.01 }), DlqReasons.amountOutOfRange);
    const small = { maxAmountMinor: 500 };
    assert.equal(accepted(decode({ amount: "5.00" }, small)).amountMinor, 500);
    rejected(decode({ amount: "5.01" }, small), DlqReasons.amountOutOfRange, /5\.00/);
  });
  it("-0, -0.00 and -1e308 are not positive", () => {
    rejected(decodeTransaction(withRawAmount("-0")), DlqReasons.nonPositiveAmount);
    rejected(decode({ amount: "-0.00" }), DlqReasons.nonPositiveAmount);
    rejected(decode({ amount: "-0" }), DlqReasons.nonPositiveAmount);
    rejected(decodeTransaction(withRawAmount("-1e308")), DlqReasons.nonPositiveAmount);
  });
  it('"1e2" as text is malformed; the JSON number 1e2 is just 100', () => {
    rejected(decode({ amount: "1e2" }), DlqReasons.badAmount);
    assert.equal(accepted(decodeTransaction(withRawAmount("1e2"), {}, NOW)).amountMinor, 10_000);
    assert.equal(accepted(decodeTransaction(withRawAmount("1.5e1"), {}, NOW)).amountMinor, 1_500);
  });
  it("more than two decimals is malformed on both paths, never rounded", () => {
    rejected(decode({ amount: 1.005 }), DlqReasons.badAmount);
    rejected(decode({ amount: 0.1 + 0.2 }), DlqReasons.badAmount);
    rejected(decode({ amount: "1.005" }), DlqReasons.badAmount);
    rejected(decodeTransaction(withRawAmount("1e-3")), DlqReasons.badAmount);
    rejected(decode({ amount: 999_999_999.995 }), DlqReasons.badAmount);
  });
  it("converts every two-decimal number exactly up to the limit", () => {
    // A deterministic sweep across magnitudes: string and number paths agree to the cent.
    let x = 0x2545f491;
    for (let k = 0; k < 20_000; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const cents = (Math.abs(x) % 1_000_000) * 10 ** (k % 10) + (k % 100);
      const text = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
      assert.equal(parseAmountMinor(text), cents, text);
      assert.equal(parseAmountMinor(Number(text)), cents, text);
    }
  });
  it("still accepts ordinary amounts", () => {
    assert.equal(accepted(decode({ amount: "0.01" })).amountMinor, 1);
    assert.equal(accepted(decode({ amount: 0.29 })).amountMinor, 29);
    assert.equal(accepted(decode({ amount: "19.9" })).amountMinor, 1990);
    assert.equal(accepted(decode({ amount: 7 })).amountMinor, 700);
  });
});

describe("event_time: a real calendar instant", () => {
  const impossible = [
    ["Feb 30", "2026-02-30T10:00:00Z"],
    ["Feb 29 in a common year", "2027-02-29T10:00:00Z"],
    ["Feb 29 in 2100", "2100-02-29T10:00:00Z"],
    ["Apr 31", "2026-04-31T10:00:00Z"],
    ["day 00", "2026-04-00T10:00:00Z"],
    ["day 32", "2026-01-32T10:00:00Z"],
    ["month 00", "2026-00-10T10:00:00Z"],
    ["month 13", "2026-13-10T10:00:00Z"],
    ["hour 24", "2026-11-25T24:00:00Z"],
    ["minute 60", "2026-11-25T10:60:00Z"],
    ["second 60 (no leap seconds in epoch ms)", "2016-12-31T23:59:60Z"],
    ["year 0000", "0000-01-01T00:00:00Z"],
    ["before 1970", "1969-12-31T23:59:59Z"],
    ["1970 local time that is 1969 as an instant", "1970-01-01T00:30:00+01:00"],
    ["offset +24:00", "2026-11-25T10:00:00+24:00"],
    ["offset minute 60", "2026-11-25T10:00:00+01:60"],
    ["offset without colon", "2026-11-25T10:00:00+0100"],
    ["no offset", "2026-11-25T10:00:00.000"],
    ["lowercase t", "2026-11-25t10:00:00Z"],
    ["a space for T", "2026-11-25 10:00:00Z"],
    ["ten fraction digits", "2026-11-25T10:00:00.1234567890Z"],
    ["an empty fraction", "2026-11-25T10:00:00.Z"],
    ["trailing text", "2026-11-25T10:00:00Zjunk"],
    ["a sign in the year", "+026-11-25T10:00:00Z"],
    ["full-width digits", "２０２６-11-25T10:00:00Z"],
  ] as const;
  for (const [name, text] of impossible) {
    it(`rejects ${name} (${text}) as bad_event_time`, () => {
      assert.ok(Number.isNaN(parseEventTime(text)));
      rejected(decode({ event_time: text }, {}, null), DlqReasons.badEventTime);
    });
  }
  it("accepts real instants at the edges, with offsets, as Date.parse reads them", () => {
    for (const text of [
      "1970-01-01T00:00:00Z",
      "2028-02-29T23:59:59.999Z",
      "2000-02-29T00:00:00Z",
      "2026-11-25T10:00:00.1Z",
      "2026-11-25T10:00:00.123456789Z",
      "2026-11-25T23:59:59+14:00",
      "2026-11-25T00:00:00-12:00",
      "2026-11-25T10:00:00-00:00",
      "2026-11-25T10:00:00+23:59",
      "9999-12-31T23:59:59.999Z",
    ]) {
      assert.equal(parseEventTime(text), Date.parse(text), text);
    }
  });
  it("agrees with Date.parse on 20,000 generated valid timestamps", () => {
    let x = 0x9e3779b9;
    const next = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const two = (n: number) => String(n).padStart(2, "0");
    for (let k = 0; k < 20_000; k++) {
      const d = new Date(next(253_402_300_800) * 1000);
      const fraction = next(10);
      const frac = fraction === 0 ? "" : `.${String(next(10 ** fraction)).padStart(fraction, "0")}`;
      const offset = next(3) === 0 ? "Z" : `${next(2) ? "+" : "-"}${two(next(24))}:${two(next(60))}`;
      const text =
        `${String(d.getUTCFullYear()).padStart(4, "0")}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}` +
        `T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}${frac}${offset}`;
      const expected = Date.parse(text);
      const got = parseEventTime(text);
      if (expected >= 0) assert.equal(got, expected, text);
      else assert.ok(Number.isNaN(got), text);
    }
  });
});

describe("event_time relative to processing time", () => {
  it("a far-future event is event_time_in_future, the 9999 finding included", () => {
    rejected(decode({ event_time: "9999-12-31T23:59:59Z" }), DlqReasons.eventTimeInFuture, /ahead/);
    rejected(
      decode({ event_time: new Date(NOW + DEFAULT_MAX_FUTURE_SKEW_MS + 1).toISOString() }),
      DlqReasons.eventTimeInFuture,
    );
  });
  it("up to the skew ahead is accepted (producer clocks drift)", () => {
    assert.equal(DEFAULT_MAX_FUTURE_SKEW_MS, 300_000);
    const edge = NOW + DEFAULT_MAX_FUTURE_SKEW_MS;
    assert.equal(accepted(decode({ event_time: new Date(edge).toISOString() })).eventTimeMs, edge);
  });
  it("an event older than the maximum age is event_time_too_old", () => {
    assert.equal(DEFAULT_MAX_EVENT_AGE_MS, 7 * 86_400_000);
    const edge = NOW - DEFAULT_MAX_EVENT_AGE_MS;
    assert.equal(accepted(decode({ event_time: new Date(edge).toISOString() })).eventTimeMs, edge);
    rejected(decode({ event_time: new Date(edge - 1).toISOString() }), DlqReasons.eventTimeTooOld, /behind/);
    rejected(decode({ event_time: "1970-01-01T00:00:00Z" }), DlqReasons.eventTimeTooOld);
  });
  it("skew and age are configurable; Infinity disables the age check", () => {
    const strict = { maxFutureSkewMs: 0, maxAgeMs: 60_000 };
    rejected(decode({ event_time: new Date(NOW + 1).toISOString() }, strict), DlqReasons.eventTimeInFuture);
    accepted(decode({ event_time: new Date(NOW).toISOString() }, strict));
    rejected(
      decode({ event_time: new Date(NOW - 60_001).toISOString() }, strict),
      DlqReasons.eventTimeTooOld,
    );
    accepted(decode({ event_time: "1970-01-01T00:00:00Z" }, { maxAgeMs: Number.POSITIVE_INFINITY }));
  });
  it("nowMs comes from the options or, overriding them, the third argument", () => {
    const far = { event_time: new Date(NOW + 3_600_000).toISOString() };
    rejected(decode(far, { nowMs: NOW }, null), DlqReasons.eventTimeInFuture);
    accepted(decode(far, { nowMs: NOW }, NOW + 3_600_000));
    rejected(validateTransaction({ ...valid, ...far }, { nowMs: NOW }), DlqReasons.eventTimeInFuture);
    rejected(validateTransaction({ ...valid, ...far }, {}, NOW), DlqReasons.eventTimeInFuture);
  });
  it("without a processing time only the static checks apply (tools outside the processor)", () => {
    accepted(decode({ event_time: "9999-12-31T23:59:59Z" }, {}, null));
    accepted(decode({ event_time: "1970-01-01T00:00:00Z" }, {}, null));
    accepted(decodeTransaction(JSON.stringify({ ...valid, event_time: "9999-12-31T23:59:59Z" }), 16_384));
  });
  it("checks the amount before the time, so one reason per record is stable", () => {
    rejected(decode({ amount: "1e2", event_time: "9999-12-31T23:59:59Z" }), DlqReasons.badAmount);
  });
});

describe("card numbers", () => {
  it("the all-zero card passes Luhn but is invalid_card", () => {
    rejected(decode({ card_number: "0000000000000000" }), DlqReasons.invalidCard, /000000/);
    rejected(decode({ card_number: "000000000000" }), DlqReasons.invalidCard);
    rejected(decode({ card_number: "0".repeat(19) }), DlqReasons.invalidCard);
  });
  it("any Luhn-valid number with BIN 000000 is invalid_card", () => {
    rejected(decode({ card_number: pan("0000004") }), DlqReasons.invalidCard);
  });
  it("a Luhn failure keeps its own reason", () => {
    rejected(decode({ card_number: "0000000000000001" }), DlqReasons.luhnInvalid);
  });
  it("real-looking numbers still pass, leading zeros after the BIN included", () => {
    for (const card of [
      pan("400000"),
      pan("000001"),
      pan("5100000", 19),
      pan("37", 15),
      "4111111111111111",
    ]) {
      accepted(decode({ card_number: card }));
    }
  });
});

describe("decodeOptionsFrom", () => {
  it("fills the defaults and keeps given values", () => {
    assert.deepEqual(decodeOptionsFrom({}), {
      maxMessageBytes: 16_384,
      maxAmountMinor: DEFAULT_MAX_AMOUNT_MINOR,
      maxFutureSkewMs: DEFAULT_MAX_FUTURE_SKEW_MS,
      maxAgeMs: DEFAULT_MAX_EVENT_AGE_MS,
    });
    const config = { maxMessageBytes: 2_048, windowMs: 60_000, maxFutureSkewMs: 60_000 };
    const o = decodeOptionsFrom(config);
    assert.equal(o.maxMessageBytes, 2_048);
    assert.equal(o.maxFutureSkewMs, 60_000);
    assert.ok(Object.isFrozen(o));
    rejected(
      decodeTransaction(JSON.stringify({ ...valid, city: "x".repeat(3_000) }), o, NOW),
      DlqReasons.oversized,
    );
  });
  it("refuses values that would silently disable a check", () => {
    for (const bad of [
      { maxAmountMinor: 0 },
      { maxAmountMinor: 1.5 },
      { maxAmountMinor: 1e16 },
      { maxAmountMinor: 4e12 + 1 },
      { maxFutureSkewMs: -1 },
      { maxFutureSkewMs: Number.NaN },
      { maxAgeMs: 0 },
      { maxMessageBytes: 0 },
    ]) {
      assert.throws(
        () => decodeOptionsFrom(bad),
        (e: unknown) => isPaystreamError(e) && e.message.includes(Object.keys(bad)[0]!),
        JSON.stringify(bad),
      );
    }
  });
});

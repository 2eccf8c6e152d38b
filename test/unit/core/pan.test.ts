import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { alertId } from "../../../src/core/alert.ts";
import { Masker } from "../../../src/core/masking.ts";
import { findLuhnDigitRuns, redactPans } from "../../../src/core/pan.ts";
import { luhnCheckDigit, luhnValid } from "../../../src/core/schema.ts";

const PAN = "4111111111111111";
const AMEX = "378282246310005";

/** A random Luhn-valid PAN of the given length and first digit. */
function randomPan(length: number, first = "4"): string {
  let partial = first;
  while (partial.length < length - 1) partial += String(Math.floor(Math.random() * 10));
  return partial + luhnCheckDigit(partial);
}

/** The same digits in another script (its zero's code point). */
function inScript(digits: string, zero: number): string {
  return [...digits].map((d) => String.fromCodePoint(zero + Number(d))).join("");
}

const redact = (text: string) => redactPans(text).text;

describe("redactPans", () => {
  it("cuts a PAN to BIN, stars and last 4, and counts it", () => {
    assert.deepEqual(redactPans(`{"card_number":"${PAN}"}`), {
      text: `{"card_number":"411111******1111"}`,
      redacted: 1,
    });
    assert.equal(redact(AMEX), "378282*****0005");
  });

  it("cuts PANs written in groups with spaces, dashes or both, keeping the separators", () => {
    assert.equal(redact("4111 1111 1111 1111"), "4111 11** **** 1111");
    assert.equal(redact("4111-1111-1111-1111"), "4111-11**-****-1111");
    assert.equal(redact("4111 1111-1111 1111"), "4111 11**-**** 1111");
    assert.equal(redact("3782 822463 10005"), "3782 82**** *0005");
    assert.equal(
      redact("pan: 4111\u00a01111\u00a01111\u00a01111."),
      "pan: 4111\u00a011**\u00a0****\u00a01111.",
    );
    assert.equal(redact("4111\u20131111\u20131111\u20131111"), "4111\u201311**\u2013****\u20131111");
    assert.equal(redact("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"), "4 1 1 1 1 1 * * * * * * 1 1 1 1");
  });

  it("cuts Luhn-invalid numbers too (a typo in the check digit still gives the card away)", () => {
    assert.ok(!luhnValid("4111111111111112"));
    assert.deepEqual(redactPans("4111111111111112"), { text: "411111******1112", redacted: 1 });
    assert.equal(redact("4111 1111 1111 1112"), "4111 11** **** 1112");
  });

  it("cuts every length from 12 to 19 and leaves 11 and 20+ digit numbers alone", () => {
    assert.equal(redact("123456789012"), "123456**9012");
    assert.equal(redact("1234567890123456789"), "123456*********6789");
    for (const untouched of ["12345678901", "12345678901234567890", "1".repeat(40), "1234 5678 901"]) {
      assert.deepEqual(redactPans(untouched), { text: untouched, redacted: 0 });
    }
  });

  it("treats adjacent numbers by what separates them", () => {
    // A comma, a newline or two spaces end a run: two PANs, two redactions.
    assert.deepEqual(redactPans(`${PAN},${AMEX}`), { text: "411111******1111,378282*****0005", redacted: 2 });
    assert.deepEqual(redactPans(`${PAN}\n${AMEX}`), {
      text: "411111******1111\n378282*****0005",
      redacted: 2,
    });
    assert.equal(redactPans(`${PAN}  ${AMEX}`).redacted, 2);
    // One space joins them: one run of 31 digits, cut as a whole (first 6, last 4).
    assert.deepEqual(redactPans(`${PAN} ${AMEX}`), {
      text: `411111********** ***********0005`,
      redacted: 1,
    });
  });

  it("cuts a grouped PAN next to other numbers as one run, so no more than 10 of its digits show", () => {
    assert.equal(redact("4111 1111 1111 1111 2026"), "4111 11** **** **** 2026");
    assert.equal(redact("2026 4111 1111 1111 1111"), "2026 41** **** **** 1111");
    // A 20+ digit group is not a card and joins nothing: the grouped PAN beside it is cut alone.
    assert.equal(
      redact("12345678901234567890 4111 1111 1111 1111"),
      "12345678901234567890 4111 11** **** 1111",
    );
    assert.equal(
      redact("4111 1111 1111 1111 12345678901234567890"),
      "4111 11** **** 1111 12345678901234567890",
    );
  });

  it("leaves ISO 8601 times, amounts, coordinates and short numbers alone", () => {
    for (const text of [
      "2026-12-02T10:11:12Z",
      "2026-12-02T10:11:12.123456+01:00",
      "2026-12-02 10:11:12",
      "between 2026-12-01 and 2026-12-02",
      '{"amount":"123456789.12","lat":48.8566,"lon":-0.127758,"ip":"198.51.100.4","merchant_category":"5411"}',
      "+1 415-555-0134",
    ]) {
      assert.deepEqual(redactPans(text), { text, redacted: 0 }, text);
    }
  });

  it("cuts epoch milliseconds and other 12-19 digit numbers in the text (documented: no guessing)", () => {
    assert.equal(redact('{"ts":1733135472000}'), '{"ts":173313***2000}');
    assert.equal(redact('{"lon":-73.98565700000001}'), '{"lon":-73.985657****0001}');
  });

  it("cuts PANs written in other digit scripts, keeping their BIN and last 4 as written", () => {
    const fullwidth = inScript(PAN, 0xff10);
    assert.deepEqual(redactPans(`card ${fullwidth}`), {
      text: `card ${inScript("411111", 0xff10)}******${inScript("1111", 0xff10)}`,
      redacted: 1,
    });
    const arabicIndic = inScript(AMEX, 0x660);
    assert.equal(redact(arabicIndic), `${inScript("378282", 0x660)}*****${inScript("0005", 0x660)}`);
    // Mathematical bold digits are outside the BMP (two UTF-16 units each): one star per digit.
    const bold = inScript(PAN, 0x1d7ce);
    assert.equal(redact(bold), `${inScript("411111", 0x1d7ce)}******${inScript("1111", 0x1d7ce)}`);
    // Mixed scripts are one number to a reader, so one run here.
    assert.equal(
      redact(`4111${inScript("1111", 0xff10)}11111111`),
      `4111${inScript("11", 0xff10)}******1111`,
    );
  });

  it("skips canonical UUIDs whole (transaction ids stay findable), not ids that only look like one", () => {
    for (let i = 0; i < 20_000; i++) {
      const id = randomUUID();
      assert.deepEqual(redactPans(`{"transaction_id":"${id}"}`).redacted, 0, id);
    }
    const digits = "12345678-1234-4234-8234-123456789012";
    assert.equal(redact(digits), digits);
    assert.equal(redact(digits.toUpperCase()), digits.toUpperCase());
    // Beside a UUID a PAN is still cut, and a UUID ends the run before it.
    assert.equal(redact(`${PAN} ${digits}`), `411111******1111 ${digits}`);
    assert.equal(redact(`4111 1111 ${digits}`), `4111 1111 ${digits}`);
    // One digit too many, or glued to a letter: not a UUID, so its digit runs are cut.
    assert.equal(redact(`${digits}3`), "123456**-****-****-****-*********0123");
    assert.equal(redact(`x${digits}`), "x123456**-****-****-****-********9012");
  });

  it("leaves a transaction's other fields byte for byte", () => {
    const record = JSON.stringify({
      transaction_id: "7b0e4c1e-8f3a-4c52-9d7e-2f1a3b4c5d6e",
      card_number: PAN,
      cardholder_name: "Ada Lovelace",
      amount: "12.34",
      event_time: "2026-11-25T10:00:00.123Z",
      lat: 51.5,
      lon: -0.12,
    });
    assert.deepEqual(redactPans(record), { text: record.replace(PAN, "411111******1111"), redacted: 1 });
  });

  it("leaves nothing card-like behind, whatever the grouping (random PANs in random text)", () => {
    const separators = [" ", "-", "\u00a0", "\u2013"];
    for (let i = 0; i < 3000; i++) {
      const pan = randomPan(12 + (i % 8), String(1 + (i % 9)));
      let written = "";
      let k = 0;
      while (k < pan.length) {
        const size = 1 + ((i * 7 + k) % 6);
        written +=
          (k > 0 && i % 3 !== 0 ? separators[(i + k) % separators.length] : "") + pan.slice(k, k + size);
        k += size;
      }
      const text = `{"note":"card ${written}${i % 2 === 0 ? "," : " "}thanks"}`;
      const out = redact(text);
      assert.equal(redactPans(out).redacted, 0, `a card-like run left in ${out}`);
      assert.deepEqual(findLuhnDigitRuns(out), [], out);
      assert.equal(out.replace(/[^0-9]/g, ""), pan.slice(0, 6) + pan.slice(-4), `${pan} -> ${out}`);
    }
  });

  it("is linear on very long input (no backtracking)", () => {
    const groups = "1 ".repeat(500_000);
    const out = redactPans(groups);
    assert.equal(out.redacted, 1);
    assert.equal(out.text.length, groups.length);
    const digits = "1".repeat(1_000_000);
    assert.equal(redactPans(digits).text, digits);
    const mixed = `${PAN}, `.repeat(50_000);
    assert.equal(redactPans(mixed).redacted, 50_000);
    assert.equal(findLuhnDigitRuns(mixed).length, 50_000);
    assert.deepEqual(findLuhnDigitRuns(groups), [], "runs of ones never pass Luhn");
  });
});

describe("findLuhnDigitRuns", () => {
  it("finds Luhn-valid 12-19 digit numbers in text and JSON", () => {
    assert.deepEqual(findLuhnDigitRuns(`{"card_number":"${PAN}"}`), [PAN]);
    assert.deepEqual(findLuhnDigitRuns(`paid with ${PAN}.`), [PAN]);
    assert.deepEqual(findLuhnDigitRuns(`pan=${AMEX} and 5555555555554444`), [AMEX, "5555555555554444"]);
    const pan19 = randomPan(19);
    assert.deepEqual(findLuhnDigitRuns(pan19), [pan19]);
  });

  it("finds grouped PANs, PANs inside longer runs and PANs in other digit scripts, as ASCII digits", () => {
    assert.deepEqual(findLuhnDigitRuns("4111 1111 1111 1111"), [PAN]);
    assert.deepEqual(findLuhnDigitRuns("card: 4111-1111-1111-1111, exp 12/26"), [PAN]);
    assert.deepEqual(findLuhnDigitRuns("3782 822463 10005"), [AMEX]);
    assert.ok(findLuhnDigitRuns("2026 4111 1111 1111 1111").includes(PAN));
    assert.deepEqual(findLuhnDigitRuns(inScript(PAN, 0xff10)), [PAN]);
    assert.deepEqual(findLuhnDigitRuns(inScript(AMEX, 0x1d7ce)), [AMEX]);
  });

  it("ignores Luhn-invalid numbers and numbers outside 12-19 digits", () => {
    assert.deepEqual(findLuhnDigitRuns("4111111111111112"), []);
    assert.deepEqual(findLuhnDigitRuns(`${PAN}0000`), []);
    assert.deepEqual(findLuhnDigitRuns("41111111118"), []);
  });

  it("does not report ids, tokens, decimals and epoch milliseconds", () => {
    const m = new Masker(randomBytes(32));
    let misses = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = JSON.stringify({
        uuid: randomUUID(),
        hex: randomBytes(16).toString("hex"),
        token: m.token("device", `d${i}`),
        alert: alertId("r", `a${i}`, randomUUID()),
        ms: 1_600_000_000_000 + Math.floor(Math.random() * 1e12),
        lat: Math.random() * 180 - 90,
      });
      if (findLuhnDigitRuns(text).length > 0) misses++;
    }
    assert.equal(misses, 0);
    // Digit-only hex segments would otherwise pass Luhn one time in ten.
    assert.deepEqual(findLuhnDigitRuns(`id-${PAN}`), []);
    assert.deepEqual(findLuhnDigitRuns(`0.${PAN}`), []);
    const epochMs = `173255040000${luhnCheckDigit("173255040000")}`;
    assert.ok(luhnValid(epochMs));
    assert.deepEqual(findLuhnDigitRuns(`"t":${epochMs}`), []);
  });

  it("reports nothing redactPans leaves behind", () => {
    for (const text of [PAN, AMEX, "4111 1111 1111 1111", `id-${PAN}`, `0.${PAN}`, `x${PAN}y`]) {
      assert.deepEqual(findLuhnDigitRuns(redact(text)), [], text);
    }
  });
});

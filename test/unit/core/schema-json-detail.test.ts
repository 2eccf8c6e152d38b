/**
 * The bad_json detail never quotes input (issue 10). V8's JSON.parse messages quote up to 10
 * characters either side of an unexpected token, the whole input under 21 characters: for a
 * record corrupted inside card_number that is up to 9 digits past the BIN in the DLQ's
 * `detail` header. The detail keeps what went wrong and where.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DlqReasons } from "../../../src/contracts/dlq.ts";
import { decodeTransaction } from "../../../src/core/schema.ts";
import { txJson } from "../../helpers/fixtures.ts";

/** A Luhn-valid Visa test number whose digits past the BIN are all distinct from the sample's. */
const PAN = "4539148803436467";
const RECORD = txJson({ card_number: PAN });

function badJsonDetail(input: string): string {
  const r = decodeTransaction(input);
  assert.ok(!r.ok, `refused: ${input}`);
  assert.equal(r.reason, DlqReasons.badJson, `${input}: ${r.detail}`);
  return r.detail;
}

/** The detail with the numbers it may carry (position, line, column, input length) removed. */
function withoutPositions(detail: string): string {
  return detail
    .replace(/at position \d+( \(line \d+ column \d+\))?/, "")
    .replace(/input of \d+ characters/, "");
}

function v8Message(input: string): string {
  try {
    JSON.parse(input);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`parses: ${input}`);
}

describe("bad_json detail", () => {
  it("V8 itself quotes card digits past the BIN (the leak this guards against)", () => {
    const at = RECORD.indexOf(PAN);
    const corrupted = `${RECORD.slice(0, at - 1)}x${RECORD.slice(at)}`;
    assert.match(v8Message(corrupted), /453914880/, "V8's message holds 9 card digits");
    assert.match(v8Message(`x${PAN}`), new RegExp(PAN), "a short input is quoted whole");
  });

  it("keeps the position and drops the excerpt of an unexpected token", () => {
    const at = RECORD.indexOf(PAN);
    // The card's opening quote replaced by a letter: mid-record, near the start, near the end.
    const mid = `${RECORD.slice(0, at - 1)}x${RECORD.slice(at)}`;
    assert.equal(badJsonDetail(mid), `Unexpected token in JSON at position ${at - 1} (input text omitted)`);
    const start = `{"c":x${PAN}${PAN}`;
    assert.equal(badJsonDetail(start), "Unexpected token in JSON at position 5 (input text omitted)");
    const end = `{"card_number":"4111111111111111","a":x${PAN}`;
    assert.equal(
      badJsonDetail(end),
      `Unexpected token in JSON at position ${end.indexOf("x")} (input text omitted)`,
    );
    assert.equal(
      badJsonDetail(`x${PAN}`),
      "Unexpected token in JSON (input of 17 characters; text omitted)",
      "a short input: V8 gives no position, and nothing of the input is kept",
    );
  });

  it("keeps V8's own message when it holds only a position", () => {
    const cut = RECORD.slice(0, RECORD.indexOf(PAN) + 10);
    assert.equal(
      badJsonDetail(cut),
      `Unterminated string in JSON at position ${cut.length} (line 1 column ${cut.length + 1})`,
    );
    assert.equal(badJsonDetail(""), "Unexpected end of JSON input");
  });

  it("holds no digit of the input wherever a record is cut or corrupted", () => {
    const numeric = RECORD.replace(`"${PAN}"`, PAN);
    let checked = 0;
    for (const record of [RECORD, numeric]) {
      for (let i = 0; i < record.length; i++) {
        for (const input of [
          record.slice(0, i),
          `${record.slice(0, i)}x${record.slice(i)}`,
          `${record.slice(0, i)}}${record.slice(i)}`,
          `${record.slice(0, i)}\u0001${record.slice(i)}`,
        ]) {
          const r = decodeTransaction(input);
          if (r.ok || r.reason !== DlqReasons.badJson) continue;
          checked++;
          assert.doesNotMatch(withoutPositions(r.detail), /\d/, `${JSON.stringify(input)} -> ${r.detail}`);
          assert.ok(!r.detail.includes(PAN.slice(6, 10)), r.detail);
        }
      }
    }
    assert.ok(checked > 1000, `${checked} malformed inputs checked`);
  });
});

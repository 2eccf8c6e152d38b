import assert from "node:assert/strict";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import type { Transaction } from "../../../src/contracts/transaction.ts";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import {
  coarsenCoordinate,
  DEFAULT_COORDINATE_DECIMALS,
  MAX_COORDINATE_DECIMALS,
  Masker,
} from "../../../src/core/masking.ts";
import { findLuhnDigitRuns } from "../../../src/core/pan.ts";
import { PiiTokenizer, TOKEN_KINDS } from "../../../src/core/pii-tokens.ts";
import { evaluate } from "../../../src/core/rules.ts";
import { luhnCheckDigit } from "../../../src/core/schema.ts";
import { TwoGenerationCache } from "../../../src/core/token-cache.ts";
import { WindowStore } from "../../../src/core/window.ts";
import { decodedTx, oneRule, T0, TEST_PAN, TEST_PII_KEY } from "../../helpers/fixtures.ts";

const KEY = TEST_PII_KEY;
const OTHER_KEY = Buffer.from("fedcba9876543210fedcba9876543210");
const PAN = TEST_PAN;

/** The sample transaction with an e-mail holding the surname, a long device id and a fractional amount. */
function tx(patch: Partial<Transaction> = {}): Transaction {
  return decodedTx({
    email: "ada.lovelace@example.com",
    device_id: "device-7f3a9c",
    amount: "1234.5",
    lat: 51.507351,
    lon: -0.127758,
    ...patch,
  });
}

/** A random Luhn-valid PAN of the given length and first digit. */
function randomPan(length: number, first = "4"): string {
  let partial = first;
  while (partial.length < length - 1) partial += String(Math.floor(Math.random() * 10));
  return partial + luhnCheckDigit(partial);
}

describe("Masker", () => {
  it("masks a card to BIN, last 4 and a token", () => {
    const card = new Masker(KEY).maskCard(PAN);
    assert.equal(card.bin, "411111");
    assert.equal(card.last4, "1111");
    assert.match(card.token, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(!card.token.includes(PAN));
  });

  it("keeps at least 5 digits hidden on short PANs", () => {
    const m = new Masker(KEY);
    assert.equal(m.maskCard("378282246310005").last4, "0005");
    assert.equal(m.maskCard(randomPan(14, "3")).last4.length, 3);
    assert.equal(m.maskCard(randomPan(13)).last4.length, 2);
    assert.equal(m.maskCard(randomPan(12, "5")).last4.length, 1);
    assert.equal(m.maskCard(randomPan(19)).last4.length, 4);
  });

  it("tokens are stable per key, differ across keys and across kinds", () => {
    const a = new Masker(KEY);
    const b = new Masker(Buffer.from(KEY));
    const c = new Masker(OTHER_KEY);
    assert.equal(a.token("email", "x@example.com"), b.token("email", "x@example.com"));
    assert.equal(a.maskCard(PAN).token, b.maskCard(PAN).token);
    assert.notEqual(a.token("email", "x@example.com"), c.token("email", "x@example.com"));
    assert.notEqual(a.maskCard(PAN).token, c.maskCard(PAN).token);
    const kinds = ["card", "name", "email", "ip", "device"] as const;
    const tokens = new Set(kinds.map((k) => a.token(k, "same value")));
    assert.equal(tokens.size, kinds.length);
  });

  it("is HMAC-SHA256 under a per-kind subkey (documented construction)", () => {
    const subkey = createHmac("sha256", KEY).update("paystream/pii-token/v1/name").digest();
    const expected = createHmac("sha256", subkey)
      .update("Ada Lovelace")
      .digest()
      .toString("base64url", 0, 16);
    assert.equal(new Masker(KEY).token("name", "Ada Lovelace"), expected);
  });

  it("treats emails and IPs case-insensitively, names as given", () => {
    const m = new Masker(KEY);
    assert.equal(m.token("email", " Ada@Example.COM "), m.token("email", "ada@example.com"));
    assert.equal(m.token("ip", "2001:DB8::1"), m.token("ip", "2001:db8::1"));
    assert.notEqual(m.token("name", "ADA"), m.token("name", "ada"));
  });

  it("caches hits and stays bounded", () => {
    const m = new Masker(KEY, { cacheEntries: 4 });
    const first = m.token("device", "d-1");
    assert.equal(m.token("device", "d-1"), first);
    for (let i = 0; i < 100; i++) m.token("device", `d-${i}`);
    const stats = m.cacheStats().device;
    assert.ok(stats.entries <= 8, `entries ${stats.entries}`);
    assert.ok(stats.hits >= 1);
    // A value evicted from the cache tokenises to the same token again.
    assert.equal(m.token("device", "d-1"), first);
    m.clearCache();
    assert.equal(m.cacheStats().device.entries, 0);
  });

  it("runs no HMAC for a memoised account, one per new value, none to switch back", () => {
    const m = new Masker(KEY);
    m.maskTransaction(tx());
    assert.equal(m.tokensComputed, 5, "card, name, email, IP, device");
    for (let i = 0; i < 10; i++) m.maskTransaction(tx());
    assert.equal(m.tokensComputed, 5, "a memo hit computes nothing");
    const other = { card_number: "5555555555554444", ip_address: "203.0.113.9", device_id: "device-2" };
    m.maskTransaction(tx(other));
    assert.equal(m.tokensComputed, 8, "a new card, IP and device cost one token each");
    for (let i = 0; i < 10; i++) m.maskTransaction(tx(i % 2 === 0 ? {} : other));
    assert.equal(m.tokensComputed, 8, "switching back and forth between them costs none");
    const card = m.cardOf(tx());
    assert.equal(m.tokensComputed, 8, "an alert's card comes from the memo");
    assert.deepEqual(card, m.maskCard(PAN));
    assert.deepEqual(m.cardOf(tx(other)), m.maskCard(other.card_number));
  });

  it("refuses a missing or short key", () => {
    for (const key of [Buffer.alloc(0), Buffer.alloc(15)]) {
      assert.throws(
        () => new Masker(key),
        (e) => isPaystreamError(e) && e.code === ErrorCodes.SECRET_MISSING,
      );
    }
  });
});

describe("PiiTokenizer", () => {
  /** The documented construction, computed the plain way. */
  const reference = (key: Buffer, kind: string, value: string) => {
    const subkey = createHmac("sha256", key).update(`paystream/pii-token/v1/${kind}`).digest();
    return createHmac("sha256", subkey).update(value, "utf8").digest().toString("base64url", 0, 16);
  };

  it("is the first 128 bits of HMAC-SHA256 under the kind's subkey, base64url, on random keys and values", () => {
    const alphabet = ["a", "Z", "0", " ", "@", "é", "漢", "😀", "\ud800", "\u0000"];
    for (let i = 0; i < 3000; i++) {
      const key = randomBytes([16, 32, 64, 65, 100][i % 5]!);
      const kind = TOKEN_KINDS[i % TOKEN_KINDS.length]!;
      const len = i % 300;
      let value = "";
      for (let k = 0; k < len; k++) value += alphabet[(k * 7 + i) % (i % 3 === 0 ? 4 : alphabet.length)];
      if (kind === "email" || kind === "ip") value = value.trim().toLowerCase();
      assert.equal(new PiiTokenizer(key).token(kind, value), reference(key, kind, value), value);
    }
  });

  it("gets every 22nd character right (the one the 16-byte encoding zero-pads)", () => {
    // Each of the 4 possible last characters of a 16-byte base64url, many times over.
    const tok = new PiiTokenizer(KEY);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = tok.token("device", `d-${i}`);
      assert.equal(t, reference(KEY, "device", `d-${i}`));
      seen.add(t[21]!);
    }
    assert.deepEqual([...seen].sort(), ["A", "Q", "g", "w"]);
  });

  it("counts the HMACs it runs", () => {
    const tok = new PiiTokenizer(KEY);
    tok.token("name", "a");
    tok.token("name", "a");
    assert.equal(tok.computed, 2);
  });
});

describe("TwoGenerationCache", () => {
  it("keeps at most two generations and promotes old hits", () => {
    const c = new TwoGenerationCache<number>(2);
    c.set("a", 1);
    c.set("b", 2);
    c.set("c", 3); // a, b become old
    assert.equal(c.get("a"), 1); // promoted into the young generation
    c.set("d", 4); // young (c, a) becomes old; b is dropped
    assert.equal(c.get("b"), undefined);
    assert.equal(c.get("a"), 1);
    assert.ok(c.size <= 4);
    assert.deepEqual(c.stats(), { hits: 2, misses: 1, entries: c.size });
    c.clear();
    assert.equal(c.size, 0);
  });
});

describe("maskTransaction", () => {
  it("produces a row with no raw PII", () => {
    const m = new Masker(KEY);
    const t = tx();
    const row = m.maskTransaction(t);
    const json = JSON.stringify(row);
    assert.deepEqual(findLuhnDigitRuns(json), []);
    for (const secret of [t.card_number, t.cardholder_name, t.email, t.ip_address, t.device_id, "Lovelace"]) {
      assert.ok(!json.includes(secret), `row leaks ${secret}`);
    }
    assert.ok(!json.includes(PAN.slice(6, 12)), "middle digits leaked");
    for (const field of ["card_number", "cardholder_name", "email", "ip_address", "device_id"]) {
      assert.ok(!(field in row), field);
    }
  });

  it("keeps the non-PII fields and exact amounts", () => {
    const row = new Masker(KEY).maskTransaction(tx());
    assert.equal(row.amount, "1234.50");
    assert.equal(row.amount_minor, 123_450);
    assert.deepEqual(
      [row.transaction_id, row.account_id, row.card_bin, row.card_last4, row.currency, row.merchant_id],
      ["7b0e4c1e-8f3a-4c52-9d7e-2f1a3b4c5d6e", "acct-1", "411111", "1111", "GBP", "m-1"],
    );
    assert.deepEqual([row.merchant_category, row.country, row.city], ["5411", "GB", "London"]);
    assert.equal(row.event_time, "2026-11-25T10:00:00.123Z");
    assert.equal(row.event_time_ms, Date.parse("2026-11-25T10:00:00.123Z"));
    for (const k of ["card_token", "name_token", "email_token", "ip_token", "device_token"] as const) {
      assert.match(row[k], /^[A-Za-z0-9_-]{22}$/);
    }
  });

  it("follows an account's changing card, email, IP and device", () => {
    const m = new Masker(KEY);
    const first = m.maskTransaction(tx());
    const changed = { card_number: "5555555555554444", email: "new@example.com", ip_address: "203.0.113.9" };
    const second = m.maskTransaction(
      tx({ ...changed, device_id: "device-2", cardholder_name: "A. Lovelace" }),
    );
    assert.equal(second.card_token, m.maskCard("5555555555554444").token);
    assert.equal(second.card_bin, "555555");
    assert.equal(second.email_token, m.token("email", "new@example.com"));
    assert.equal(second.ip_token, m.token("ip", "203.0.113.9"));
    assert.equal(second.device_token, m.token("device", "device-2"));
    assert.equal(second.name_token, m.token("name", "A. Lovelace"));
    assert.equal(m.maskTransaction(tx()).email_token, first.email_token);
    // Another account with the same values gets the same tokens: they join across accounts.
    assert.equal(m.maskTransaction(tx({ account_id: "acct-2" })).card_token, first.card_token);
  });

  it("never leaks across many random transactions", () => {
    const m = new Masker(randomBytes(32));
    for (let i = 0; i < 2000; i++) {
      const pan = randomPan([12, 13, 14, 15, 16, 19][i % 6]!, String(2 + (i % 5)));
      const t = tx({
        transaction_id: randomUUID(),
        card_number: pan,
        eventTimeMs: 1_700_000_000_000 + i * 7919,
        lat: Math.random() * 180 - 90,
        lon: Math.random() * 360 - 180,
      });
      const json = JSON.stringify(m.maskTransaction(t));
      assert.deepEqual(findLuhnDigitRuns(json), [], json);
      assert.ok(!json.includes(pan));
    }
  });
});

describe("coordinates in warehouse rows (issue 10, item 9)", () => {
  it("are rounded to 2 decimals (~1 km) by default, and printed as such", () => {
    assert.equal(DEFAULT_COORDINATE_DECIMALS, 2);
    const row = new Masker(KEY).maskRow(tx(), 3, "42", T0, false);
    assert.equal(row.lat, 51.51);
    assert.equal(row.lon, -0.13);
    const json = JSON.stringify(row);
    assert.match(json, /"lat":51\.51,"lon":-0\.13,/);
    assert.ok(
      !json.includes("51.507") && !json.includes("0.1277"),
      "no full-precision coordinate in the row",
    );
  });

  it("keep as many decimals as configured, 0 to 6", () => {
    const at = (coordinateDecimals: number) => {
      const row = new Masker(KEY, { coordinateDecimals }).maskTransaction(tx());
      return [row.lat, row.lon];
    };
    assert.deepEqual(at(0), [52, 0]);
    assert.deepEqual(at(1), [51.5, -0.1]);
    assert.deepEqual(at(4), [51.5074, -0.1278]);
    assert.deepEqual(at(MAX_COORDINATE_DECIMALS), [51.507351, -0.127758]);
  });

  it("refuses a decimal count outside 0-6 or not an integer", () => {
    for (const coordinateDecimals of [-1, 7, 1.5, Number.NaN]) {
      assert.throws(
        () => new Masker(KEY, { coordinateDecimals }),
        (e: unknown) => isPaystreamError(e) && e.code === ErrorCodes.CONFIG_INVALID,
        String(coordinateDecimals),
      );
    }
  });

  it("round to the nearest, stay within range at the poles and the antimeridian, and never give -0", () => {
    assert.equal(coarsenCoordinate(12.345678, 100), 12.35);
    assert.equal(coarsenCoordinate(-33.8688, 100), -33.87);
    assert.equal(coarsenCoordinate(90, 100), 90);
    assert.equal(coarsenCoordinate(-90, 100), -90);
    assert.equal(coarsenCoordinate(179.999, 100), 180);
    assert.equal(coarsenCoordinate(-180, 1), -180);
    assert.ok(Object.is(coarsenCoordinate(-0.001, 100), 0), "-0.001 becomes 0, not -0");
    assert.ok(Object.is(coarsenCoordinate(-0.4, 1), 0), "-0.4 becomes 0, not -0");
    for (let i = 0; i < 2000; i++) {
      const v = Math.random() * 360 - 180;
      const c = coarsenCoordinate(v, 100);
      assert.ok(Math.abs(c - v) <= 0.005 + 1e-12, `${v} -> ${c}`);
      assert.ok(/^-?\d+(\.\d{1,2})?$/.test(String(c)), `${v} -> ${c} prints with at most 2 decimals`);
    }
  });

  it("rules see full precision: a jump inside one rounded cell still alerts, and masking leaves the transaction as it was", () => {
    // Two payments 5 s apart, ~1.3 km apart: 940 km/h. Both round to (48.86, 2.35), so a
    // rule reading rows would see no movement at all.
    const rule = oneRule("geo_velocity", { maxSpeedKmh: 100, minDistanceKm: 1, minDistinctCountries: null });
    const first = tx({ account_id: "acct-geo", lat: 48.8551, lon: 2.3451, eventTimeMs: T0 });
    const second = tx({ account_id: "acct-geo", lat: 48.8649, lon: 2.3549, eventTimeMs: T0 + 5_000 });
    const masker = new Masker(KEY);
    const rows = [first, second].map((t) => masker.maskRow(t, 0, "0", T0, false));
    assert.deepEqual(
      rows.map((r) => [r.lat, r.lon]),
      [
        [48.86, 2.35],
        [48.86, 2.35],
      ],
      "the warehouse cannot tell the two places apart",
    );
    assert.deepEqual([second.lat, second.lon], [48.8649, 2.3549], "maskRow did not touch the transaction");

    // The processor's order: window add, rules, then the row (src/processor/processor.ts).
    const run = (txs: Transaction[]) => {
      const store = new WindowStore();
      const raised = [];
      for (const t of txs) {
        raised.push(...evaluate(rule, store.add(t, t.eventTimeMs), t, t.eventTimeMs));
        masker.maskRow(t, 0, "0", t.eventTimeMs, false);
      }
      return raised;
    };
    const alerts = run([first, second]);
    assert.equal(alerts.length, 1, "impossible travel detected on the full-precision window");
    assert.equal(alerts[0]!.transactionId, second.transaction_id);
    assert.equal(alerts[0]!.figures.distanceKm, 1);
    // The same payments at row precision raise nothing: the check above can fail.
    const coarse = [first, second].map((t, i) => ({ ...t, lat: rows[i]!.lat, lon: rows[i]!.lon }));
    assert.equal(run(coarse).length, 0, "at row precision the jump is invisible");
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  HIGH_AMOUNT_MAX_MEAN_MULTIPLE,
  HIGH_AMOUNT_MINOR,
  NORMAL_AMOUNT_FLOOR_MINOR,
  Population,
} from "../../../src/collector/population.ts";
import { Rng } from "../../../src/collector/random.ts";
import {
  CATEGORY,
  CITIES,
  farCities,
  GEO_MIN_KM,
  MERCHANT_CATEGORIES,
  MIN_MERCHANTS,
} from "../../../src/collector/world.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { haversineKm } from "../../../src/core/rules.ts";
import { luhnValid, validateTransaction } from "../../../src/core/schema.ts";

const small = new Population({ seed: 1, accounts: 20_000 });

/** Brand from the PAN prefix, or null if it matches no network range we issue. */
function brandOf(pan: string): "visa" | "mastercard" | "amex" | null {
  const two = Number(pan.slice(0, 2));
  const four = Number(pan.slice(0, 4));
  if (pan[0] === "4" && pan.length === 16) return "visa";
  if (((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720)) && pan.length === 16) return "mastercard";
  if ((two === 34 || two === 37) && pan.length === 15) return "amex";
  return null;
}

describe("city table", () => {
  it("has ~40 real cities in ~25 countries with sane coordinates and currencies", () => {
    assert.ok(CITIES.length >= 40, `${CITIES.length} cities`);
    assert.ok(new Set(CITIES.map((c) => c.country)).size >= 25);
    assert.equal(new Set(CITIES.map((c) => c.name)).size, CITIES.length);
    for (const c of CITIES) {
      assert.match(c.country, /^[A-Z]{2}$/);
      assert.match(c.currency, /^[A-Z]{3}$/);
      assert.ok(Math.abs(c.lat) <= 90 && Math.abs(c.lon) <= 180 && c.weight > 0, c.name);
    }
    assert.ok(CITIES.length < 64, "the packed profile has 6 bits for the city");
  });

  it("places the cities where they are (known distances)", () => {
    const at = (name: string) => CITIES.find((c) => c.name === name)!;
    const km = (a: string, b: string) => haversineKm(at(a).lat, at(a).lon, at(b).lat, at(b).lon);
    assert.ok(Math.abs(km("London", "Paris") - 344) < 5);
    assert.ok(Math.abs(km("New York", "Los Angeles") - 3936) < 20);
    assert.ok(Math.abs(km("Sydney", "Tokyo") - 7826) < 40);
    assert.equal(km("Tokyo", "Tokyo"), 0);
  });

  it("gives every city somewhere far enough away for a geo_velocity incident", () => {
    CITIES.forEach((c, i) => {
      const far = farCities(i);
      assert.ok(far.length > 0, c.name);
      for (const j of far) assert.ok(haversineKm(c.lat, c.lon, CITIES[j]!.lat, CITIES[j]!.lon) >= GEO_MIN_KM);
    });
  });
});

describe("Population", () => {
  it("is a pure function of the seed, whatever the cache size or access order", () => {
    const a = new Population({ seed: 1, accounts: 20_000, cacheSlots: 16 });
    for (const i of [19_999, 0, 7, 12_345, 7]) {
      assert.deepEqual(a.account(i), small.account(i));
      assert.equal(a.identityFragment(i, 0, 0), small.identityFragment(i, 0, 0));
      assert.equal(a.homeFragment(i), small.homeFragment(i));
    }
    const other = new Population({ seed: 2, accounts: 20_000 });
    assert.notDeepEqual(other.account(7), small.account(7));
    assert.notEqual(other.accountId(7), small.accountId(7), "ids of different seeds never collide");
  });

  it("issues Luhn-valid, unique cards from Visa, Mastercard and Amex ranges", () => {
    const pans = new Set<string>();
    const brands = { visa: 0, mastercard: 0, amex: 0 };
    let twoCards = 0;
    for (let i = 0; i < small.accounts; i++) {
      const { cards, devices } = small.deriveIdentity(i);
      assert.equal(cards.length, small.cardsOf(i));
      assert.equal(devices.length, small.devicesOf(i));
      if (cards.length === 2) twoCards++;
      for (const pan of cards) {
        assert.ok(luhnValid(pan), pan);
        const brand = brandOf(pan);
        assert.ok(brand !== null, `unexpected PAN ${pan}`);
        brands[brand]++;
        pans.add(pan);
      }
      for (const d of devices) assert.match(d, /^dev_[0-9a-f]{16}$/);
    }
    const cardCount = brands.visa + brands.mastercard + brands.amex;
    assert.equal(pans.size, cardCount, "no two cards share a PAN");
    assert.ok(
      brands.visa / cardCount > 0.45 &&
        brands.mastercard / cardCount > 0.25 &&
        brands.amex / cardCount > 0.05,
    );
    assert.ok(Math.abs(twoCards / small.accounts - 0.35) < 0.03);
  });

  it("gives each account plausible PII tied to its home", () => {
    for (let i = 0; i < 500; i++) {
      const p = small.account(i);
      assert.match(p.accountId, /^acc_[0-9a-f]{8}_\d{7}$/);
      assert.match(p.email, /^[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+$/);
      assert.match(p.cardholderName, /^[A-Za-z' -]+ [A-Za-z' -]+$/);
      assert.ok(/^\d{1,3}(\.\d{1,3}){3}$/.test(p.ipAddress) || p.ipAddress.includes(":"), p.ipAddress);
      assert.ok(haversineKm(p.lat, p.lon, p.city.lat, p.city.lon) <= 12.5);
      assert.equal(p.currency, p.city.currency);
      assert.ok(p.typicalAmountMinor >= 400 && p.typicalAmountMinor <= 40_000);
    }
  });

  it("skews activity: a few heavy accounts, many light ones", () => {
    const w = Array.from(small.activity).sort((a, b) => b - a);
    const total = w.reduce((s, x) => s + x, 0);
    const share = (from: number, to: number) => w.slice(from, to).reduce((s, x) => s + x, 0) / total;
    const n = w.length;
    assert.ok(share(0, n / 100) > 0.06, `top 1% ${share(0, n / 100)}`);
    assert.ok(share(0, n / 10) > 0.3, `top 10% ${share(0, n / 10)}`);
    assert.ok(share(n / 2, n) < 0.2, `bottom half ${share(n / 2, n)}`);
    const rng = new Rng(4);
    const hits = new Map<number, number>();
    for (let i = 0; i < 200_000; i++) {
      const a = small.sampleAccount(rng);
      hits.set(a, (hits.get(a) ?? 0) + 1);
    }
    const top = Array.from(small.activity).indexOf(w[0]!);
    assert.ok((hits.get(top) ?? 0) > (200_000 / n) * 10, "the heaviest account is drawn far above average");
  });

  it("has a merchant of every card-present category in every city, and online ones", () => {
    const rng = new Rng(8);
    MERCHANT_CATEGORIES.forEach((cat, k) => {
      for (let c = 0; c < CITIES.length; c++) {
        const m = small.merchant(small.sampleMerchantOf(rng, k, c));
        assert.equal(m.category.mcc, cat.mcc);
        if (cat.online) {
          assert.equal(m.city, null);
          assert.ok(small.isOnline(m.index));
        } else {
          assert.equal(m.city, CITIES[c]);
          assert.ok(haversineKm(m.lat, m.lon, CITIES[c]!.lat, CITIES[c]!.lon) <= 10.5);
        }
      }
    });
    for (const cat of MERCHANT_CATEGORIES) assert.match(cat.mcc, /^\d{4}$/);
    assert.equal(MERCHANT_CATEGORIES[CATEGORY.grocery!]!.mcc, "5411");
    assert.equal(MERCHANT_CATEGORIES[CATEGORY.digital_goods!]!.mcc, "5818");
  });

  it("keeps normal purchases at home: card-present merchants in the home city only", () => {
    const rng = new Rng(9);
    for (let i = 0; i < 20_000; i++) {
      const a = rng.below(small.accounts);
      const m = small.sampleMerchant(rng, a);
      if (!small.isOnline(m)) assert.equal(small.merchantCity[m], small.cityOf(a));
    }
  });

  it("draws amounts that cannot look like card testing or a spike against the account's mean", () => {
    const rng = new Rng(10);
    for (let i = 0; i < 300_000; i++) {
      const a = rng.below(small.accounts);
      const amount = small.amountMinor(rng, a, small.sampleMerchant(rng, a));
      assert.ok(Number.isInteger(amount) && amount >= NORMAL_AMOUNT_FLOOR_MINOR, `${amount}`);
      if (amount >= HIGH_AMOUNT_MINOR) {
        assert.ok(
          amount <= HIGH_AMOUNT_MAX_MEAN_MULTIPLE * small.meanAmountMinor(a),
          `${amount} on account ${a}`,
        );
      }
    }
    // meanAmountMinor is what an account's amounts average out to.
    for (const a of [1, 2, 3]) {
      let sum = 0;
      const n = 50_000;
      for (let i = 0; i < n; i++) sum += small.amountMinor(rng, a, small.sampleMerchant(rng, a));
      const ratio = sum / n / small.meanAmountMinor(a);
      assert.ok(ratio > 0.9 && ratio < 1.1, `account ${a}: ${ratio}`);
    }
  });

  it("composes fragments into a valid transaction that matches the profile", () => {
    const rng = new Rng(12);
    for (let n = 0; n < 2_000; n++) {
      const a = rng.below(small.accounts);
      const card = rng.below(small.cardsOf(a));
      const device = rng.below(small.devicesOf(a));
      const m = small.sampleMerchant(rng, a);
      const json =
        '{"schema_version":1,"transaction_id":"t-1' +
        small.identityFragment(a, card, device) +
        "12.34" +
        small.merchantFragment(m) +
        (small.isOnline(m) ? small.homeFragment(a) : "") +
        '2025-11-28T12:00:00.000Z"}';
      const result = validateTransaction(JSON.parse(json));
      assert.ok(result.ok, json);
      const p = small.account(a);
      const merchant = small.merchant(m);
      assert.equal(result.tx.account_id, p.accountId);
      assert.equal(result.tx.card_number, p.cards[card]);
      assert.equal(result.tx.device_id, p.devices[device]);
      assert.equal(result.tx.email, p.email);
      assert.equal(result.tx.merchant_id, merchant.merchantId);
      assert.equal(result.tx.merchant_category, merchant.category.mcc);
      assert.equal(result.tx.city, (merchant.city ?? p.city).name);
    }
  });

  it("builds a million accounts compactly", () => {
    const before = process.memoryUsage();
    const t0 = performance.now();
    const big = new Population({ seed: 5, accounts: 1_000_000 });
    const ms = performance.now() - t0;
    const after = process.memoryUsage();
    const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    assert.ok(grown < 120 * 2 ** 20, `grew ${(grown / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(ms < 5_000, `${ms} ms`);
    assert.match(big.accountId(999_999), /_0999999$/);
    assert.ok(luhnValid(big.account(999_999).cards[0]!));
  });

  it("rejects impossible sizes with a ConfigError naming the field", () => {
    assert.throws(
      () => new Population({ accounts: 0 }),
      (e: unknown) => e instanceof ConfigError && e.field === "accounts",
    );
    assert.throws(() => new Population({ accounts: 1.5 }), ConfigError);
    assert.throws(
      () => new Population({ merchants: MIN_MERCHANTS - 1 }),
      (e: unknown) => e instanceof ConfigError && e.field === "merchants",
    );
    assert.throws(() => small.account(small.accounts), RangeError);
  });
});

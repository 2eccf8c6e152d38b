import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Alert } from "../../../src/contracts/alert.ts";
import type { Transaction } from "../../../src/contracts/transaction.ts";
import { alertId } from "../../../src/core/alert.ts";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import { evaluate, haversineKm, parseRules, type RuleSet } from "../../../src/core/rules.ts";
import { WindowStore } from "../../../src/core/window.ts";
import {
  defaultRules,
  defaultRulesDoc,
  oneRule as one,
  PARIS,
  T0,
  txAt as tx,
} from "../../helpers/fixtures.ts";

const NOW = T0 + 3_600_000;
const NEW_YORK = { lat: 40.7128, lon: -74.006, country: "US", city: "New York" };
const LYON = { lat: 45.764, lon: 4.8357, country: "FR", city: "Lyon" };

/** Feeds transactions through a fresh store, returning the alerts per transaction. */
class Harness {
  readonly store = new WindowStore();
  readonly rules: RuleSet;
  constructor(rules: RuleSet) {
    this.rules = rules;
  }
  feed(t: Transaction): readonly Alert[] {
    return evaluate(this.rules, this.store.add(t), t, NOW);
  }
  feedAll(txs: Transaction[]): Alert[] {
    return txs.flatMap((t) => [...this.feed(t)]);
  }
}

function rulesError(doc: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseRules(doc),
    (e: unknown) => {
      assert.ok(isPaystreamError(e));
      assert.equal(e.code, ErrorCodes.RULES_INVALID);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe("shipped rules file", () => {
  it("config/rules.default.yaml parses to the six agreed rules", () => {
    const doc = defaultRulesDoc();
    const set = parseRules(doc);
    const byId = Object.fromEntries(set.rules.map((r) => [r.id, r]));
    assert.equal(set.rules.length, 6);
    assert.equal(set.compiled.length, 6);
    assert.deepEqual(
      set.rules.map((r) => [r.type, r.severity, r.windowMs, r.enabled]),
      [
        ["velocity_count", "high", 60_000, true],
        ["amount_sum", "medium", 60_000, true],
        ["card_testing", "critical", 60_000, true],
        ["geo_velocity", "high", 60_000, true],
        ["merchant_spread", "medium", 60_000, true],
        ["amount_spike", "medium", 60_000, true],
      ],
    );
    assert.deepEqual(byId["velocity_count"], { ...byId["velocity_count"], threshold: 10 });
    assert.deepEqual(byId["amount_sum"], { ...byId["amount_sum"], thresholdMinor: 1_000_000 });
    assert.deepEqual(byId["card_testing"], {
      ...byId["card_testing"],
      minSmallCount: 5,
      smallAmountMaxMinor: 200,
      largeAmountMinMinor: 10_000,
    });
    assert.deepEqual(byId["geo_velocity"], {
      ...byId["geo_velocity"],
      maxSpeedKmh: 900,
      minDistanceKm: 500,
      minDistinctCountries: 3,
    });
    assert.deepEqual(byId["merchant_spread"], { ...byId["merchant_spread"], threshold: 6 });
    assert.deepEqual(byId["amount_spike"], {
      ...byId["amount_spike"],
      multiplier: 10,
      minAmountMinor: 50_000,
      minHistory: 5,
    });
  });

  it("omitted fields take the same defaults as the shipped file", () => {
    const doc = defaultRulesDoc();
    const shipped = parseRules(doc).rules;
    const minimal = parseRules({
      version: 1,
      rules: shipped.map((r) => ({ id: r.id, type: r.type, description: r.description })),
    }).rules;
    assert.deepEqual(minimal, shipped);
  });
});

describe("parseRules errors name the rule and the field", () => {
  const ok = { id: "velocity_count", type: "velocity_count" };
  it("rejects bad documents", () => {
    rulesError(null, /rules document: field "\(root\)"/);
    rulesError({ version: 2, rules: [] }, /rules document: field "version" must be 1/);
    rulesError({ version: 1 }, /rules document: field "rules" must be a list/);
    rulesError({ version: 1, rules: [], extra: 1 }, /rules document: field "extra"/);
  });
  it("rejects bad rules", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...ok, threshold: 0 }, /rule "velocity_count": field "threshold" must be a positive integer/],
      [{ ...ok, threshold: 2.5 }, /rule "velocity_count": field "threshold" must be a positive integer/],
      [{ ...ok, threshold: "10" }, /rule "velocity_count": field "threshold"/],
      [
        { ...ok, treshold: 10 },
        /rule "velocity_count": field "treshold" is not a field of a velocity_count rule/,
      ],
      [{ ...ok, severity: "urgent" }, /rule "velocity_count": field "severity" must be one of low, medium/],
      [{ ...ok, enabled: "yes" }, /rule "velocity_count": field "enabled" must be true or false/],
      [
        { ...ok, windowMs: 120_000 },
        /rule "velocity_count": field "windowMs" must be a positive integer <= 60000/,
      ],
      [{ ...ok, cooldownMs: -1 }, /rule "velocity_count": field "cooldownMs" must be a non-negative integer/],
      [{ ...ok, type: "velocity" }, /rule "velocity_count": field "type" must be one of velocity_count/],
      [
        { id: "s", type: "amount_sum", threshold: "10.001" },
        /rule "s": field "threshold" must be a positive amount/,
      ],
      [
        { id: "s", type: "amount_sum", threshold: -5 },
        /rule "s": field "threshold" must be a positive amount/,
      ],
      [
        { id: "c", type: "card_testing", largeAmountMin: "1.00" },
        /rule "c": field "largeAmountMin" must be greater/,
      ],
      [
        { id: "g", type: "geo_velocity", maxSpeedKmh: null, minDistinctCountries: null },
        /rule "g": field "maxSpeedKmh" and minDistinctCountries cannot both be null/,
      ],
      [
        { id: "x", type: "amount_spike", multiplier: 0 },
        /rule "x": field "multiplier" must be a positive number/,
      ],
      [{ type: "velocity_count" }, /rule #0: field "id"/],
      [{ id: "has space", type: "velocity_count" }, /rule #0: field "id"/],
    ];
    for (const [rule, pattern] of cases) rulesError({ version: 1, rules: [rule] }, pattern);
    rulesError(
      { version: 1, rules: [ok, ok] },
      /rule "velocity_count": field "id" is a duplicate \(also rule #0\)/,
    );
    rulesError({ version: 1, rules: [ok, 5] }, /rule #1: field "\(rule\)" must be an object/);
  });
  it("puts rule id and field in the error details", () => {
    try {
      parseRules({ version: 1, rules: [{ ...ok, threshold: 0 }] });
      assert.fail("expected a throw");
    } catch (e) {
      assert.ok(isPaystreamError(e));
      assert.deepEqual(e.details, { ruleId: "velocity_count", field: "threshold" });
    }
  });
  it("honours a smaller store window", () => {
    assert.throws(
      () => parseRules({ version: 1, rules: [{ ...ok, windowMs: 60_000 }] }, { maxWindowMs: 30_000 }),
      /field "windowMs" must be a positive integer <= 30000/,
    );
    const set = parseRules(
      { version: 1, rules: [{ id: "v", type: "velocity_count" }] },
      { maxWindowMs: 30_000 },
    );
    assert.equal(set.rules[0]!.windowMs, 30_000);
  });
});

describe("velocity_count", () => {
  it("fires on the 10th transaction in 60 s, not the 9th", () => {
    const h = new Harness(one("velocity_count"));
    for (let i = 0; i < 9; i++) assert.equal(h.feed(tx("a", T0 + i * 1000)).length, 0);
    const alerts = h.feed(tx("a", T0 + 9000));
    assert.equal(alerts.length, 1);
    const a = alerts[0]!;
    assert.deepEqual(
      [a.ruleId, a.ruleType, a.severity, a.accountId, a.eventTimeMs, a.detectedAtMs],
      ["velocity_count", "velocity_count", "high", "a", T0 + 9000, NOW],
    );
    assert.deepEqual(a.figures, {
      count: 10,
      threshold: 10,
      sumMinor: 10_000,
      sum: "100.00",
      windowMs: 60_000,
    });
    assert.equal(a.alertId, alertId("velocity_count", "a", a.transactionId));
  });

  it("boundary: the 1st of 10 exactly 60 s before the 10th is out", () => {
    const h = new Harness(one("velocity_count"));
    const ts = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => T0 + i * 1000);
    assert.equal(h.feedAll([...ts.map((t) => tx("a", t)), tx("a", T0 + 60_000)]).length, 0);
  });

  it("boundary: 1 ms less and it is in", () => {
    const h = new Harness(one("velocity_count"));
    const ts = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => T0 + i * 1000);
    assert.equal(h.feedAll([...ts.map((t) => tx("a", t)), tx("a", T0 + 59_999)]).length, 1);
  });

  it("counts per account", () => {
    const h = new Harness(one("velocity_count"));
    const alerts = h.feedAll(Array.from({ length: 18 }, (_, i) => tx(i % 2 ? "a" : "b", T0 + i * 100)));
    assert.equal(alerts.length, 0);
  });

  it("an out-of-order event sees its own window, not the newest one", () => {
    const h = new Harness(one("velocity_count", { threshold: 3 }));
    h.feed(tx("a", T0 + 70_000));
    h.feed(tx("a", T0 + 71_000));
    // Arrives after T0 + 71000 but is at T0 + 65000 (on time: watermark is T0 + 61000):
    // its window (T0 + 5000, T0 + 65000] holds one earlier event only, not the later two.
    h.feed(tx("a", T0 + 64_000));
    assert.equal(h.feed(tx("a", T0 + 65_000)).length, 0);
    assert.equal(h.feed(tx("a", T0 + 72_000)).length, 1);
  });
});

describe("cooldown", () => {
  it("one incident, one alert; fires again once cooldownMs of event time has passed", () => {
    const h = new Harness(one("velocity_count", { cooldownMs: 120_000 }));
    const fired: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t = T0 + i * 1000;
      if (h.feed(tx("a", t)).length > 0) fired.push(t - T0);
    }
    assert.deepEqual(fired, [9000, 129_000, 249_000]);
  });

  it("is per account and per rule", () => {
    const set = parseRules({
      version: 1,
      rules: [
        { id: "v5", type: "velocity_count", threshold: 5 },
        { id: "v6", type: "velocity_count", threshold: 6 },
      ],
    });
    const h = new Harness(set);
    const ids = h
      .feedAll(Array.from({ length: 12 }, (_, i) => tx(i < 6 ? "a" : "b", T0 + i * 10)))
      .map((a) => `${a.accountId}:${a.ruleId}`);
    assert.deepEqual(ids, ["a:v5", "a:v6", "b:v5", "b:v6"]);
  });

  it("cooldownMs 0 alerts on every qualifying event", () => {
    const h = new Harness(one("velocity_count", { threshold: 2, cooldownMs: 0 }));
    assert.equal(h.feedAll([0, 1, 2, 3].map((i) => tx("a", T0 + i))).length, 3);
  });
});

describe("amount_sum", () => {
  it("fires when the window sum reaches 10,000.00, not at 9,999.99", () => {
    const h = new Harness(one("amount_sum"));
    assert.equal(h.feed(tx("a", T0, { amountMinor: 500_000 })).length, 0);
    assert.equal(h.feed(tx("a", T0 + 1000, { amountMinor: 499_999 })).length, 0);
    const alerts = h.feed(tx("a", T0 + 2000, { amountMinor: 1 }));
    assert.equal(alerts.length, 1);
    assert.deepEqual(alerts[0]!.figures, {
      sumMinor: 1_000_000,
      sum: "10000.00",
      threshold: "10000.00",
      count: 3,
      windowMs: 60_000,
    });
    assert.equal(alerts[0]!.severity, "medium");
  });

  it("forgets amounts older than the window", () => {
    const h = new Harness(one("amount_sum"));
    h.feed(tx("a", T0, { amountMinor: 600_000 }));
    assert.equal(h.feed(tx("a", T0 + 60_000, { amountMinor: 400_000 })).length, 0);
    assert.equal(h.feed(tx("a", T0 + 60_001, { amountMinor: 1 })).length, 0);
  });
});

describe("card_testing", () => {
  const smalls = (n: number, amount = 100) =>
    Array.from({ length: n }, (_, i) => tx("a", T0 + i * 1000, { amountMinor: amount }));

  it("5 charges <= 2.00 then one >= 100.00 in 60 s: critical, on the large one", () => {
    const h = new Harness(one("card_testing"));
    assert.equal(h.feedAll(smalls(5, 200)).length, 0);
    const big = tx("a", T0 + 10_000, { amountMinor: 10_000 });
    const alerts = h.feed(big);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.severity, "critical");
    assert.equal(alerts[0]!.transactionId, big.transaction_id);
    assert.deepEqual(alerts[0]!.figures, {
      smallCount: 5,
      smallSum: "10.00",
      amount: "100.00",
      threshold: 5,
      smallAmountMax: "2.00",
      largeAmountMin: "100.00",
      windowMs: 60_000,
    });
  });

  it("does not fire with 4 small charges, a 99.99 follow-up, or 2.01 'small' charges", () => {
    let h = new Harness(one("card_testing"));
    assert.equal(h.feedAll([...smalls(4), tx("a", T0 + 10_000, { amountMinor: 50_000 })]).length, 0);
    h = new Harness(one("card_testing"));
    assert.equal(h.feedAll([...smalls(5), tx("a", T0 + 10_000, { amountMinor: 9_999 })]).length, 0);
    h = new Harness(one("card_testing"));
    assert.equal(h.feedAll([...smalls(5, 201), tx("a", T0 + 10_000, { amountMinor: 10_000 })]).length, 0);
  });

  it("small charges must come before the large one", () => {
    const h = new Harness(one("card_testing"));
    h.feed(tx("a", T0 + 10_000, { amountMinor: 10_000 }));
    assert.equal(h.feedAll(smalls(5)).length, 0);
  });
});

describe("geo_velocity", () => {
  it("Paris then New York one hour later is impossible travel", () => {
    const h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    const alerts = h.feed(tx("a", T0 + 3_600_000, NEW_YORK));
    assert.equal(alerts.length, 1);
    const f = alerts[0]!.figures;
    assert.equal(f["reason"], "speed");
    assert.equal(f["distanceKm"], Math.round(haversineKm(PARIS.lat, PARIS.lon, NEW_YORK.lat, NEW_YORK.lon)));
    assert.ok(Math.abs((f["distanceKm"] as number) - 5837) < 10);
    assert.equal(f["elapsedMs"], 3_600_000);
    assert.equal(f["speedKmh"], f["distanceKm"]);
  });

  it("the same trip in 8 h (730 km/h) or a 390 km hop in a minute does not fire", () => {
    let h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    assert.equal(h.feed(tx("a", T0 + 8 * 3_600_000, NEW_YORK)).length, 0);
    h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    assert.equal(h.feed(tx("a", T0 + 60_000, LYON)).length, 0);
  });

  it("speed threshold is strict: just above 900 km/h fires, just below does not", () => {
    const km = haversineKm(PARIS.lat, PARIS.lon, NEW_YORK.lat, NEW_YORK.lon);
    const atSpeed = (kmh: number) => Math.round((km / kmh) * 3_600_000);
    let h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    assert.equal(h.feed(tx("a", T0 + atSpeed(899), NEW_YORK)).length, 0);
    h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    assert.equal(h.feed(tx("a", T0 + atSpeed(901), NEW_YORK)).length, 1);
  });

  it("3 distinct countries in 60 s fire, 2 do not", () => {
    const h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0, { country: "FR" }));
    assert.equal(h.feed(tx("a", T0 + 1000, { country: "DE" })).length, 0);
    assert.equal(h.feed(tx("a", T0 + 2000, { country: "DE" })).length, 0);
    const alerts = h.feed(tx("a", T0 + 3000, { country: "BE" }));
    assert.equal(alerts.length, 1);
    assert.deepEqual(alerts[0]!.figures, {
      reason: "countries",
      distinctCountries: 3,
      countries: "BE,DE,FR",
      windowMs: 60_000,
      minDistinctCountries: 3,
    });
  });

  it("null switches a check off", () => {
    let h = new Harness(one("geo_velocity", { maxSpeedKmh: null }));
    h.feed(tx("a", T0));
    assert.equal(h.feed(tx("a", T0 + 60_000, NEW_YORK)).length, 0);
    h = new Harness(one("geo_velocity", { minDistinctCountries: null }));
    assert.equal(
      h.feedAll(["FR", "DE", "BE", "NL"].map((c, i) => tx("a", T0 + i, { country: c }))).length,
      0,
    );
  });

  it("uses the previous event even after it left the window", () => {
    const h = new Harness(one("geo_velocity"));
    h.feed(tx("a", T0));
    for (let i = 1; i <= 200; i++) h.feed(tx("other", T0 + i * 1000));
    assert.equal(h.store.get("a")!.hot, false);
    assert.equal(h.feed(tx("a", T0 + 300_000, NEW_YORK)).length, 1);
  });

  it("an out-of-order event is checked against both neighbours", () => {
    const h = new Harness(one("geo_velocity", { minDistinctCountries: null }));
    h.feed(tx("a", T0));
    h.feed(tx("a", T0 + 7_200_000));
    const alerts = h.feed(tx("a", T0 + 7_195_000, NEW_YORK));
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.figures["elapsedMs"], 5000);
  });
});

describe("merchant_spread", () => {
  it("6 distinct merchants in 60 s fire, 5 do not", () => {
    const h = new Harness(one("merchant_spread"));
    const merchants = ["m1", "m2", "m3", "m1", "m4", "m5"];
    assert.equal(h.feedAll(merchants.map((m, i) => tx("a", T0 + i * 1000, { merchant_id: m }))).length, 0);
    const alerts = h.feed(tx("a", T0 + 9000, { merchant_id: "m6" }));
    assert.equal(alerts.length, 1);
    assert.deepEqual(alerts[0]!.figures, { distinctMerchants: 6, threshold: 6, count: 7, windowMs: 60_000 });
  });
});

describe("evaluation scratch", () => {
  it("belongs to each rule set: sets with different distinct-count thresholds share one window store", () => {
    // Distinct ids: cooldowns on the shared state are per rule id.
    const small = parseRules({ version: 1, rules: [{ id: "small", type: "merchant_spread", threshold: 3 }] });
    const large = parseRules({
      version: 1,
      rules: [{ id: "large", type: "merchant_spread", threshold: 40 }],
    });
    assert.notEqual(small.scratch, large.scratch);
    const store = new WindowStore();
    let fired = { small: 0, large: 0 };
    for (let i = 0; i < 40; i++) {
      const t = tx("a", T0 + i * 100, { merchant_id: `m${i}` });
      const s = store.add(t);
      // Interleaved on the same state: each set must count with its own scratch.
      fired = {
        small: fired.small + evaluate(small, s, t, NOW).length,
        large: fired.large + evaluate(large, s, t, NOW).length,
      };
    }
    assert.deepEqual(fired, { small: 1, large: 1 }, "each fires once, then its cooldown holds");
  });
});

describe("amount_spike", () => {
  const history = (n: number, amount = 5000) =>
    Array.from({ length: n }, (_, i) => tx("a", T0 + i * 1000, { amountMinor: amount }));

  it("fires at 10x the prior mean and >= 500.00 after 5 prior transactions", () => {
    const h = new Harness(one("amount_spike"));
    assert.equal(h.feedAll(history(5)).length, 0);
    const alerts = h.feed(tx("a", T0 + 10_000, { amountMinor: 50_000 }));
    assert.equal(alerts.length, 1);
    assert.deepEqual(alerts[0]!.figures, {
      amount: "500.00",
      historicalMean: "50.00",
      ratio: 10,
      multiplier: 10,
      historyCount: 5,
    });
  });

  it("does not fire with 4 prior transactions, below 10x, or below 500.00", () => {
    let h = new Harness(one("amount_spike"));
    assert.equal(h.feedAll([...history(4), tx("a", T0 + 10_000, { amountMinor: 90_000 })]).length, 0);
    h = new Harness(one("amount_spike"));
    assert.equal(h.feedAll([...history(5), tx("a", T0 + 10_000, { amountMinor: 49_999 })]).length, 0);
    h = new Harness(one("amount_spike"));
    assert.equal(h.feedAll([...history(5, 1000), tx("a", T0 + 10_000, { amountMinor: 49_999 })]).length, 0);
  });

  it("counts history older than the window", () => {
    const h = new Harness(one("amount_spike"));
    h.feedAll(history(5));
    for (let i = 1; i <= 200; i++) h.feed(tx("other", T0 + i * 1000));
    assert.equal(h.feed(tx("a", T0 + 300_000, { amountMinor: 60_000 })).length, 1);
  });
});

describe("enabled flag, late events, replays", () => {
  it("disabled rules never fire and are kept for display", () => {
    const set = one("velocity_count", { enabled: false, threshold: 1 });
    assert.equal(set.rules.length, 1);
    assert.equal(set.compiled.length, 0);
    assert.equal(new Harness(set).feed(tx("a", T0)).length, 0);
  });

  it("late events raise no alert and start no cooldown, but on-time events see them", () => {
    const h = new Harness(one("velocity_count", { threshold: 3 }));
    h.feed(tx("a", T0 + 50_000));
    h.feed(tx("clock", T0 + 100_000)); // watermark T0 + 90000
    const late1 = h.feed(tx("a", T0 + 60_000));
    const late2 = h.feed(tx("a", T0 + 61_000));
    assert.equal(h.store.get("a")!.curLate, true);
    assert.deepEqual([late1.length, late2.length], [0, 0]);
    assert.equal(h.store.get("a")!.cooldownRuleIds, null);
    const alerts = h.feed(tx("a", T0 + 95_000));
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.figures["count"], 4);
  });

  it("returns one shared empty array when nothing fires", () => {
    const h = new Harness(defaultRules());
    const a = h.feed(tx("a", T0));
    const b = h.feed(tx("b", T0));
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
  });

  it("a replay of the same events produces the same alerts with the same ids", () => {
    const rules = defaultRules();
    const events: Transaction[] = [];
    for (let i = 0; i < 40; i++) {
      events.push(
        tx(`acct-${i % 3}`, T0 + i * 500, {
          amountMinor: i % 7 === 6 ? 20_000 : 150,
          merchant_id: `m-${i % 8}`,
          ...(i % 5 === 4 ? NEW_YORK : PARIS),
        }),
      );
    }
    const first = new Harness(rules).feedAll(events);
    const second = new Harness(rules).feedAll(events);
    assert.ok(first.length >= 4, `only ${first.length} alerts`);
    assert.deepEqual(second, first);
    assert.equal(new Set(first.map((a) => a.alertId)).size, first.length);
  });
});

/**
 * No single record may change what other records detect (issue 10, item 2). One partition's
 * stream - background traffic plus one incident per shipped rule - goes through the decoder,
 * one WindowStore and evaluate() with config/rules.default.yaml, with and without a hostile
 * event_time injected on an account of its own. The alerts raised for every other record
 * must be identical.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Alert } from "../../../src/contracts/alert.ts";
import { DlqReasons } from "../../../src/contracts/dlq.ts";
import type { TransactionWireV1 } from "../../../src/contracts/transaction.ts";
import { evaluate } from "../../../src/core/rules.ts";
import { decodeOptionsFrom, decodeTransaction, luhnCheckDigit } from "../../../src/core/schema.ts";
import { WindowStore } from "../../../src/core/window.ts";
import { defaultRules } from "../../helpers/fixtures.ts";

const RULES = defaultRules();
const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
/** Processing time runs this far behind event time, as Kafka append time does behind a producer. */
const PIPELINE_DELAY_MS = 200;
const LATENESS_MS = 10_000;
const PLACES = {
  paris: { lat: 48.8566, lon: 2.3522, country: "FR", city: "Paris" },
  lyon: { lat: 45.764, lon: 4.8357, country: "FR", city: "Lyon" },
  berlin: { lat: 52.52, lon: 13.405, country: "DE", city: "Berlin" },
  newYork: { lat: 40.7128, lon: -74.006, country: "US", city: "New York" },
} as const;

/** One input record: its JSON bytes and the processing time it is decoded at. */
interface Rec {
  value: string;
  nowMs: number;
}

/** xorshift32: the stream is the same on every run. */
function rng(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function card(i: number): string {
  const partial = `411111${String(i).padStart(9, "0")}`;
  return partial + luhnCheckDigit(partial);
}

let seq = 0;
function wire(
  account: number | string,
  atMs: number,
  amount: string,
  place: keyof typeof PLACES,
  merchant = "m-1",
): TransactionWireV1 {
  const n = typeof account === "number" ? account : 90_000 + account.length;
  return {
    schema_version: 1,
    transaction_id: `tx-${++seq}`,
    account_id: typeof account === "number" ? `acct-${account}` : account,
    card_number: card(n),
    cardholder_name: "Ada Lovelace",
    email: "ada@example.com",
    ip_address: "198.51.100.4",
    device_id: `dev-${n}`,
    amount,
    currency: "EUR",
    merchant_id: merchant,
    merchant_category: "5411",
    ...PLACES[place],
    event_time: new Date(atMs).toISOString(),
  };
}

/**
 * Six minutes of one partition: ~9,000 background transactions over 1,000 accounts (a few
 * out of order, within the lateness), and from the first minute on one incident per rule.
 * Each record is processed PIPELINE_DELAY_MS after its event time.
 */
function stream(): { t: number; tx: TransactionWireV1 }[] {
  seq = 0;
  const next = rng(0x5eed);
  const out: { t: number; tx: TransactionWireV1 }[] = [];
  for (let t = T0; t < T0 + 360_000; t += 40) {
    const skew = next(50) === 0 ? -3_000 : 0;
    const amount = `${5 + next(75)}.${String(next(100)).padStart(2, "0")}`;
    out.push({ t, tx: wire(next(1_000), t + skew, amount, next(2) ? "paris" : "lyon", `m-${next(3)}`) });
  }
  const at = (base: number, k: number, gapMs: number) => T0 + base + k * gapMs + 7;
  // velocity_count: 12 transactions in 22 s.
  for (let k = 0; k < 12; k++)
    out.push({ t: at(60_000, k, 2_000), tx: wire("v-burst", at(60_000, k, 2_000), "9.99", "paris") });
  // amount_sum: 3 x 4,000.00 in 20 s.
  for (let k = 0; k < 3; k++)
    out.push({ t: at(100_000, k, 10_000), tx: wire("s-spend", at(100_000, k, 10_000), "4000.00", "paris") });
  // card_testing: 5 probes of 1.00, then 500.00.
  for (let k = 0; k < 6; k++) {
    const t = at(150_000, k, 3_000);
    out.push({ t, tx: wire("c-probe", t, k < 5 ? "1.00" : "500.00", "berlin") });
  }
  // geo_velocity: Paris, then New York 30 s later.
  out.push({ t: at(200_000, 0, 0), tx: wire("g-travel", at(200_000, 0, 0), "20.00", "paris") });
  out.push({ t: at(230_000, 0, 0), tx: wire("g-travel", at(230_000, 0, 0), "20.00", "newYork") });
  // merchant_spread: 7 merchants in 35 s.
  for (let k = 0; k < 7; k++) {
    const t = at(250_000, k, 5_000);
    out.push({ t, tx: wire("m-spread", t, "15.00", "lyon", `shop-${k}`) });
  }
  // amount_spike: 6 ordinary amounts over four minutes, then 5,000.00.
  for (let k = 0; k < 6; k++)
    out.push({ t: at(20_000, k, 40_000), tx: wire("a-spike", at(20_000, k, 40_000), "20.00", "paris") });
  out.push({ t: at(300_000, 0, 0), tx: wire("a-spike", at(300_000, 0, 0), "5000.00", "paris") });
  // Arrival order is processing order; ties keep insertion order.
  return out.sort((a, b) => a.t - b.t);
}

/** The stream as records, with `hostile` inserted (its processing time: the record before it). */
function records(hostile?: { afterMs: number; eventTime: string }): Rec[] {
  const recs: Rec[] = [];
  let injected = hostile === undefined;
  for (const { t, tx } of stream()) {
    if (!injected && t >= T0 + hostile!.afterMs) {
      injected = true;
      const evil = { ...wire("x-attacker", t, "10.00", "paris"), event_time: hostile!.eventTime };
      recs.push({ value: JSON.stringify(evil), nowMs: t + PIPELINE_DELAY_MS });
    }
    recs.push({ value: JSON.stringify(tx), nowMs: t + PIPELINE_DELAY_MS });
  }
  return recs;
}

interface RunResult {
  alerts: Alert[];
  dlq: string[];
  store: WindowStore;
  /** Highest watermark - processing time seen after any add (must stay <= -lateness when bounded). */
  maxWatermarkLead: number;
}

type Mode =
  /** The processor as wired: the decoder and the store both get the record's processing time. */
  | "bounded"
  /** A record slipped past the decoder (decoded without nowMs); the store still gets nowMs. */
  | "store-only"
  /** As store-only, the store reading processing time from its `clock` option. */
  | "store-clock"
  /** Before the fix: no processing time anywhere. */
  | "unbounded";

function run(recs: Rec[], mode: Mode): RunResult {
  const options = decodeOptionsFrom({});
  let clockNow = 0;
  const store = new WindowStore({
    allowedLatenessMs: LATENESS_MS,
    ...(mode === "store-clock" ? { clock: () => clockNow } : {}),
  });
  const alerts: Alert[] = [];
  const dlq: string[] = [];
  let maxWatermarkLead = Number.NEGATIVE_INFINITY;
  for (const r of recs) {
    clockNow = r.nowMs;
    const res = decodeTransaction(r.value, options, mode === "bounded" ? r.nowMs : undefined);
    if (!res.ok) {
      dlq.push(res.reason);
      continue;
    }
    const state =
      mode === "bounded" || mode === "store-only" ? store.add(res.tx, r.nowMs) : store.add(res.tx);
    alerts.push(...evaluate(RULES, state, res.tx, r.nowMs));
    maxWatermarkLead = Math.max(maxWatermarkLead, store.watermarkMs - r.nowMs);
  }
  return { alerts, dlq, store, maxWatermarkLead };
}

const notAttacker = (a: Alert) => a.accountId !== "x-attacker";

describe("a far-future record changes no alert", () => {
  const clean = run(records(), "bounded");

  it("the clean stream raises every shipped rule's incident", () => {
    const fired = new Set(clean.alerts.map((a) => `${a.ruleId}:${a.accountId}`));
    for (const expected of [
      "velocity_count:v-burst",
      "amount_sum:s-spend",
      "card_testing:c-probe",
      "geo_velocity:g-travel",
      "merchant_spread:m-spread",
      "amount_spike:a-spike",
    ]) {
      assert.ok(fired.has(expected), `${expected} in ${[...fired].join(", ")}`);
    }
    assert.deepEqual(clean.dlq, []);
    assert.ok(clean.maxWatermarkLead <= -LATENESS_MS);
  });

  it("without bounds, one 9999 record blinds the partition (the finding, reproduced)", () => {
    const attacked = run(records({ afterMs: 10_000, eventTime: "9999-12-31T23:59:59Z" }), "unbounded");
    assert.equal(run(records(), "unbounded").alerts.length, clean.alerts.length);
    assert.ok(attacked.alerts.length < clean.alerts.length / 2, `${attacked.alerts.length} alerts`);
    assert.ok(attacked.store.stats().lateEvents > 8_000);
  });

  it("through the decoder: the record goes to the DLQ and every alert is identical", () => {
    const attacked = run(records({ afterMs: 10_000, eventTime: "9999-12-31T23:59:59Z" }), "bounded");
    assert.deepEqual(attacked.dlq, [DlqReasons.eventTimeInFuture]);
    assert.deepEqual(attacked.alerts, clean.alerts);
    assert.deepEqual(attacked.store.stats(), clean.store.stats());
  });

  for (const mode of ["store-only", "store-clock"] as const) {
    it(`slipped past the decoder (${mode}): the store refuses it and the watermark does not jump`, () => {
      const attacked = run(records({ afterMs: 10_000, eventTime: "9999-12-31T23:59:59Z" }), mode);
      assert.deepEqual(attacked.dlq, []);
      assert.deepEqual(attacked.alerts, clean.alerts);
      const stats = attacked.store.stats();
      assert.equal(stats.futureEvents, 1);
      assert.equal(stats.lateEvents, clean.store.stats().lateEvents);
      assert.ok(stats.maxEventTimeMs < T0 + 3_600_000, "the far-future time never became the maximum");
      assert.ok(attacked.maxWatermarkLead <= -LATENESS_MS);
      assert.equal(attacked.store.get("x-attacker"), undefined, "nothing of it is kept");
    });
  }

  it("within the skew (4 min ahead): accepted, yet the watermark stays behind processing time", () => {
    // The decoder lets producer clocks run a few minutes fast. Under the old rule such an
    // event would have made the next four minutes of the partition late; now it is held to
    // processing time, so honest records keep their alerts and their on-time status.
    let recs = records();
    const at = recs.findIndex((r) => r.nowMs >= T0 + 10_000);
    const ahead = new Date(recs[at]!.nowMs + 240_000).toISOString();
    recs = records({ afterMs: 10_000, eventTime: ahead });
    const attacked = run(recs, "bounded");
    assert.deepEqual(attacked.dlq, []);
    assert.deepEqual(attacked.alerts.filter(notAttacker), clean.alerts);
    assert.ok(attacked.maxWatermarkLead <= -LATENESS_MS);
    assert.equal(attacked.store.stats().lateEvents, clean.store.stats().lateEvents);
    const before = run(recs, "unbounded");
    assert.ok(before.alerts.length < clean.alerts.length, "the old watermark rule lost alerts to it");
  });

  it("a replay with an old clock does not let the watermark pass that clock", () => {
    const store = new WindowStore({ allowedLatenessMs: LATENESS_MS, maxFutureSkewMs: 30_000 });
    const options = decodeOptionsFrom({});
    const recs = records().slice(0, 4_000);
    const oldNow = recs[100]!.nowMs;
    for (const r of recs) {
      const res = decodeTransaction(r.value, options);
      assert.ok(res.ok);
      store.add(res.tx, oldNow);
      assert.ok(store.watermarkMs <= oldNow - LATENESS_MS);
    }
    // Records beyond the old clock + skew were refused; the clock moving on lifts the cap.
    const stats = store.stats();
    assert.ok(stats.futureEvents > 2_000, `${stats.futureEvents} refused`);
    assert.ok(stats.maxEventTimeMs <= oldNow + 30_000);
    const last = recs.at(-1)!;
    const res = decodeTransaction(last.value, options);
    assert.ok(res.ok);
    store.add({ ...res.tx, transaction_id: "again" }, last.nowMs);
    assert.equal(store.maxEventTimeMs, res.tx.eventTimeMs);
    assert.equal(store.watermarkMs, res.tx.eventTimeMs - LATENESS_MS);
  });
});

describe("WindowStore: the watermark is bounded by processing time", () => {
  const base = { ...wire("acct-1", T0, "10.00", "paris"), amountMinor: 1_000 };
  const at = (account: string, eventTimeMs: number) => ({ ...base, account_id: account, eventTimeMs });

  it("a capped watermark follows the clock, with no newer event, and never moves back", () => {
    const store = new WindowStore({ allowedLatenessMs: LATENESS_MS });
    store.add(at("a", T0 + 120_000), T0);
    assert.equal(store.maxEventTimeMs, T0 + 120_000);
    assert.equal(store.watermarkMs, T0 - LATENESS_MS);
    store.add(at("b", T0 + 1_000), T0 + 30_000);
    assert.equal(store.watermarkMs, T0 + 30_000 - LATENESS_MS, "the clock moved it");
    store.add(at("c", T0 + 2_000), T0 + 5_000);
    assert.equal(store.watermarkMs, T0 + 30_000 - LATENESS_MS, "an older clock does not move it back");
    store.add(at("d", T0 + 3_000), T0 + 600_000);
    assert.equal(store.watermarkMs, T0 + 120_000 - LATENESS_MS, "once the clock passes it, event time rules");
  });

  it("a refused event leaves its account exactly as it was", () => {
    const store = new WindowStore({ allowedLatenessMs: LATENESS_MS, maxFutureSkewMs: 60_000 });
    store.add(at("a", T0), T0);
    const before = store.get("a")!;
    const snapshot = { ...before, events: before.events() };
    const s = store.add(at("a", T0 + 60_001), T0);
    assert.equal(s, before);
    assert.equal(s.curIndex, -1);
    assert.equal(s.curLate, false);
    assert.deepEqual(
      { historyCount: s.historyCount, lastTimeMs: s.lastTimeMs, events: s.events() },
      { historyCount: snapshot.historyCount, lastTimeMs: snapshot.lastTimeMs, events: snapshot.events },
    );
    assert.deepEqual(evaluate(RULES, s, at("a", T0 + 60_001), T0), []);
    assert.equal(store.stats().futureEvents, 1);
    assert.ok(store.add(at("a", T0 + 60_000), T0).curIndex >= 0, "exactly at the skew is applied");
  });

  it("without nowMs or a clock the watermark follows event time alone, as before", () => {
    const store = new WindowStore({ allowedLatenessMs: LATENESS_MS });
    store.add(at("a", T0 + 3_600_000));
    assert.equal(store.watermarkMs, T0 + 3_600_000 - LATENESS_MS);
    assert.throws(() => new WindowStore({ maxFutureSkewMs: -1 }), /maxFutureSkewMs/);
  });
});

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { DEFAULT_FAULT_RATES, MALFORMED_AGE_MS, MALFORMED_FUTURE_MS } from "../../../src/collector/faults.ts";
import {
  DEFAULT_RULE_COOLDOWN_MS,
  type GeneratedRecord,
  type GeneratorOptions,
  SCENARIO_QUIET_MS,
  TrafficGenerator,
} from "../../../src/collector/generator.ts";
import { Population } from "../../../src/collector/population.ts";
import { DlqReasons } from "../../../src/contracts/dlq.ts";
import {
  EXPECTED_RULE,
  type Label,
  RECORD_KINDS,
  type RuleId,
  SCENARIO_TYPES,
  type ScenarioLabel,
  type ScenarioType,
} from "../../../src/contracts/labels.ts";
import type { Transaction } from "../../../src/contracts/transaction.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { haversineKm } from "../../../src/core/rules.ts";
import { decodeTransaction } from "../../../src/core/schema.ts";

const T0 = Date.UTC(2025, 10, 28, 12, 0, 0); // Black Friday, noon UTC
const WINDOW_MS = 60_000;
const LATENESS_MS = 10_000;

interface Emitted {
  rec: GeneratedRecord;
  /** nowMs of the fill() call that produced it. */
  now: number;
  /** Decoded transaction, for every record that is not malformed. */
  tx: Transaction | null;
}

/**
 * Runs a generator at `rate` records/s in batches of `rate / 10` (a fill every 100 ms).
 * Records are decoded as the processor does, with the emission time as processing time.
 */
function run(gen: TrafficGenerator, seconds: number, rate: number, start = T0): Emitted[] {
  const out: GeneratedRecord[] = [];
  const emitted: Emitted[] = [];
  const batch = Math.max(1, Math.round(rate / 10));
  for (let now = start; now < start + seconds * 1000; now += 100) {
    gen.fill(out, batch, now);
    for (const rec of out) {
      let tx: Transaction | null = null;
      if (rec.kind !== "malformed") {
        const d = decodeTransaction(rec.value, {}, now);
        assert.ok(d.ok, `${rec.kind} record failed validation: ${d.ok ? "" : d.detail}\n${rec.value}`);
        tx = d.tx;
      }
      emitted.push({ rec, now, tx });
    }
  }
  return emitted;
}

// ---- a reference implementation of the agreed default rules --------------------------------

interface Seen {
  t: number;
  amount: number;
  merchant: string;
  country: string;
  lat: number;
  lon: number;
}

type AnyRule = RuleId | "amount_sum";

/**
 * The default rules (docs/rules.md) with their agreed thresholds, evaluated per event on
 * arrival over (t - 60 s, t]. Late events (behind max event time - 10 s) update state but
 * never alert, as in the processor. amount_sum is a default rule no scenario targets: it is
 * here to prove that none trips it by accident.
 */
class ReferenceRules {
  private readonly history = new Map<string, Seen[]>();
  private maxEventMs = Number.NEGATIVE_INFINITY;

  evaluate(tx: Transaction): AnyRule[] {
    const list = this.history.get(tx.account_id) ?? [];
    const t = tx.eventTimeMs;
    const late = t < this.maxEventMs - LATENESS_MS;
    this.maxEventMs = Math.max(this.maxEventMs, t);
    const inWindow = list.filter((e) => e.t > t - WINDOW_MS && e.t <= t);
    const fired: AnyRule[] = [];
    if (!late) {
      if (inWindow.length + 1 >= 10) fired.push("velocity_count");
      if (inWindow.reduce((s, e) => s + e.amount, tx.amountMinor) >= 1_000_000) fired.push("amount_sum");
      if (tx.amountMinor >= 10_000 && inWindow.filter((e) => e.amount <= 200).length >= 5)
        fired.push("card_testing");
      const newest = list.reduce<Seen | null>((m, e) => (m === null || e.t > m.t ? e : m), null);
      if (newest !== null && t > newest.t) {
        const km = haversineKm(newest.lat, newest.lon, tx.lat, tx.lon);
        if (km > 500 && km / ((t - newest.t) / 3_600_000) > 900) fired.push("geo_velocity");
      }
      if (new Set([...inWindow.map((e) => e.country), tx.country]).size >= 3) fired.push("geo_velocity");
      if (new Set([...inWindow.map((e) => e.merchant), tx.merchant_id]).size >= 6)
        fired.push("merchant_spread");
      if (list.length >= 5 && tx.amountMinor >= 50_000) {
        const mean = list.reduce((s, e) => s + e.amount, 0) / list.length;
        if (tx.amountMinor >= 10 * mean) fired.push("amount_spike");
      }
    }
    list.push({
      t,
      amount: tx.amountMinor,
      merchant: tx.merchant_id,
      country: tx.country,
      lat: tx.lat,
      lon: tx.lon,
    });
    this.history.set(tx.account_id, list);
    return fired;
  }
}

interface RuleOutcome {
  /** Rules fired per transaction id (deduplicated stream). */
  fired: Map<string, AnyRule[]>;
}

function applyRules(stream: Emitted[]): RuleOutcome {
  const rules = new ReferenceRules();
  const seenIds = new Set<string>();
  const fired = new Map<string, AnyRule[]>();
  for (const { tx } of stream) {
    if (tx === null || seenIds.has(tx.transaction_id)) continue;
    seenIds.add(tx.transaction_id);
    fired.set(tx.transaction_id, rules.evaluate(tx));
  }
  return { fired };
}

function scenarioLabels(stream: Emitted[]): ScenarioLabel[] {
  return stream.flatMap(({ rec }) => (rec.label?.type === "scenario" ? [rec.label] : []));
}

/**
 * Asserts that each incident trips exactly its rule, first at its trigger, and that no
 * normal traffic trips any rule. Accounts are excluded from the false-positive check from
 * their first incident on: the incident's transactions stay in the account's history (see
 * docs/collector.md).
 */
function checkRules(stream: Emitted[]): void {
  const { fired } = applyRules(stream);
  const byId = new Map(stream.filter((e) => e.tx !== null).map((e) => [e.tx!.transaction_id, e]));
  for (const label of scenarioLabels(stream)) {
    const hits = label.transaction_ids.map((id) => fired.get(id) ?? []);
    const first = hits.findIndex((r) => r.includes(label.expected_rule));
    assert.equal(
      label.transaction_ids[first],
      label.trigger_transaction_id,
      `${label.scenario} ${label.scenario_id}: ${label.expected_rule} first fired at #${first}`,
    );
    for (const r of hits.flat()) {
      assert.equal(r, label.expected_rule, `${label.scenario} ${label.scenario_id} also tripped ${r}`);
    }
  }
  const tainted = new Map<string, number>(); // account -> emission index of its first incident record
  stream.forEach((e, i) => {
    if (e.rec.kind === "scenario" && !tainted.has(e.rec.key)) tainted.set(e.rec.key, i);
  });
  let checked = 0;
  stream.forEach((e, i) => {
    if (e.tx === null || e.rec.kind === "scenario" || e.rec.kind === "duplicate") return;
    if ((tainted.get(e.rec.key) ?? Number.POSITIVE_INFINITY) < i) return;
    checked++;
    assert.deepEqual(
      fired.get(e.tx.transaction_id),
      [],
      `${e.rec.kind} record tripped a rule: ${e.rec.value}`,
    );
  });
  assert.ok(checked > stream.length / 2);
  assert.ok(byId.size > 0);
}

// ---- the shared 200K sample ------------------------------------------------------------------

let sample: Emitted[] = [];
let sampleGen: TrafficGenerator;
/** Index of the first record generated after scenario starts were switched off. */
let drainFrom = 0;

before(() => {
  sampleGen = new TrafficGenerator({ seed: 2025 });
  sample = run(sampleGen, 200, 1_000);
  drainFrom = sample.length;
  // Let running incidents finish so every scenario record is covered by a label.
  sampleGen.setScenarioRates({
    velocity_burst: 0,
    card_testing: 0,
    geo_velocity: 0,
    merchant_spread: 0,
    amount_spike: 0,
  });
  sample.push(...run(sampleGen, 70, 1_000, T0 + 200_000));
});

describe("TrafficGenerator: determinism", () => {
  it("gives byte-identical output for the same seed and calls, and different output otherwise", () => {
    const same = run(new TrafficGenerator({ seed: 2025 }), 30, 1_000);
    assert.equal(same.length, 30_000);
    same.forEach((e, i) => {
      const s = sample[i]!.rec;
      assert.equal(e.rec.value, s.value, `record ${i}`);
      assert.equal(e.rec.key, s.key);
      assert.equal(e.rec.kind, s.kind);
      assert.equal(e.rec.transactionId, s.transactionId);
      assert.equal(JSON.stringify(e.rec.label), JSON.stringify(s.label));
    });
    const other = run(new TrafficGenerator({ seed: 2026 }), 1, 1_000);
    const differing = other.filter((e, i) => e.rec.value !== sample[i]!.rec.value).length;
    assert.equal(differing, other.length);
  });

  it("never uses Math.random or crypto.randomUUID", () => {
    const random = Math.random;
    const randomUUID = crypto.randomUUID;
    Math.random = () => assert.fail("Math.random used");
    crypto.randomUUID = () => assert.fail("crypto.randomUUID used");
    try {
      const gen = new TrafficGenerator({
        seed: 1,
        accounts: 5_000,
        faultRates: { malformed: 0.2, duplicate: 0.2 },
      });
      run(gen, 20, 1_000);
      gen.injectScenario("amount_spike", T0 + 30_000);
    } finally {
      Math.random = random;
      crypto.randomUUID = randomUUID;
    }
  });
});

describe("TrafficGenerator: records", () => {
  it("emits valid transactions keyed by account for every kind but malformed", () => {
    for (const { rec, tx, now } of sample) {
      if (tx === null) continue;
      assert.equal(rec.key, tx.account_id);
      assert.equal(rec.transactionId, tx.transaction_id);
      assert.ok(tx.eventTimeMs <= now, "event time is never in the future");
      if (rec.kind === "normal") {
        assert.equal(rec.label, null);
        assert.ok(tx.eventTimeMs >= now - 250);
      }
    }
    assert.ok(sample.length >= 270_000);
  });

  it("makes malformed records fail decoding with exactly the labelled reason", () => {
    const reasons = new Set<string>();
    for (const { rec, now } of sample) {
      if (rec.kind !== "malformed") continue;
      const label = rec.label;
      assert.ok(label?.type === "malformed");
      assert.equal(rec.transactionId, null);
      assert.equal(label.key, rec.key);
      // As the processor decodes: default limits, processing time = when it was sent.
      const d = decodeTransaction(rec.value, {}, now);
      assert.ok(!d.ok, `malformed record decoded: ${rec.value}`);
      assert.equal(d.reason, label.reason, `${label.detail}: got ${d.reason} (${d.detail})`);
      reasons.add(label.reason);
    }
    assert.deepEqual([...reasons].sort(), Object.values(DlqReasons).sort(), "every DLQ reason is exercised");
  });

  it("dates the future and too-old malformations 1 h ahead of and 8 days behind the time they are sent", () => {
    const gen = new TrafficGenerator({
      seed: 6,
      accounts: 1_000,
      faultRates: { duplicate: 0, late: 0, outOfOrder: 0, malformed: 1 },
    });
    const seen = new Map<string, number>();
    for (let now = T0; now < T0 + 2_000; now += 7) {
      for (const rec of gen.fill([], 10, now)) {
        const label = rec.label as Extract<Label, { type: "malformed" }>;
        const expected =
          label.reason === DlqReasons.eventTimeInFuture
            ? now + MALFORMED_FUTURE_MS
            : label.reason === DlqReasons.eventTimeTooOld
              ? now - MALFORMED_AGE_MS
              : undefined;
        if (expected === undefined) continue;
        const tx = JSON.parse(rec.value) as { event_time: string };
        assert.equal(tx.event_time, new Date(expected).toISOString(), label.detail);
        // Only processing time makes them invalid: the rest of the record is a valid transaction.
        assert.ok(decodeTransaction(rec.value).ok, rec.value);
        seen.set(label.reason, (seen.get(label.reason) ?? 0) + 1);
      }
    }
    assert.ok((seen.get(DlqReasons.eventTimeInFuture) ?? 0) > 100, JSON.stringify([...seen]));
    assert.ok((seen.get(DlqReasons.eventTimeTooOld) ?? 0) > 100, JSON.stringify([...seen]));
  });

  it("covers every DLQ reason, oversized included, under a custom size limit", () => {
    const gen = new TrafficGenerator({
      seed: 3,
      accounts: 1_000,
      maxMessageBytes: 2_048,
      faultRates: { duplicate: 0, late: 0, outOfOrder: 0, malformed: 1 },
    });
    const out = gen.fill([], 3_000, T0);
    const counts = new Map<string, number>();
    for (const rec of out) {
      assert.equal(rec.kind, "malformed");
      const label = rec.label as Extract<Label, { type: "malformed" }>;
      const d = decodeTransaction(rec.value, { maxMessageBytes: 2_048 }, T0);
      assert.ok(!d.ok);
      assert.equal(d.reason, label.reason, label.detail);
      if (label.reason === DlqReasons.oversized) assert.ok(Buffer.byteLength(rec.value) > 2_048);
      else assert.ok(Buffer.byteLength(rec.value) < 2_048);
      counts.set(label.reason, (counts.get(label.reason) ?? 0) + 1);
    }
    assert.equal(counts.size, Object.values(DlqReasons).length);
  });

  it("resends duplicates byte for byte, right away or seconds later", () => {
    const firstSeen = new Map<string, Emitted>();
    let immediate = 0;
    let delayed = 0;
    let lastValid: Emitted | null = null;
    for (const e of sample) {
      const { rec } = e;
      if (rec.kind === "duplicate") {
        const label = rec.label;
        assert.ok(label?.type === "duplicate");
        assert.equal(label.transaction_id, rec.transactionId);
        const original = firstSeen.get(rec.transactionId!);
        assert.ok(original, "a duplicate repeats an earlier record");
        assert.equal(rec.value, original.rec.value);
        assert.equal(rec.key, original.rec.key);
        assert.equal(label.original_sent_at, original.now);
        if (original === lastValid) immediate++;
        else if (e.now - original.now >= 1_000) delayed++;
      } else if (rec.kind !== "malformed") {
        assert.ok(!firstSeen.has(rec.transactionId!), "transaction ids are unique");
        firstSeen.set(rec.transactionId!, e);
        lastValid = e;
      }
    }
    assert.ok(immediate > 200 && delayed > 200, `immediate ${immediate}, delayed ${delayed}`);
  });

  it("dates late events 1 s to lateMaxMs back, some within the allowed lateness and some beyond", () => {
    let within = 0;
    let beyond = 0;
    for (const { rec, tx, now } of sample) {
      if (rec.kind !== "late") continue;
      const label = rec.label;
      assert.ok(label?.type === "late");
      assert.equal(label.transaction_id, rec.transactionId);
      assert.equal(label.lateness_ms, now - tx!.eventTimeMs);
      assert.ok(label.lateness_ms >= 1_000 && label.lateness_ms <= 30_000);
      if (label.lateness_ms > LATENESS_MS) beyond++;
      else within++;
    }
    assert.ok(within > 50 && beyond > 100, `within ${within}, beyond ${beyond}`);
  });

  it("dates out-of-order events before the account's previous event but ahead of the watermark", () => {
    const previous = new Map<string, number>();
    let maxEventMs = Number.NEGATIVE_INFINITY;
    let count = 0;
    for (const { rec, tx } of sample) {
      if (tx === null || rec.kind === "duplicate") continue;
      if (rec.kind === "out_of_order") {
        count++;
        assert.deepEqual(rec.label, { type: "out_of_order", transaction_id: rec.transactionId });
        assert.ok(tx.eventTimeMs < previous.get(rec.key)!, "before the account's previous event");
        assert.ok(tx.eventTimeMs >= maxEventMs - LATENESS_MS + 2_000, "not late");
      }
      previous.set(rec.key, tx.eventTimeMs);
      maxEventMs = Math.max(maxEventMs, tx.eventTimeMs);
    }
    assert.ok(count > 500);
  });

  it("hits the configured fault rates", () => {
    const base = sample.slice(0, drainFrom).filter((e) => e.rec.kind !== "scenario");
    const share = (kind: string) => base.filter((e) => e.rec.kind === kind).length / base.length;
    const near = (actual: number, expected: number, tolerance: number) =>
      assert.ok(Math.abs(actual / expected - 1) < tolerance, `${actual} vs ${expected}`);
    near(share("duplicate"), DEFAULT_FAULT_RATES.duplicate, 0.15);
    near(share("late"), DEFAULT_FAULT_RATES.late, 0.2);
    near(share("out_of_order"), DEFAULT_FAULT_RATES.outOfOrder, 0.15);
    near(share("malformed"), DEFAULT_FAULT_RATES.malformed, 0.3);

    const custom = run(
      new TrafficGenerator({
        seed: 4,
        accounts: 50_000,
        faultRates: { duplicate: 0.05, late: 0.03, outOfOrder: 0.02, malformed: 0.01 },
      }),
      50,
      1_000,
    ).filter((e) => e.rec.kind !== "scenario");
    const customShare = (kind: string) => custom.filter((e) => e.rec.kind === kind).length / custom.length;
    near(customShare("duplicate"), 0.05, 0.1);
    near(customShare("late"), 0.03, 0.1);
    near(customShare("out_of_order"), 0.02, 0.15);
    near(customShare("malformed"), 0.01, 0.2);
  });

  it("counts what it generates", () => {
    const c = sampleGen.counters();
    for (const kind of ["normal", "scenario", "duplicate", "late", "out_of_order", "malformed"] as const) {
      assert.equal(c.generated[kind], sample.filter((e) => e.rec.kind === kind).length, kind);
    }
    const labels = scenarioLabels(sample);
    for (const t of SCENARIO_TYPES) {
      assert.equal(c.scenariosCompleted[t], labels.filter((l) => l.scenario === t).length);
      assert.equal(c.scenariosStarted[t], c.scenariosCompleted[t], "all incidents finished during the drain");
      assert.equal(c.scenariosSkipped[t], 0);
    }
    assert.equal(c.cooldownOverrides, 0, "1 000 tx/s never saturates 100 000 accounts");
  });
});

describe("TrafficGenerator: labels", () => {
  it("covers every non-normal record with exactly one label", () => {
    const labels = scenarioLabels(sample);
    const owner = new Map<string, string>();
    for (const l of labels) {
      for (const id of l.transaction_ids) {
        assert.ok(!owner.has(id), `${id} in two scenario labels`);
        owner.set(id, l.scenario_id);
      }
    }
    const scenarioIds = new Set<string>();
    for (const { rec } of sample) {
      switch (rec.kind) {
        case "normal":
          assert.equal(rec.label, null);
          assert.ok(!owner.has(rec.transactionId!));
          break;
        case "scenario":
          assert.ok(owner.has(rec.transactionId!), "scenario record without a label");
          scenarioIds.add(rec.transactionId!);
          if (rec.label !== null) {
            assert.equal(rec.label.type, "scenario");
            const l = rec.label as ScenarioLabel;
            assert.equal(rec.transactionId, l.transaction_ids.at(-1), "the label rides on the last record");
          }
          break;
        default:
          assert.equal(rec.label?.type, rec.kind === "out_of_order" ? "out_of_order" : rec.kind);
      }
    }
    assert.equal(scenarioIds.size, owner.size, "labels list exactly the transactions emitted for them");
  });

  it("describes each incident: account, trigger, times", () => {
    const byId = new Map(sample.filter((e) => e.tx !== null).map((e) => [e.rec.transactionId!, e.tx!]));
    for (const l of scenarioLabels(sample)) {
      assert.equal(l.expected_rule, EXPECTED_RULE[l.scenario]);
      assert.ok(l.transaction_ids.includes(l.trigger_transaction_id));
      const txs = l.transaction_ids.map((id) => byId.get(id)!);
      for (const tx of txs) assert.equal(tx.account_id, l.account_id);
      assert.equal(l.started_at, txs[0]!.eventTimeMs);
      assert.equal(l.completed_at, txs.at(-1)!.eventTimeMs);
      for (let i = 1; i < txs.length; i++) assert.ok(txs[i]!.eventTimeMs >= txs[i - 1]!.eventTimeMs);
    }
  });
});

describe("TrafficGenerator: scenarios", () => {
  const ofType = (t: ScenarioType) => {
    const byId = new Map(sample.filter((e) => e.tx !== null).map((e) => [e.rec.transactionId!, e.tx!]));
    const labels = scenarioLabels(sample).filter((l) => l.scenario === t);
    assert.ok(labels.length >= 15, `${labels.length} ${t}`);
    return labels.map((l) => ({ l, txs: l.transaction_ids.map((id) => byId.get(id)!) }));
  };
  const span = (txs: Transaction[]) => txs.at(-1)!.eventTimeMs - txs[0]!.eventTimeMs;
  const trigger = (l: ScenarioLabel) => l.transaction_ids.indexOf(l.trigger_transaction_id);

  it("velocity_burst: >= 15 transactions in < 40 s at few merchants", () => {
    for (const { l, txs } of ofType("velocity_burst")) {
      assert.ok(txs.length >= 15 && span(txs) < 40_000);
      assert.ok(new Set(txs.map((t) => t.merchant_id)).size <= 3);
      assert.equal(trigger(l), 9, "the 10th transaction reaches >= 10 in 60 s");
    }
  });

  it("card_testing: 6-8 tiny amounts within ~30 s, then one >= 150.00 on the same card", () => {
    for (const { l, txs } of ofType("card_testing")) {
      const probes = txs.slice(0, -1);
      const cashOut = txs.at(-1)!;
      assert.ok(probes.length >= 6 && probes.length <= 8);
      for (const p of probes) assert.ok(p.amountMinor >= 50 && p.amountMinor <= 199);
      assert.ok(span(probes) <= 30_000);
      assert.ok(cashOut.amountMinor >= 15_000 && cashOut.amountMinor < 50_000);
      assert.equal(new Set(txs.map((t) => t.card_number)).size, 1);
      assert.equal(trigger(l), txs.length - 1);
    }
  });

  it("geo_velocity: two cities >= 2 000 km apart within minutes", () => {
    for (const { l, txs } of ofType("geo_velocity")) {
      assert.equal(txs.length, 2);
      const [a, b] = txs as [Transaction, Transaction];
      const km = haversineKm(a.lat, a.lon, b.lat, b.lon);
      const hours = (b.eventTimeMs - a.eventTimeMs) / 3_600_000;
      assert.ok(km >= 2_000, `${km} km`);
      assert.ok(hours > 0 && hours < 5 / 60);
      assert.ok(km / hours > 900);
      assert.notEqual(a.city, b.city);
      assert.equal(trigger(l), 1);
    }
  });

  it("merchant_spread: >= 8 distinct merchants in < 50 s, under the velocity threshold", () => {
    for (const { l, txs } of ofType("merchant_spread")) {
      assert.ok(new Set(txs.map((t) => t.merchant_id)).size >= 8);
      assert.ok(txs.length <= 9 && span(txs) < 50_000);
      assert.equal(trigger(l), 5, "the 6th distinct merchant");
    }
  });

  it("amount_spike: >= 8 ordinary purchases, then >= 20x their mean and >= 1 000.00", () => {
    for (const { l, txs } of ofType("amount_spike")) {
      const priors = txs.slice(0, -1);
      const spike = txs.at(-1)!;
      const mean = priors.reduce((s, t) => s + t.amountMinor, 0) / priors.length;
      assert.ok(priors.length >= 8);
      assert.ok(
        spike.amountMinor >= 20 * mean && spike.amountMinor >= 100_000,
        `${spike.amount} vs mean ${mean}`,
      );
      assert.ok(txs.length <= 9 && span(txs) < 60_000);
      assert.equal(trigger(l), txs.length - 1);
    }
  });

  it("trips exactly the expected rule at the trigger; normal traffic trips none", () => {
    checkRules(sample);
  });

  it("keeps normal traffic clean against long per-account histories", () => {
    // 2 000 accounts at 20 tx/s for 100 minutes: ~60 transactions per account, so the
    // amount-spike rule has real histories to compare against.
    const dense = run(new TrafficGenerator({ seed: 77, accounts: 2_000 }), 6_000, 20);
    assert.ok(scenarioLabels(dense).length >= 30);
    checkRules(dense);
  });

  it("shows every scenario type within the first minute at 1 000 tx/s", () => {
    const done = scenarioLabels(sample).filter((l) => l.completed_at <= T0 + 60_000);
    for (const t of SCENARIO_TYPES)
      assert.ok(
        done.some((l) => l.scenario === t),
        t,
      );
  });

  it("starts incidents at rate x accounts per hour", () => {
    // 0.5%/h of 100 000 accounts over 200 s: 27.8 per type expected.
    const started = sampleGen.counters().scenariosStarted;
    for (const t of SCENARIO_TYPES) assert.ok(started[t] >= 12 && started[t] <= 45, `${t}: ${started[t]}`);
  });

  it("injects an incident on demand and refuses when no quiet account is left", () => {
    const gen = new TrafficGenerator({ seed: 9, accounts: 1, scenarioRates: { velocity_burst: 0 } });
    gen.setScenarioRates({ card_testing: 0, geo_velocity: 0, merchant_spread: 0, amount_spike: 0 });
    const id = gen.injectScenario("velocity_burst", T0);
    assert.ok(id !== null);
    assert.equal(gen.injectScenario("card_testing", T0), null, "the only account is busy");
    const labels = scenarioLabels(run(gen, 40, 100));
    assert.equal(labels.length, 1);
    assert.equal(labels[0]!.scenario_id, id);
    assert.equal(gen.counters().scenariosSkipped.card_testing, 1);
    assert.throws(() => gen.injectScenario("nope" as ScenarioType, T0), ConfigError);
  });

  it("gives an account no incident of a rule within that rule's cooldown + SCENARIO_QUIET_MS of its last one", () => {
    // 300 accounts, two types at 1 incident per account-hour each, for 40 min: ~200 incidents
    // per type, so accounts are taken again and again, and without the guard some inside the
    // 300 s cooldown. One normal record per second keeps accounts quiet enough to be taken;
    // next() is called until it returns a normal record, so due incident records never wait.
    const incidentsOf = (ruleCooldownMs?: number) => {
      const gen = new TrafficGenerator({
        seed: 12,
        accounts: 300,
        scenarioRates: {
          velocity_burst: 1,
          card_testing: 1,
          geo_velocity: 0,
          merchant_spread: 0,
          amount_spike: 0,
        },
        faultRates: { duplicate: 0, late: 0, outOfOrder: 0, malformed: 0 },
        ...(ruleCooldownMs === undefined ? {} : { ruleCooldownMs }),
      });
      const labels: ScenarioLabel[] = [];
      for (let now = T0; now < T0 + 2_400_000; now += 1_000) {
        for (let rec = gen.next(now); ; rec = gen.next(now)) {
          if (rec.label?.type === "scenario") labels.push(rec.label);
          if (rec.kind !== "scenario") break;
        }
      }
      assert.deepEqual(
        Object.values(gen.counters().scenariosSkipped),
        [0, 0, 0, 0, 0],
        "no incident skipped",
      );
      return labels;
    };
    /** End-to-start gaps between an account's consecutive incidents: of one rule, and of two different rules. */
    const gaps = (labels: ScenarioLabel[]) => {
      const sameRule: number[] = [];
      const otherRule: number[] = [];
      const lastOfRule = new Map<string, ScenarioLabel>();
      const last = new Map<string, ScenarioLabel>();
      for (const l of [...labels].sort((a, b) => a.started_at - b.started_at)) {
        const prevSame = lastOfRule.get(`${l.account_id} ${l.expected_rule}`);
        if (prevSame !== undefined) sameRule.push(l.started_at - prevSame.completed_at);
        const prev = last.get(l.account_id);
        if (prev !== undefined && prev.expected_rule !== l.expected_rule)
          otherRule.push(l.started_at - prev.completed_at);
        lastOfRule.set(`${l.account_id} ${l.expected_rule}`, l);
        last.set(l.account_id, l);
      }
      return { sameRule, otherRule };
    };

    const guarded = gaps(incidentsOf());
    assert.ok(guarded.sameRule.length >= 30, `${guarded.sameRule.length} accounts took the same rule again`);
    const least = Math.min(...guarded.sameRule);
    assert.ok(
      least >= DEFAULT_RULE_COOLDOWN_MS + SCENARIO_QUIET_MS,
      `same rule again ${least} ms after the last`,
    );
    // Per rule, not per account: another rule's incident may come sooner.
    assert.ok(
      Math.min(...guarded.otherRule) < DEFAULT_RULE_COOLDOWN_MS,
      "another rule's incident within 300 s",
    );

    // With the guard off the same population reuses accounts inside the cooldown: the check above can fail.
    const unguarded = gaps(incidentsOf(0)).sameRule;
    assert.ok(
      unguarded.filter((g) => g < DEFAULT_RULE_COOLDOWN_MS).length >= 5,
      "reuse within 300 s unguarded",
    );
    // A longer cooldown (a rules file that sets one) is honoured too.
    const longer = gaps(incidentsOf(600_000)).sameRule;
    assert.ok(longer.length >= 30, `${longer.length} accounts took the same rule again`);
    assert.ok(Math.min(...longer) >= 600_000 + SCENARIO_QUIET_MS);
  });
});

describe("TrafficGenerator: API", () => {
  const population = new Population({ seed: 1, accounts: 1_000 });

  it("fill writes exactly n fresh records; next returns one", () => {
    const gen = new TrafficGenerator({ seed: 1, population });
    const out = gen.fill([], 50, T0);
    assert.equal(out.length, 50);
    const first = out[0];
    gen.fill(out, 10, T0 + 100);
    assert.equal(out.length, 10);
    assert.notEqual(out[0], first, "records are never reused");
    const one = gen.next(T0 + 200);
    assert.ok(RECORD_KINDS.includes(one.kind) && one.key.startsWith("acc_"));
    assert.throws(() => gen.next(Number.NaN), RangeError);
  });

  it("changes fault and scenario rates at run time", () => {
    const gen = new TrafficGenerator({ seed: 2, population });
    gen.setFaultRates({ duplicate: 0, late: 0, outOfOrder: 0, malformed: 0 });
    gen.setScenarioRates({
      velocity_burst: 0,
      card_testing: 0,
      geo_velocity: 0,
      merchant_spread: 0,
      amount_spike: 0,
    });
    const out = gen.fill([], 2_000, T0);
    assert.ok(out.every((r) => r.kind === "normal"));
    gen.setFaultRates({ malformed: 1 });
    assert.ok(gen.fill([], 100, T0 + 1).every((r) => r.kind === "malformed"));
    assert.deepEqual(gen.settings().faultRates, { duplicate: 0, late: 0, outOfOrder: 0, malformed: 1 });
    assert.equal(gen.settings().scenarioRates.velocity_burst, 0);
  });

  it("rejects bad options with a ConfigError naming the field", () => {
    const field = (options: GeneratorOptions, name: string) =>
      assert.throws(
        () => new TrafficGenerator({ population, ...options }),
        (e: unknown) => e instanceof ConfigError && e.field === name,
      );
    field({ faultRates: { duplicate: 0.6, malformed: 0.6 } }, "faultRates");
    field({ faultRates: { late: -0.1 } }, "faultRates.late");
    field({ scenarioRates: { geo_velocity: Number.NaN } }, "scenarioRates.geo_velocity");
    field({ lateMaxMs: 500 }, "lateMaxMs");
    field({ maxMessageBytes: 100 }, "maxMessageBytes");
    field({ ruleCooldownMs: -1 }, "ruleCooldownMs");
    const gen = new TrafficGenerator({ population });
    assert.throws(() => gen.setFaultRates({ outOfOrder: 2 }), ConfigError);
  });

  it("lets the rest gap give way, and counts it, when the rate is too high for the population", () => {
    const gen = new TrafficGenerator({ seed: 5, population });
    const stream = run(gen, 5, 2_000); // 1 000 accounts cannot each rest 20 s at 2 000 tx/s
    assert.equal(stream.length, 10_000);
    assert.ok(gen.counters().cooldownOverrides > 0);
  });
});

/**
 * Differential test of the fraud rules against the collector's reference model.
 *
 * The generator (src/collector/generator.ts, docs/collector.md) is a reference model of what
 * the default rules must detect: every incident it injects is labelled with the one rule it is
 * built to trip (`expected_rule`) and the transaction on whose arrival that rule must fire
 * (`trigger_transaction_id`). It isolates incidents (the account is idle for window + lateness
 * before, and held out of normal traffic after) and keeps normal traffic away from every
 * threshold while the rate is at most accounts / 50 per second. What it promises, and what is
 * asserted here of the real WindowStore + evaluate with config/rules.default.yaml:
 *
 * - each labelled incident raises exactly one alert among its transactions: its expected rule,
 *   on its trigger transaction (the rule's cooldown turns a burst that keeps qualifying into one
 *   alert), and no other rule fires on them (amount_sum, which no incident targets, included);
 *   except that the rules' documented cooldown (docs/rules.md: per rule and account, 300 s of
 *   event time) silences an incident whose trigger comes within the cooldown of an earlier
 *   incident of the same rule on the same account. The generator does not model cooldowns and
 *   labels such incidents anyway: the last test below states that mismatch on its own;
 * - no alert fires on an account that never had an incident. An account's history keeps its
 *   incident, so a later normal purchase may still trip amount_spike on it (docs/collector.md,
 *   "After an incident"): alerts after an incident, on that account, are allowed and counted.
 *
 * The records go through what the processor does before the rules: decode (malformed records
 * are dropped here; the processor dead-letters them), dedup by transaction_id (resends
 * dropped), then one window store in arrival order (one partition: one watermark, as the
 * reference model has), and evaluate on every event.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type GeneratedRecord, TrafficGenerator } from "../../src/collector/generator.ts";
import type { Alert } from "../../src/contracts/alert.ts";
import { SCENARIO_TYPES, type ScenarioLabel } from "../../src/contracts/labels.ts";
import { evaluate } from "../../src/core/rules.ts";
import { decodeTransaction } from "../../src/core/schema.ts";
import { WindowStore } from "../../src/core/window.ts";
import { defaultRules, T0 } from "../helpers/fixtures.ts";

/** When each record was emitted: the processing time it is decoded at. */
const sentAt = new WeakMap<GeneratedRecord, number>();

const ACCOUNTS = 2_000;
/** Records per second of simulated time: below ACCOUNTS / 50, where normal traffic stays clean. */
const RATE = 20;
const SECONDS = 300;
/** After scenario starts stop: long enough for every running incident to complete (<= 40 s). */
const DRAIN_SECONDS = 70;
const RULES = defaultRules();

/** Seeded labelled traffic with every scenario type and every fault on, in emission order. */
function generate(seed: number): GeneratedRecord[] {
  const gen = new TrafficGenerator({
    seed,
    accounts: ACCOUNTS,
    // ~3 incidents of each type per minute over 2 000 accounts.
    scenarioRates: Object.fromEntries(SCENARIO_TYPES.map((t) => [t, 0.1])),
    faultRates: { duplicate: 0.01, late: 0.005, outOfOrder: 0.01, malformed: 0.005 },
  });
  const out: GeneratedRecord[] = [];
  const tick = (now: number) => {
    for (const r of gen.fill([], RATE / 10, now)) {
      sentAt.set(r, now);
      out.push(r);
    }
  };
  let now = T0;
  for (; now < T0 + SECONDS * 1000; now += 100) tick(now);
  gen.setScenarioRates(Object.fromEntries(SCENARIO_TYPES.map((t) => [t, 0])));
  for (const end = now + DRAIN_SECONDS * 1000; now < end; now += 100) tick(now);
  return out;
}

interface Fired {
  alert: Alert;
  /** Index of the triggering record in emission order. */
  at: number;
}

/** The processor's path to the rules: decode, drop resends, window, evaluate on every event. */
function runRules(records: GeneratedRecord[]): Fired[] {
  const store = new WindowStore();
  const seen = new Set<string>();
  const fired: Fired[] = [];
  records.forEach((rec, at) => {
    // Decoded at its emission time, as the processor decodes at the record's append time.
    const now = sentAt.get(rec)!;
    const d = decodeTransaction(Buffer.from(rec.value), {}, now);
    if (!d.ok) {
      assert.equal(rec.kind, "malformed", `a ${rec.kind} record failed decoding: ${d.detail}`);
      return;
    }
    if (seen.has(d.tx.transaction_id)) return;
    seen.add(d.tx.transaction_id);
    for (const alert of evaluate(RULES, store.add(d.tx, now), d.tx, now)) fired.push({ alert, at });
  });
  return fired;
}

/** Cooldown of a rule of the default set. */
function cooldownMs(ruleId: string): number {
  const rule = RULES.rules.find((r) => r.id === ruleId);
  assert.ok(rule, `rule ${ruleId} in the default set`);
  return rule.cooldownMs;
}

interface Incident {
  label: ScenarioLabel;
  /** Event time of the trigger transaction. */
  triggerMs: number;
  /** The earlier incident of the same rule on the same account whose cooldown covers this trigger. */
  silencedBy: ScenarioLabel | undefined;
}

/** The labelled incidents in completion order, each with the earlier one whose cooldown silences it, if any. */
function incidents(records: GeneratedRecord[]): Incident[] {
  const eventMs = new Map<string, number>();
  for (const r of records) {
    if (r.kind === "scenario") eventMs.set(r.transactionId!, decodeOk(r).eventTimeMs);
  }
  const out: Incident[] = [];
  for (const r of records) {
    if (r.label?.type !== "scenario") continue;
    const label = r.label;
    const triggerMs = eventMs.get(label.trigger_transaction_id)!;
    // Only an incident that alerted starts a cooldown.
    const earlier = out.findLast(
      (o) =>
        o.silencedBy === undefined &&
        o.label.account_id === label.account_id &&
        o.label.expected_rule === label.expected_rule,
    );
    const silencedBy =
      earlier && triggerMs < earlier.triggerMs + cooldownMs(label.expected_rule) ? earlier.label : undefined;
    out.push({ label, triggerMs, silencedBy });
  }
  return out;
}

function decodeOk(rec: GeneratedRecord) {
  const d = decodeTransaction(Buffer.from(rec.value));
  assert.ok(d.ok, `a ${rec.kind} record failed decoding`);
  return d.tx;
}

/**
 * Seeds: three arbitrary ones. The generator no longer reuses an account for the same rule
 * inside its cooldown (the test below checks that promise), so no fixed seed produces a
 * silenced pair; the assertions hold for any seed.
 */
const SEEDS = [5, 7, 2026];
const samples = new Map<number, GeneratedRecord[]>();
const sample = (seed: number) => {
  const cached = samples.get(seed);
  if (cached !== undefined) return cached;
  const records = generate(seed);
  samples.set(seed, records);
  return records;
};

describe("rules vs the generator's reference model", () => {
  for (const seed of SEEDS) {
    it(`every incident raises its expected rule once, on its trigger (unless in cooldown); accounts without one raise nothing (seed ${seed})`, () => {
      const records = sample(seed);
      const fired = runRules(records);
      const all = incidents(records);
      const labels = all.map((i) => i.label);

      // The sample is what the test claims it is.
      for (const type of SCENARIO_TYPES) {
        const n = labels.filter((l) => l.scenario === type).length;
        assert.ok(n >= 8, `${n} ${type} incidents in the sample`);
      }
      const incidentOf = new Map<string, ScenarioLabel>();
      for (const l of labels) for (const id of l.transaction_ids) incidentOf.set(id, l);
      for (const r of records) {
        if (r.kind === "scenario") assert.ok(incidentOf.has(r.transactionId!), "every incident completed");
      }
      assert.ok(records.filter((r) => r.kind === "duplicate").length > 20, "resends in the sample");

      // Each incident: one alert among its transactions, its rule, on its trigger; none in cooldown.
      for (const { label: l, silencedBy } of all) {
        const mine = fired.filter((f) => incidentOf.get(f.alert.transactionId) === l);
        assert.deepEqual(
          mine.map((f) => [f.alert.ruleId, f.alert.transactionId, f.alert.accountId]),
          silencedBy ? [] : [[l.expected_rule, l.trigger_transaction_id, l.account_id]],
          `${l.scenario} ${l.scenario_id}${silencedBy ? ` (in the cooldown of ${silencedBy.scenario_id})` : ""}`,
        );
      }

      // Everything else: only on accounts after their incident started.
      const firstIncidentRecord = new Map<string, number>();
      records.forEach((r, i) => {
        if (r.kind === "scenario" && !firstIncidentRecord.has(r.key)) firstIncidentRecord.set(r.key, i);
      });
      for (const f of fired.filter((x) => !incidentOf.has(x.alert.transactionId))) {
        const since = firstIncidentRecord.get(f.alert.accountId);
        assert.ok(
          since !== undefined && since < f.at,
          `${f.alert.ruleId} on ${f.alert.accountId}, an account without an incident before it: ${records[f.at]!.value}`,
        );
      }
      const clean = new Set(records.map((r) => r.key).filter((k) => !firstIncidentRecord.has(k)));
      assert.ok(clean.size > ACCOUNTS / 2, `${clean.size} accounts without incidents checked`);
      assert.equal(
        fired.filter((f) => f.alert.ruleId === "amount_sum").length,
        0,
        "no incident reaches amount_sum",
      );
    });
  }

  it("the reference model labels no incident that the rules' cooldown must silence", () => {
    const silenced = SEEDS.flatMap((seed) =>
      incidents(sample(seed))
        .filter((i) => i.silencedBy !== undefined)
        .map(
          (i) =>
            `seed ${seed}: ${i.label.scenario_id} (${i.label.expected_rule} on ${i.label.account_id}) ` +
            `triggers ${(i.triggerMs - incidents(sample(seed)).find((o) => o.label === i.silencedBy)!.triggerMs) / 1000} s ` +
            `after ${i.silencedBy!.scenario_id}'s alert, inside the ${cooldownMs(i.label.expected_rule) / 1000} s cooldown`,
        ),
    );
    assert.deepEqual(silenced, [], "labelled incidents no alert can be raised for");
  });
});

/**
 * The per-event rule evaluator: runs a compiled RuleSet (rule-document.ts) against the
 * account state WindowStore.add() just updated (account-state.ts).
 *
 * It runs on every transaction, so it allocates nothing unless a rule fires: the compiled
 * rules share one object shape (the dispatch loop stays monomorphic), windows are scanned in
 * place on the account's ring through its accessors, the start of a window is found once per
 * distinct windowMs by binary search, distinct counts use the rule set's scratch array with
 * early exit, and the no-alert result is a shared frozen array. Figures for the alert are
 * computed only after a rule has fired.
 *
 * Late events (behind the watermark) never raise alerts. They are already part of history
 * and, when recent enough, of the window (see window.ts), so the next on-time event of the
 * account sees them; alerting on the late event itself would evaluate a window that on-time
 * processing has moved past and, on replays, would make the alert set depend on arrival
 * timing. Cooldowns are not touched by late events either.
 */
import type { Alert, AlertFigures } from "../contracts/alert.ts";
import type { Transaction } from "../contracts/transaction.ts";
import { type AccountState, countryFromCode, EventField } from "./account-state.ts";
import { alertId } from "./alert.ts";
import { distanceUpperBoundKm, haversineKm } from "./geo.ts";
import { type CompiledRule, type EvaluationScratch, RuleKind, type RuleSet } from "./rule-document.ts";
import { formatMinor } from "./schema.ts";

const NO_ALERTS: readonly Alert[] = Object.freeze([]);

/** Distinct values of `field` in [from, to] (allocates: only after a rule fired). */
function distinctValues(s: AccountState, from: number, to: number, field: EventField): number[] {
  const set = new Set<number>();
  for (let i = from; i <= to; i++) set.add(s.at(i, field));
  return [...set];
}

/** Speed between two events if it breaks the rule's limits, else -1. */
function impossibleSpeed(
  rule: CompiledRule,
  lat1: number,
  lon1: number,
  t1: number,
  lat2: number,
  lon2: number,
  t2: number,
): number {
  if (distanceUpperBoundKm(lat1, lon1, lat2, lon2) <= rule.distanceKm) return -1;
  const km = haversineKm(lat1, lon1, lat2, lon2);
  if (km <= rule.distanceKm) return -1;
  // Equal timestamps count as 1 ms apart: far apart at the same instant is as impossible as it gets.
  const hours = Math.max(Math.abs(t2 - t1), 1) / 3_600_000;
  const speed = km / hours;
  return speed > rule.speedKmh ? speed : -1;
}

/**
 * Runs every enabled rule against the account's state for the transaction just added by
 * WindowStore.add() (which must have been the last add). Returns the alerts raised, or a
 * shared empty array. nowMs is the processing time recorded as detectedAtMs; windows are
 * anchored on tx.eventTimeMs.
 */
export function evaluate(
  ruleSet: RuleSet,
  s: AccountState,
  tx: Transaction,
  nowMs: number,
): readonly Alert[] {
  const cur = s.curIndex;
  if (s.curLate || cur < 0) return NO_ALERTS;
  const t = tx.eventTimeMs;
  const rules = ruleSet.compiled;
  const sc = ruleSet.scratch;
  sc.startWindowMs = -1;
  let out: Alert[] | null = null;
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]!;
    if (s.cooldownRuleIds !== null && s.inCooldown(rule.id, t)) continue;
    let figures: AlertFigures | null = null;
    switch (rule.kind) {
      case RuleKind.velocityCount: {
        const from = startFor(sc, s, cur, t, rule.windowMs);
        const count = cur - from + 1;
        if (count >= rule.count) {
          const sum = s.sumRange(from, cur);
          figures = {
            count,
            threshold: rule.count,
            sumMinor: sum,
            sum: formatMinor(sum),
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case RuleKind.amountSum: {
        const from = startFor(sc, s, cur, t, rule.windowMs);
        const sum = s.sumRange(from, cur);
        if (sum >= rule.amountMinor) {
          figures = {
            sumMinor: sum,
            sum: formatMinor(sum),
            threshold: formatMinor(rule.amountMinor),
            count: cur - from + 1,
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case RuleKind.cardTesting:
        // minAmountMinor bounds the ring from below: above the small limit, nothing is small.
        if (tx.amountMinor >= rule.amountMinor && s.minAmountMinor <= rule.smallAmountMinor) {
          figures = cardTesting(sc, rule, s, cur, t, tx.amountMinor);
        }
        break;
      case RuleKind.geoVelocity:
        figures = geoVelocity(sc, rule, s, cur, t, tx);
        break;
      case RuleKind.merchantSpread: {
        const from = startFor(sc, s, cur, t, rule.windowMs);
        if (distinctAtLeast(sc, s, from, cur, EventField.merchant, rule.count)) {
          figures = {
            distinctMerchants: distinctValues(s, from, cur, EventField.merchant).length,
            threshold: rule.count,
            count: cur - from + 1,
            windowMs: rule.windowMs,
          };
        }
        break;
      }
      case RuleKind.amountSpike: {
        const amount = tx.amountMinor;
        if (
          s.priorCount >= rule.count &&
          amount >= rule.amountMinor &&
          amount >= rule.multiplier * s.priorMean
        ) {
          const mean = Math.round(s.priorMean);
          figures = {
            amount: formatMinor(amount),
            historicalMean: formatMinor(mean),
            ratio: Math.round((amount / s.priorMean) * 100) / 100,
            multiplier: rule.multiplier,
            historyCount: s.priorCount,
          };
        }
        break;
      }
    }
    if (figures !== null) {
      s.startCooldown(rule.id, t + rule.cooldownMs);
      if (out === null) out = [];
      out.push({
        alertId: alertId(rule.id, tx.account_id, tx.transaction_id),
        ruleId: rule.id,
        ruleType: rule.rule.type,
        severity: rule.rule.severity,
        accountId: tx.account_id,
        transactionId: tx.transaction_id,
        eventTimeMs: t,
        detectedAtMs: nowMs,
        figures,
      });
    }
  }
  return out ?? NO_ALERTS;
}

/** Logical index where the window of windowMs ending at t starts; cached per evaluate() call. */
function startFor(sc: EvaluationScratch, s: AccountState, cur: number, t: number, windowMs: number): number {
  if (windowMs !== sc.startWindowMs) {
    sc.startWindowMs = windowMs;
    sc.start = s.firstAfter(t - windowMs, cur);
  }
  return sc.start;
}

/** True once `k` distinct values of `field` are found among logical indices [from, to]. */
function distinctAtLeast(
  sc: EvaluationScratch,
  s: AccountState,
  from: number,
  to: number,
  field: EventField,
  k: number,
): boolean {
  if (to - from + 1 < k) return false;
  const seen = sc.seen;
  let d = 0;
  for (let i = to; i >= from; i--) {
    const v = s.at(i, field);
    let j = 0;
    while (j < d && seen[j] !== v) j++;
    if (j === d) {
      seen[d++] = v;
      if (d >= k) return true;
    }
  }
  return false;
}

function cardTesting(
  sc: EvaluationScratch,
  rule: CompiledRule,
  s: AccountState,
  cur: number,
  t: number,
  amount: number,
): AlertFigures | null {
  const from = startFor(sc, s, cur, t, rule.windowMs);
  const max = rule.smallAmountMinor;
  let small = 0;
  // Only events before the large one count ("small ones, then a large one").
  for (let i = cur - 1; i >= from; i--) {
    if (s.at(i, EventField.amountMinor) <= max && ++small >= rule.count) break;
  }
  if (small < rule.count) return null;
  small = 0;
  let smallSum = 0;
  for (let i = from; i < cur; i++) {
    const a = s.at(i, EventField.amountMinor);
    if (a <= max) {
      small++;
      smallSum += a;
    }
  }
  return {
    smallCount: small,
    smallSum: formatMinor(smallSum),
    amount: formatMinor(amount),
    threshold: rule.count,
    smallAmountMax: formatMinor(max),
    largeAmountMin: formatMinor(rule.amountMinor),
    windowMs: rule.windowMs,
  };
}

function geoVelocity(
  sc: EvaluationScratch,
  rule: CompiledRule,
  s: AccountState,
  cur: number,
  t: number,
  tx: Transaction,
): AlertFigures | null {
  let speed = -1;
  let otherTime = 0;
  let otherLat = 0;
  let otherLon = 0;
  if (rule.speedKmh > 0) {
    // Consecutive in event time. The newest event's predecessor is kept outside the ring,
    // so it is known even when it has left the window (a jump after a 5-minute pause is
    // still impossible travel). An out-of-order event forms two new pairs in the ring.
    if (s.curNewest) {
      if (s.prevTimeMs !== Number.NEGATIVE_INFINITY) {
        speed = impossibleSpeed(rule, s.prevLat, s.prevLon, s.prevTimeMs, tx.lat, tx.lon, t);
        otherTime = s.prevTimeMs;
        otherLat = s.prevLat;
        otherLon = s.prevLon;
      }
    } else {
      for (let side = -1; side <= 1 && speed < 0; side += 2) {
        const i = cur + side;
        if (i < 0 || i >= s.len) continue;
        otherTime = s.at(i, EventField.timeMs);
        otherLat = s.at(i, EventField.lat);
        otherLon = s.at(i, EventField.lon);
        speed = impossibleSpeed(rule, otherLat, otherLon, otherTime, tx.lat, tx.lon, t);
      }
    }
  }
  let countriesHit = false;
  let from = 0;
  // A ring from a single country cannot reach 2+ distinct countries: skip the scan.
  if (rule.count > 0 && (s.uniformCountry < 0 || rule.count <= 1)) {
    from = startFor(sc, s, cur, t, rule.windowMs);
    countriesHit = distinctAtLeast(sc, s, from, cur, EventField.country, rule.count);
  }
  if (speed < 0 && !countriesHit) return null;
  if (rule.count === 0) from = startFor(sc, s, cur, t, rule.windowMs);
  const countries = distinctValues(s, from, cur, EventField.country).map(countryFromCode).sort();
  const figures: AlertFigures = {
    reason: speed >= 0 && countriesHit ? "speed+countries" : speed >= 0 ? "speed" : "countries",
    distinctCountries: countries.length,
    countries: countries.join(","),
    windowMs: rule.windowMs,
  };
  if (speed >= 0) {
    figures["speedKmh"] = Math.round(speed);
    figures["distanceKm"] = Math.round(haversineKm(otherLat, otherLon, tx.lat, tx.lon));
    figures["elapsedMs"] = Math.abs(t - otherTime);
    figures["maxSpeedKmh"] = rule.speedKmh;
  }
  if (rule.count > 0) figures["minDistinctCountries"] = rule.count;
  return figures;
}

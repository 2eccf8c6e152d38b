import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EmbeddedCaseStore } from "../../../src/adapters/embedded/cases.ts";
import type { Alert, RuleType, Severity } from "../../../src/contracts/alert.ts";
import type { FraudCase } from "../../../src/contracts/case.ts";
import {
  applyStatus,
  caseToJson,
  checkFeedLimit,
  compareCases,
  feedCursor,
  fileAlert,
  queueScore,
  resolutionDelta,
} from "../../../src/core/cases.ts";
import { isPaystreamError } from "../../../src/core/errors.ts";

const T0 = Date.UTC(2025, 0, 1);
const GAP = 60_000;

function alert(
  id: string,
  ruleId: string,
  t: number,
  severity: Severity = "medium",
  account = "acc-1",
): Alert {
  return {
    alertId: id,
    ruleId,
    ruleType: ruleId as RuleType,
    severity,
    accountId: account,
    transactionId: `tx-${id}`,
    eventTimeMs: t,
    detectedAtMs: t + 5,
    figures: { count: 3 },
    ruleSetVersion: 4,
  };
}

/** Files alerts one by one, as a store does, returning the account's cases by id. */
function fileAll(alerts: Alert[]): Map<string, FraudCase> {
  const cases = new Map<string, FraudCase>();
  let cur: FraudCase | undefined;
  for (const a of alerts) {
    const f = fileAlert(cur, a, GAP);
    cases.set(f.case.caseId, f.case);
    if (f.current) cur = f.case;
  }
  return cases;
}

describe("filing alerts into cases", () => {
  it("one incident tripping several rules is one case with every hit and the highest severity", () => {
    const cases = fileAll([
      alert("a1", "velocity_count", T0, "medium"),
      alert("a2", "amount_sum", T0 + 1000, "high"),
      alert("a3", "merchant_spread", T0 + 2000, "critical"),
      alert("a4", "velocity_count", T0 + 3000, "medium"),
    ]);
    assert.equal(cases.size, 1);
    const c = cases.get("a1")!;
    assert.equal(c.status, "open");
    assert.equal(c.severity, "critical");
    assert.equal(c.firstSeenMs, T0);
    assert.equal(c.lastSeenMs, T0 + 3000);
    assert.deepEqual(c.ruleIds, ["velocity_count", "amount_sum", "merchant_spread"]);
    assert.deepEqual(
      c.hits.map((h) => h.alertId),
      ["a1", "a2", "a3", "a4"],
    );
    assert.equal(c.hits[0]!.ruleSetVersion, 4);
  });

  it("a hit after the gap opens a new case whose id is that alert's id", () => {
    const cases = fileAll([
      alert("a1", "velocity_count", T0),
      alert("a2", "amount_sum", T0 + GAP),
      alert("b1", "amount_sum", T0 + 2 * GAP + 1),
    ]);
    assert.deepEqual([...cases.keys()], ["a1", "b1"]);
    assert.equal(cases.get("a1")!.hits.length, 2);
    assert.deepEqual(cases.get("b1")!.ruleIds, ["amount_sum"]);
  });

  it("refiling the same alert changes nothing", () => {
    const first = fileAlert(undefined, alert("a1", "velocity_count", T0), GAP);
    const again = fileAlert(first.case, alert("a1", "velocity_count", T0), GAP);
    assert.equal(again.outcome, "known");
    assert.equal(again.case, first.case);
  });

  it("out-of-order hits join the incident and are listed in event-time order", () => {
    const cases = fileAll([
      alert("a2", "amount_sum", T0 + 5000, "high"),
      alert("a1", "velocity_count", T0, "low"),
      alert("a3", "card_testing", T0 + 2000, "medium"),
    ]);
    assert.equal(cases.size, 1);
    const c = cases.get("a2")!;
    assert.deepEqual(
      c.hits.map((h) => h.alertId),
      ["a1", "a3", "a2"],
    );
    assert.deepEqual(c.ruleIds, ["velocity_count", "card_testing", "amount_sum"]);
    assert.equal(c.firstSeenMs, T0);
    assert.equal(c.severity, "high");
  });

  it("a hit more than a gap before the current case opens its own case and leaves the account's current case", () => {
    const current = fileAlert(undefined, alert("a1", "velocity_count", T0 + 10 * GAP), GAP).case;
    const stray = fileAlert(current, alert("old", "amount_sum", T0), GAP);
    assert.equal(stray.outcome, "new");
    assert.equal(stray.current, false);
    const next = fileAlert(current, alert("a2", "amount_sum", T0 + 10 * GAP + 10), GAP);
    assert.equal(next.outcome, "joined");
  });

  it("the embedded store files a replayed batch without adding hits", async () => {
    const store = new EmbeddedCaseStore({ gapMs: GAP });
    const batch = [alert("a1", "velocity_count", T0), alert("a2", "amount_sum", T0 + 10, "high")];
    const touched = await store.fileAlerts(batch);
    assert.equal(touched.length, 1);
    assert.deepEqual(await store.fileAlerts(batch), []);
    const c = await store.get("a1");
    assert.equal(c?.hits.length, 2);
  });
});

describe("case status workflow", () => {
  const base = fileAlert(undefined, alert("a1", "velocity_count", T0, "high"), GAP).case;
  const by = "analyst";

  it("allows open → acknowledged → resolved and reopening, recording who and when", () => {
    const ack = applyStatus(base, { status: "acknowledged", by, atMs: T0 + 1 });
    const res = applyStatus(ack, { status: "resolved_fraud", by, atMs: T0 + 2, note: "confirmed" });
    const re = applyStatus(res, { status: "open", by: "lead", atMs: T0 + 3 });
    assert.equal(re.status, "open");
    assert.deepEqual(
      re.history.map((h) => [h.status, h.by, h.atMs]),
      [
        ["acknowledged", by, T0 + 1],
        ["resolved_fraud", by, T0 + 2],
        ["open", "lead", T0 + 3],
      ],
    );
    assert.equal(re.history[1]!.note, "confirmed");
  });

  it("refuses a transition the workflow does not allow", () => {
    const ack = applyStatus(base, { status: "acknowledged", by, atMs: T0 });
    for (const [from, to] of [
      [ack, "open"],
      [base, "open"],
    ] as const) {
      assert.throws(
        () => applyStatus(from, { status: to, by, atMs: T0 }),
        (e) => isPaystreamError(e) && e.code === "PS_CASE_TRANSITION",
      );
    }
  });

  it("a case changed fraud → open → legitimate counts once, as legitimate", () => {
    const fraud = applyStatus(base, { status: "resolved_fraud", by, atMs: T0 });
    const reopened = applyStatus(fraud, { status: "open", by, atMs: T0 });
    const legit = applyStatus(reopened, { status: "resolved_legitimate", by, atMs: T0 });
    const total = new Map<string, { fraud: number; legitimate: number }>();
    for (const [b, a] of [
      [base, fraud],
      [fraud, reopened],
      [reopened, legit],
    ]) {
      for (const [rule, d] of resolutionDelta(b, a)) {
        const t = total.get(rule) ?? { fraud: 0, legitimate: 0 };
        total.set(rule, { fraud: t.fraud + d.fraud, legitimate: t.legitimate + d.legitimate });
      }
    }
    assert.deepEqual([...total], [["velocity_count", { fraud: 0, legitimate: 1 }]]);
  });
});

describe("queue order and JSON", () => {
  it("sorts unresolved first, then severity, then oldest; the zset score agrees within a status", () => {
    const low = fileAlert(undefined, alert("low", "velocity_count", T0, "low"), GAP).case;
    const critNew = fileAlert(undefined, alert("cn", "velocity_count", T0 + 9, "critical"), GAP).case;
    const critOld = fileAlert(undefined, alert("co", "velocity_count", T0 + 1, "critical"), GAP).case;
    const resolved = applyStatus(
      fileAlert(undefined, alert("r", "amount_sum", T0 - 5, "critical"), GAP).case,
      {
        status: "resolved_fraud",
        by: "x",
        atMs: T0,
      },
    );
    const sorted = [low, resolved, critNew, critOld].sort(compareCases).map((c) => c.caseId);
    assert.deepEqual(sorted, ["co", "cn", "low", "r"]);
    const byScore = [low, critNew, critOld]
      .sort((a, b) => queueScore(a) - queueScore(b))
      .map((c) => c.caseId);
    assert.deepEqual(byScore, ["co", "cn", "low"]);
  });

  it("encodes snake_case with ISO times and no account-level PII beyond the masked card", () => {
    const c = fileAlert(undefined, alert("a1", "velocity_count", T0), GAP).case;
    const j = caseToJson(applyStatus(c, { status: "acknowledged", by: "ana", atMs: T0 + 1 }));
    assert.equal(j.case_id, "a1");
    assert.equal(j.first_seen, new Date(T0).toISOString());
    assert.deepEqual((j.history as unknown[])[0], {
      status: "acknowledged",
      by: "ana",
      at: new Date(T0 + 1).toISOString(),
    });
    const hit = (j.hits as Record<string, unknown>[])[0]!;
    assert.equal(hit.rule_set_version, 4);
    assert.equal(hit.masked_card, null);
    assert.equal(hit.event_time, new Date(T0).toISOString());
  });
});

describe("change feed", () => {
  const e = (caseId: string, atMs: number) => ({ caseId, atMs });

  it("feedCursor: a short page ends at the read time, a full one restarts in its last millisecond", () => {
    assert.deepEqual(feedCursor([], 3, 100, 500), { cursor: 500 });
    assert.deepEqual(feedCursor([e("a", 200)], 3, 100, 500), { cursor: 500 });
    // A clock behind the caller's cursor never moves the cursor back.
    assert.deepEqual(feedCursor([], 3, 900, 500), { cursor: 900 });
    assert.deepEqual(feedCursor([e("a", 200), e("b", 300), e("c", 300)], 3, 100, 500), { cursor: 300 });
    // A full page in one millisecond: that whole millisecond is read, and the cursor passes it.
    assert.deepEqual(feedCursor([e("a", 300), e("b", 300), e("c", 300)], 3, 100, 500), {
      cursor: 301,
      wholeMs: 300,
    });
    assert.throws(() => checkFeedLimit(0), RangeError);
  });

  /** A store whose clock the test sets; `changes` cases filed and changed at the given times. */
  async function storeWith(times: number[]) {
    let now = T0;
    const store = new EmbeddedCaseStore({ gapMs: GAP, now: () => now });
    const ids: string[] = [];
    for (let i = 0; i < times.length; i++) {
      const [c] = await store.fileAlerts([alert(`f${i}`, "velocity_count", T0, "low", `acct-${i}`)]);
      now = times[i]!;
      await store.setStatus(c!.caseId, { status: "acknowledged", by: "ana", atMs: now });
      ids.push(c!.caseId);
    }
    return {
      store,
      ids,
      setNow: (ms: number) => {
        now = ms;
      },
    };
  }

  /** Reads the feed from `since` until it has nothing new, as the processor's sync does. */
  async function drain(store: EmbeddedCaseStore, since: number, limit: number) {
    const seen: string[] = [];
    let cursor = since;
    for (let i = 0; i < 20; i++) {
      const page = await store.changedSince(cursor, limit);
      seen.push(...page.cases.map((c) => c.caseId));
      if (page.cases.length < limit) return { seen, cursor: page.cursor, reads: i + 1 };
      assert.ok(page.cursor > cursor, `the cursor moves on (${cursor} → ${page.cursor})`);
      cursor = page.cursor;
    }
    assert.fail("the feed never ran dry");
  }

  it("embedded: changed cases oldest change first, the current state, and a cursor that moves on", async () => {
    const { store, ids, setNow } = await storeWith([T0 + 10, T0 + 20, T0 + 30]);
    setNow(T0 + 40);
    const all = await store.changedSince(T0, 10);
    assert.deepEqual(
      all.cases.map((c) => c.caseId),
      ids,
    );
    assert.ok(all.cases.every((c) => c.status === "acknowledged"));
    assert.equal(all.cursor, T0 + 40);
    assert.deepEqual(
      (await store.changedSince(T0 + 20, 10)).cases.map((c) => c.caseId),
      ids.slice(1),
    );
    assert.deepEqual((await store.changedSince(all.cursor, 10)).cases, []);
    // A second change moves the case to the end of the feed, once.
    setNow(T0 + 50);
    await store.setStatus(ids[0]!, { status: "resolved_fraud", by: "bo", atMs: T0 + 50 });
    const next = await store.changedSince(all.cursor, 10);
    assert.deepEqual(
      next.cases.map((c) => [c.caseId, c.status]),
      [[ids[0], "resolved_fraud"]],
    );
    assert.deepEqual(
      (await store.changedSince(T0, 10)).cases.map((c) => c.caseId),
      [ids[1], ids[2], ids[0]],
    );
  });

  it("embedded: more changes in one millisecond than the page size still move the cursor on", async () => {
    const { store, ids, setNow } = await storeWith([T0 + 5, T0 + 7, T0 + 7, T0 + 7, T0 + 7, T0 + 9]);
    setNow(T0 + 20);
    const first = await store.changedSince(T0, 2);
    assert.deepEqual(
      first.cases.map((c) => c.caseId),
      ids.slice(0, 2),
    );
    assert.equal(first.cursor, T0 + 7);
    const same = await store.changedSince(first.cursor, 2);
    assert.deepEqual(same.cases.map((c) => c.caseId).sort(), ids.slice(1, 5).sort(), "the whole millisecond");
    assert.equal(same.cursor, T0 + 8);
    const { seen, cursor } = await drain(store, T0, 2);
    assert.deepEqual(new Set(seen), new Set(ids));
    assert.equal(cursor, T0 + 20);
  });

  it("embedded: the feed clock never goes back, and changes older than 30 days are trimmed", async () => {
    const { store, ids, setNow } = await storeWith([T0 + 100, T0 + 50]);
    setNow(T0 + 60);
    const page = await store.changedSince(T0, 10);
    assert.deepEqual(
      page.cases.map((c) => c.caseId),
      ids,
      "stamped in change order",
    );
    assert.equal(page.cursor, T0 + 100);
    setNow(T0 + 31 * 86_400_000);
    await store.setStatus(ids[0]!, { status: "resolved_fraud", by: "bo", atMs: T0 });
    assert.deepEqual(
      (await store.changedSince(0, 10)).cases.map((c) => c.caseId),
      [ids[0]],
    );
  });
});

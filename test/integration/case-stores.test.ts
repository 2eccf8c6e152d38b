import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { EmbeddedCaseStore } from "../../src/adapters/embedded/cases.ts";
import { RedisCaseStore } from "../../src/adapters/redis/cases.ts";
import { connectRedis, type Redis } from "../../src/adapters/redis/client.ts";
import type { Alert, RuleType, Severity } from "../../src/contracts/alert.ts";
import type { FraudCase } from "../../src/contracts/case.ts";
import { services, uniqueName } from "../helpers/services.ts";

const T0 = Date.UTC(2026, 0, 1);
const GAP = 60_000;

function alerts(prefix: string): Alert[] {
  const mk = (n: string, account: string, rule: string, t: number, severity: Severity): Alert => ({
    alertId: `${prefix}-${n}`,
    ruleId: rule,
    ruleType: rule as RuleType,
    severity,
    accountId: `${prefix}-${account}`,
    transactionId: `${prefix}-tx-${n}`,
    eventTimeMs: t,
    detectedAtMs: t + 3,
    figures: { count: 4 },
    maskedCard: { bin: "411111", last4: "1111", token: "tok" },
  });
  return [
    mk("1", "A", "velocity_count", T0, "medium"),
    mk("2", "A", "amount_sum", T0 + 1000, "high"),
    mk("3", "B", "card_testing", T0 + 500, "critical"),
    mk("4", "A", "merchant_spread", T0 + 400, "low"),
    mk("5", "A", "velocity_count", T0 + 1000 + 3 * GAP, "medium"),
    mk("6", "B", "card_testing", T0 + 20_000, "high"),
  ];
}

/** The cases touching `ids`, without store-specific parts (none), sorted by id. */
async function casesOf(store: { get(id: string): Promise<FraudCase | undefined> }, ids: string[]) {
  const out: FraudCase[] = [];
  for (const id of ids) {
    const c = await store.get(id);
    if (c) out.push(c);
  }
  return out;
}

describe("case stores on Redis and embedded", () => {
  let redis: Redis;
  before(async () => {
    redis = await connectRedis({ url: services.redis });
  });
  after(() => redis.destroy());

  it("file the same alert sequence, split into batches and replayed, into the same cases", async () => {
    const prefix = uniqueName("cs");
    const seq = alerts(prefix);
    const r = new RedisCaseStore(redis, { gapMs: GAP });
    const e = new EmbeddedCaseStore({ gapMs: GAP });
    for (const store of [r, e]) {
      await store.fileAlerts(seq.slice(0, 3));
      await store.fileAlerts(seq.slice(2)); // overlaps: alert 3 is replayed
      assert.deepEqual(await store.fileAlerts(seq), [], "a replayed batch touches no case");
    }
    const ids = seq.map((a) => a.alertId);
    const fromRedis = await casesOf(r, ids);
    assert.deepEqual(fromRedis, await casesOf(e, ids));
    assert.deepEqual(
      fromRedis.map((c) => [c.caseId, c.hits.length, c.severity]),
      [
        [`${prefix}-1`, 3, "high"],
        [`${prefix}-3`, 2, "critical"],
        [`${prefix}-5`, 1, "medium"],
      ],
    );
  });

  it("two concurrent filings for one account do not split its case", async () => {
    const prefix = uniqueName("cc");
    const seq = alerts(prefix).filter((a) => a.accountId.endsWith("-A") && a.eventTimeMs < T0 + GAP);
    const a = new RedisCaseStore(redis, { gapMs: GAP });
    const b = new RedisCaseStore(redis, { gapMs: GAP });
    await Promise.all([a.fileAlerts([seq[0]!]), b.fileAlerts([seq[1]!]), a.fileAlerts([seq[2]!])]);
    const ids = seq.map((x) => x.alertId);
    const cases = new Map((await casesOf(a, ids)).map((c) => [c.caseId, c]));
    assert.equal(cases.size, 1, "one case");
    assert.deepEqual([...cases.values()][0]!.hits.map((h) => h.alertId).sort(), ids.sort());
  });

  it("agree on the change feed: changed cases oldest change first, as they are now, paged by cursor", async () => {
    const prefix = uniqueName("cf");
    const seq = alerts(prefix);
    const since = Date.now() - 1000;
    const r = new RedisCaseStore(redis, { gapMs: GAP });
    const e = new EmbeddedCaseStore({ gapMs: GAP });
    const ours = (cases: FraudCase[]) => cases.filter((c) => c.caseId.startsWith(`${prefix}-`));
    const feeds: [string, FraudCase[][]][] = [];
    for (const store of [r, e]) {
      await store.fileAlerts(seq);
      const ids = [`${prefix}-5`, `${prefix}-1`, `${prefix}-3`];
      const page = async () => ours((await store.changedSince(since, 500)).cases);
      assert.deepEqual(await page(), [], "no status changed yet");
      const by = "ana";
      // A few milliseconds apart, so the change order does not depend on ties.
      const tick = () => new Promise((res) => setTimeout(res, 3));
      for (const id of ids) {
        await store.setStatus(id, { status: "acknowledged", by, atMs: Date.now() });
        await tick();
      }
      await store.setStatus(ids[0]!, { status: "resolved_fraud", by, atMs: Date.now(), note: "n" });
      const all = await page();
      // The whole feed, read in pages of two from the same start.
      const paged: FraudCase[] = [];
      let cursor = since;
      for (let i = 0; i < 10_000; i++) {
        const got = await store.changedSince(cursor, 2);
        paged.push(...ours(got.cases));
        if (got.cases.length < 2) break;
        assert.ok(got.cursor > cursor, "the cursor moves on");
        cursor = got.cursor;
      }
      feeds.push([store === r ? "redis" : "embedded", [all, paged]]);
    }
    const view = (cs: FraudCase[]) => cs.map((c) => [c.caseId, c.status, c.history.map((h) => h.status)]);
    const ids = (cs: FraudCase[]) => [...new Set(cs.map((c) => c.caseId))].sort();
    const expected = [
      [`${prefix}-1`, "acknowledged", ["acknowledged"]],
      [`${prefix}-3`, "acknowledged", ["acknowledged"]],
      [`${prefix}-5`, "resolved_fraud", ["acknowledged", "resolved_fraud"]],
    ];
    for (const [name, [all, paged]] of feeds) {
      assert.deepEqual(view(all!), expected, name);
      assert.deepEqual(ids(paged!), ids(all!), `${name}: paging reads the same cases`);
    }
  });

  it("keeps status changes and counts each case once per rule under its current resolution", async () => {
    const prefix = uniqueName("cr");
    const seq = alerts(prefix).slice(0, 2);
    const r = new RedisCaseStore(redis, { gapMs: GAP });
    const [c] = await r.fileAlerts(seq);
    const before = await r.resolutions();
    const by = "ana";
    await r.setStatus(c!.caseId, { status: "resolved_fraud", by, atMs: T0 });
    await r.setStatus(c!.caseId, { status: "open", by, atMs: T0 + 1 });
    const done = await r.setStatus(c!.caseId, {
      status: "resolved_legitimate",
      by,
      atMs: T0 + 2,
      note: "ok",
    });
    assert.equal(done?.status, "resolved_legitimate");
    const afterR = await r.resolutions();
    for (const rule of ["velocity_count", "amount_sum"]) {
      const b = before.get(rule) ?? { fraud: 0, legitimate: 0 };
      assert.deepEqual(afterR.get(rule), { fraud: b.fraud, legitimate: b.legitimate + 1 }, rule);
    }
    // A replay after the resolution neither reopens nor adds hits.
    await r.fileAlerts(seq);
    const got = await r.get(c!.caseId);
    assert.equal(got?.status, "resolved_legitimate");
    assert.equal(got?.history.length, 3);
    assert.equal(got?.hits.length, 2);
    const listed = await r.list({ status: "resolved_legitimate", limit: 10_000 });
    assert.ok(listed.some((x) => x.caseId === c!.caseId));
    assert.ok(!(await r.list({ status: "open", limit: 10_000 })).some((x) => x.caseId === c!.caseId));
    assert.equal(await r.setStatus(`${prefix}-missing`, { status: "open", by, atMs: T0 }), undefined);
  });
});

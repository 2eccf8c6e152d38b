import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AccountState,
  countryCode,
  countryFromCode,
  EventField,
  merchantHash,
  NOT_RECORDED,
  transactionIdHash,
} from "../../../src/core/account-state.ts";
import { isPaystreamError } from "../../../src/core/errors.ts";
import { WindowStore } from "../../../src/core/window.ts";
import { T0, txAt as tx } from "../../helpers/fixtures.ts";

const times = (s: AccountState) => s.events().map((e) => e.eventTimeMs - T0);

describe("window boundaries: (t - windowMs, t]", () => {
  it("an event exactly windowMs older is outside the window", () => {
    const store = new WindowStore();
    store.add(tx("a", T0));
    const s = store.add(tx("a", T0 + 60_000));
    assert.equal(s.countInWindow(T0 + 60_000, 60_000), 1);
  });

  it("an event 1 ms younger than windowMs is inside", () => {
    const store = new WindowStore();
    store.add(tx("a", T0));
    const s = store.add(tx("a", T0 + 59_999));
    assert.equal(s.countInWindow(T0 + 59_999, 60_000), 2);
  });

  it("the end is inclusive and later events are not part of an earlier event's window", () => {
    const store = new WindowStore();
    store.add(tx("a", T0));
    store.add(tx("a", T0 + 1000));
    const s = store.add(tx("a", T0 + 2000));
    assert.equal(s.countInWindow(T0 + 1000, 60_000), 2);
    assert.equal(s.countInWindow(T0 + 999, 60_000), 1);
  });

  it("keeps events as long as an on-time event could still see them, and no longer", () => {
    const store = new WindowStore({ windowMs: 60_000, allowedLatenessMs: 10_000 });
    store.add(tx("a", T0));
    store.add(tx("a", T0 + 1));
    // Watermark T0 + 60000: the oldest on-time event (T0 + 60000) has window (T0, T0 + 60000].
    const s = store.add(tx("a", T0 + 70_000));
    assert.deepEqual(times(s), [1, 70_000]);
    assert.equal(store.watermarkMs, T0 + 60_000);
  });
});

describe("watermark and lateness", () => {
  it("watermark = max event time - allowed lateness; exactly at it is on time", () => {
    const store = new WindowStore({ allowedLatenessMs: 10_000 });
    assert.equal(store.classify(0), "on-time");
    store.add(tx("a", T0 + 100_000));
    assert.equal(store.watermarkMs, T0 + 90_000);
    assert.equal(store.classify(T0 + 90_000), "on-time");
    assert.equal(store.classify(T0 + 89_999), "late");
    // An older event does not move the watermark back.
    store.add(tx("b", T0 + 95_000));
    assert.equal(store.watermarkMs, T0 + 90_000);
    assert.equal(store.maxEventTimeMs, T0 + 100_000);
  });

  it("a late event still within the window span is stored and flagged late", () => {
    const store = new WindowStore();
    store.add(tx("a", T0 + 100_000));
    const s = store.add(tx("a", T0 + 50_000));
    assert.equal(s.curLate, true);
    assert.equal(s.curIndex, 0);
    assert.deepEqual(times(s), [50_000, 100_000]);
    assert.equal(s.historyCount, 2);
    assert.equal(store.stats().lateEvents, 1);
    assert.equal(store.stats().tooLateForWindow, 0);
  });

  it("a late event too old for any window only updates history", () => {
    const store = new WindowStore();
    store.add(tx("a", T0 + 100_000));
    const s = store.add(tx("a", T0 + 30_000, { amountMinor: 3000 }));
    assert.equal(s.curLate, true);
    assert.equal(s.curIndex, -1);
    assert.deepEqual(times(s), [100_000]);
    assert.equal(s.historyCount, 2);
    assert.equal(s.historyMean, 2000);
    assert.equal(store.stats().tooLateForWindow, 1);
  });

  it("a brand-new account seen only through a too-late event is still evicted later", () => {
    const store = new WindowStore({ historyTtlMs: 0 });
    store.add(tx("a", T0 + 100_000));
    store.add(tx("ghost", T0));
    assert.equal(store.size, 2);
    for (let i = 1; i <= 20; i++) store.add(tx("a", T0 + 100_000 + i * 1000));
    assert.equal(store.get("ghost"), undefined);
  });
});

describe("out-of-order insertion", () => {
  it("orders window contents by event time, not arrival", () => {
    const store = new WindowStore();
    store.add(tx("a", T0 + 1000));
    store.add(tx("a", T0 + 3000));
    const s = store.add(tx("a", T0 + 2000));
    assert.deepEqual(times(s), [1000, 2000, 3000]);
    assert.equal(s.curIndex, 1);
    assert.equal(s.curNewest, false);
    assert.equal(s.curLate, false);
  });

  it("keeps arrival order among equal event times", () => {
    const store = new WindowStore();
    store.add(tx("a", T0, { amountMinor: 1 }));
    store.add(tx("a", T0 + 5, { amountMinor: 2 }));
    const s = store.add(tx("a", T0, { amountMinor: 3 }));
    assert.deepEqual(
      s.events().map((e) => e.amountMinor),
      [1, 3, 2],
    );
    assert.equal(s.curIndex, 1);
  });

  it("stays sorted under random shuffles within the lateness, across ring growth and wrap", () => {
    const store = new WindowStore();
    let expected: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const ts = Array.from({ length: 16 }, (_, i) => batch * 3000 + i * 200);
      for (let i = ts.length - 1; i > 0; i--) {
        const j = (i * 7919 + batch * 104_729) % (i + 1);
        [ts[i], ts[j]] = [ts[j]!, ts[i]!];
      }
      for (const t of ts) {
        const s = store.add(tx("a", T0 + t));
        assert.equal(s.events()[s.curIndex]!.eventTimeMs, T0 + t);
        expected.push(t);
      }
    }
    expected.sort((x, y) => x - y);
    const s = store.get("a")!;
    const horizon = store.watermarkMs - store.windowMs - T0;
    expected = expected.filter((t) => t > horizon);
    const got = times(s);
    assert.deepEqual(
      got,
      [...got].sort((x, y) => x - y),
    );
    // Pruning happens on the account's own adds, so the ring may still hold a few older events.
    assert.deepEqual(got.slice(got.length - expected.length), expected);
  });

  it("tracks the newest event and its predecessor for geo-velocity", () => {
    const store = new WindowStore();
    store.add(tx("a", T0, { lat: 1, lon: 1 }));
    let s = store.add(tx("a", T0 + 1000, { lat: 2, lon: 2 }));
    assert.equal(s.curNewest, true);
    assert.deepEqual([s.prevTimeMs - T0, s.prevLat, s.lastLat], [0, 1, 2]);
    s = store.add(tx("a", T0 + 500, { lat: 9, lon: 9 }));
    assert.equal(s.curNewest, false);
    assert.deepEqual([s.lastTimeMs - T0, s.lastLat], [1000, 2]);
  });
});

describe("ring summaries", () => {
  it("running sums give exact window sums and bounds stay conservative, in any arrival order", () => {
    const store = new WindowStore({ maxEventsPerAccount: 64 });
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    let clock = T0;
    for (let n = 0; n < 5000; n++) {
      clock += Math.floor(rnd() * 3000);
      const t = clock - Math.floor(rnd() * 9000); // up to 9 s out of order: on time
      const amountMinor = 1 + Math.floor(rnd() * 100_000);
      const country = rnd() < 0.9 ? "FR" : "DE";
      const s = store.add(tx("a", t, { amountMinor, country }));
      const events = s.events();
      const inWindow = events.filter((e) => e.eventTimeMs > t - 60_000 && e.eventTimeMs <= t);
      const count = s.countInWindow(t, 60_000);
      assert.equal(count, inWindow.length);
      const expected = inWindow.reduce((sum, e) => sum + e.amountMinor, 0);
      assert.equal(s.sumRange(s.curIndex - count + 1, s.curIndex), expected);
      assert.ok(s.minAmountMinor <= Math.min(...events.map((e) => e.amountMinor)));
      if (s.uniformCountry >= 0) assert.ok(events.every((e) => countryCode(e.country) === s.uniformCountry));
    }
    assert.ok(store.stats().windowOverflowDrops === 0);
  });

  it("reads events through the accessors in event-time order, across ring growth and wrap", () => {
    const store = new WindowStore();
    let s = store.add(tx("a", T0 + 1000, { amountMinor: 1 }));
    for (let i = 2; i <= 40; i++)
      s = store.add(tx("a", T0 + i * 1000, { amountMinor: i, merchant_id: `m${i}` }));
    const events = s.events();
    for (let i = 0; i < s.len; i++) {
      assert.equal(s.at(i, EventField.timeMs), events[i]!.eventTimeMs);
      assert.equal(s.at(i, EventField.amountMinor), events[i]!.amountMinor);
      assert.equal(s.at(i, EventField.merchant), events[i]!.merchant);
      assert.equal(s.at(i, EventField.country), countryCode(events[i]!.country));
      assert.equal(s.at(i, EventField.lat), events[i]!.lat);
      assert.equal(s.at(i, EventField.lon), events[i]!.lon);
    }
    // The window of the newest event: (t - 10 s, t] starts at the first event after t - 10 s.
    const cur = s.curIndex;
    const first = s.firstAfter(T0 + 30_000, cur);
    assert.equal(s.at(first, EventField.timeMs), T0 + 31_000);
    assert.equal(s.firstAfter(T0 + 40_000, cur), cur + 1, "none after the newest: one past it");
    assert.equal(s.firstAfter(Number.NEGATIVE_INFINITY, cur), 0);
  });

  it("an event inserted before all others continues the running sums", () => {
    const store = new WindowStore();
    store.add(tx("a", T0 + 5000, { amountMinor: 10 }));
    store.add(tx("a", T0 + 6000, { amountMinor: 20 }));
    const s = store.add(tx("a", T0 + 4000, { amountMinor: 5 }));
    assert.equal(s.curIndex, 0);
    assert.equal(s.sumRange(0, 0), 5);
    assert.equal(s.sumRange(0, 2), 35);
    assert.equal(s.sumRange(1, 2), 30);
    assert.equal(s.sumRange(2, 2), 20);
  });
});

describe("history", () => {
  it("is an exact mean for the first 1/alpha transactions, prior values exclude the current one", () => {
    const store = new WindowStore({ historyAlpha: 0.1 });
    let s = store.add(tx("a", T0, { amountMinor: 100 }));
    assert.deepEqual([s.priorCount, s.priorMean, s.historyCount, s.historyMean], [0, 0, 1, 100]);
    s = store.add(tx("a", T0 + 1, { amountMinor: 300 }));
    assert.deepEqual([s.priorCount, s.priorMean, s.historyCount, s.historyMean], [1, 100, 2, 200]);
    for (let i = 2; i < 10; i++) s = store.add(tx("a", T0 + i, { amountMinor: 200 }));
    assert.equal(s.historyMean, 200);
    s = store.add(tx("a", T0 + 10, { amountMinor: 1200 }));
    assert.equal(s.priorMean, 200);
    assert.equal(s.historyMean, 300); // EWMA: 200 + 0.1 * (1200 - 200)
  });

  it("survives the window going idle (cold tier) and is forgotten after historyTtlMs", () => {
    const store = new WindowStore({ historyTtlMs: 600_000 });
    for (let i = 0; i < 5; i++) store.add(tx("a", T0 + i * 1000, { amountMinor: 500 }));
    for (let i = 1; i <= 200; i++) store.add(tx("other", T0 + 5000 + i * 1000));
    const a = store.get("a")!;
    assert.equal(a.hot, false);
    assert.equal(a.len, 0);
    assert.equal(a.historyCount, 5);
    const s = store.add(tx("a", T0 + 206_000, { amountMinor: 700 }));
    assert.equal(s, a);
    assert.equal(s.hot, true);
    assert.deepEqual([s.priorCount, s.priorMean, s.len], [5, 500, 1]);
    // Geo-velocity's predecessor survives the ring being released.
    assert.equal(s.prevTimeMs, T0 + 4000);
    for (let i = 1; i <= 700; i++) store.add(tx("other", T0 + 206_000 + i * 1000));
    assert.equal(store.get("a"), undefined);
    assert.ok(store.stats().expired >= 1);
  });
});

describe("eviction keeps memory bounded", () => {
  it("releases rings of idle accounts and, with historyTtlMs 0, forgets them", () => {
    const store = new WindowStore({ historyTtlMs: 0 });
    const n = 20_000;
    let maxSize = 0;
    for (let i = 0; i < n; i++) {
      store.add(tx(`acct-${i}`, T0 + i * 100));
      maxSize = Math.max(maxSize, store.size);
    }
    // Live set: accounts newer than watermark - window = 70 s = 700 accounts at 10/s.
    assert.ok(maxSize < 800, `max size ${maxSize}`);
    const st = store.stats();
    assert.ok(st.hotAccounts <= 710, `hot ${st.hotAccounts}`);
    assert.ok(st.windowEvents <= 710);
    assert.equal(st.expired, n - store.size);
  });

  it("caps cold accounts at maxAccounts, dropping the longest idle first", () => {
    const store = new WindowStore({ maxAccounts: 2000 });
    for (let i = 0; i < 20_000; i++) store.add(tx(`acct-${i}`, T0 + i * 100));
    assert.ok(store.size <= 2000, `size ${store.size}`);
    assert.ok(store.stats().capacityEvictions > 0);
    assert.equal(store.get("acct-0"), undefined);
    assert.ok(store.get("acct-19999") !== undefined);
  });

  it("never drops a hot account to honour maxAccounts", () => {
    const store = new WindowStore({ maxAccounts: 10 });
    for (let i = 0; i < 50; i++) store.add(tx(`acct-${i}`, T0 + i));
    assert.equal(store.size, 50);
    assert.equal(store.stats().capacityEvictions, 0);
  });

  it("drops the oldest events beyond maxEventsPerAccount", () => {
    const store = new WindowStore({ maxEventsPerAccount: 8 });
    let s!: AccountState;
    for (let i = 0; i < 20; i++) s = store.add(tx("a", T0 + i));
    assert.equal(s.len, 8);
    assert.deepEqual(times(s), [12, 13, 14, 15, 16, 17, 18, 19]);
    assert.equal(store.stats().windowOverflowDrops, 12);
  });

  it("an explicit sweep drains due entries", () => {
    const store = new WindowStore({ sweepBudget: 1 });
    for (let i = 0; i < 100; i++) store.add(tx(`acct-${i}`, T0));
    store.add(tx("late-clock", T0 + 200_000));
    while (store.sweep(1000) > 0);
    assert.equal(store.stats().hotAccounts, 1);
    assert.equal(store.stats().windowEvents, 1);
  });
});

describe("cooldown bookkeeping", () => {
  it("is keyed by rule id, one entry per rule", () => {
    const store = new WindowStore();
    const s = store.add(tx("a", T0));
    assert.equal(s.inCooldown("r1", T0), false);
    s.startCooldown("r1", T0 + 100);
    assert.equal(s.inCooldown("r1", T0 + 99), true);
    assert.equal(s.inCooldown("r1", T0 + 100), false);
    assert.equal(s.inCooldown("r2", T0 + 50), false);
    s.startCooldown("r2", T0 + 500);
    s.startCooldown("r1", T0 + 700);
    assert.deepEqual(s.cooldownRuleIds, ["r1", "r2"]);
    assert.equal(s.inCooldown("r1", T0 + 600), true);
  });
});

describe("encodings and options", () => {
  it("packs countries exactly and hashes merchants stably", () => {
    assert.equal(countryFromCode(countryCode("FR")), "FR");
    assert.notEqual(countryCode("FR"), countryCode("RF"));
    assert.equal(merchantHash("m-1"), merchantHash("m-1"));
    assert.notEqual(merchantHash("m-1"), merchantHash("m-2"));
  });

  it("rejects invalid options with a config error naming the field", () => {
    assert.throws(
      () => new WindowStore({ windowMs: 0 }),
      (e) => isPaystreamError(e) && /window\.windowMs/.test(e.message),
    );
    assert.throws(
      () => new WindowStore({ historyAlpha: 2 }),
      (e) => isPaystreamError(e) && /historyAlpha/.test(e.message),
    );
  });
});

describe("dedup in the window: recordedOffset", () => {
  it("finds an event by account, event time and transaction_id, with the offset it was added at", () => {
    const w = new WindowStore({ windowMs: 60_000, allowedLatenessMs: 10_000 });
    const a = tx("acct-r", T0);
    const b = tx("acct-r", T0); // same millisecond, another id
    w.add(a, undefined, 7);
    w.add(b, undefined, 8);
    assert.equal(w.recordedOffset(a), 7);
    assert.equal(w.recordedOffset(b), 8);
    assert.equal(w.recordedOffset({ ...a, eventTimeMs: T0 + 1 }), NOT_RECORDED, "another event time");
    assert.equal(w.recordedOffset({ ...a, account_id: "acct-other" }), NOT_RECORDED, "another account");
    assert.equal(w.recordedOffset({ ...a, transaction_id: "tx-none" }), NOT_RECORDED, "another id");
  });

  it("keeps the ids through out-of-order inserts and ring growth, and forgets them as events leave the window", () => {
    const w = new WindowStore({ windowMs: 60_000, allowedLatenessMs: 10_000 });
    const txs = [5, 1, 9, 3, 7, 2, 8, 6, 4].map((s) => tx("acct-g", T0 + s * 1000));
    for (const [i, t] of txs.entries()) w.add(t, undefined, 100 + i);
    for (const [i, t] of txs.entries()) assert.equal(w.recordedOffset(t), 100 + i);
    // 80 s later: the watermark passes every earlier event's window.
    w.add(tx("acct-g", T0 + 90_000), undefined, 200);
    for (const t of txs) assert.equal(w.recordedOffset(t), NOT_RECORDED);
  });

  it("transactionIdHash is exact in a double and tells near ids apart", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 100_000; i++) {
      const h = transactionIdHash(`tx-${i}`);
      assert.ok(Number.isSafeInteger(h) && h >= 0 && h < 2 ** 52);
      seen.add(h);
    }
    assert.equal(seen.size, 100_000);
    assert.equal(transactionIdHash("abc"), transactionIdHash("abc"));
  });
});

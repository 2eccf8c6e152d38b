import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type DedupClaim,
  Deduper,
  InMemorySharedDedupStore,
  type SharedDedupStore,
  TtlIdSet,
} from "../../../src/core/dedup.ts";
import { isPaystreamError } from "../../../src/core/errors.ts";

const T0 = 1_000_000;

/** Records every call, so tests can count round trips and see what was asked. */
class SpyStore implements SharedDedupStore {
  readonly inner: SharedDedupStore;
  calls: DedupClaim[][] = [];
  failNext = false;
  constructor(inner: SharedDedupStore) {
    this.inner = inner;
  }
  claim(claims: readonly DedupClaim[]): Promise<boolean[]> {
    this.calls.push([...claims]);
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("redis down"));
    }
    return this.inner.claim(claims);
  }
}

const txs = (...ids: string[]) => ids.map((transaction_id) => ({ transaction_id }));
/** Owner naming a Kafka record: topic/partition/offset. */
const at = (...offsets: number[]) => offsets.map((o) => `payments.transactions/0/${o}`);

describe("TtlIdSet", () => {
  it("remembers ids for at least ttl and forgets them by 1.5 x ttl", () => {
    const s = new TtlIdSet(1000);
    s.add("a", T0);
    assert.equal(s.has("a", T0), true);
    assert.equal(s.has("a", T0 + 999), true);
    assert.equal(s.has("a", T0 + 1000), true);
    assert.equal(s.has("a", T0 + 1500), false);
  });

  it("an id added late in a generation still lives at least ttl", () => {
    const s = new TtlIdSet(1000);
    s.add("x", T0); // starts the clock: rotations at T0+500, T0+1000, ...
    s.add("a", T0 + 499);
    assert.equal(s.has("a", T0 + 1499), true);
    assert.equal(s.has("a", T0 + 1500), false);
  });

  it("finds ids in every generation and refreshes on re-add", () => {
    const s = new TtlIdSet(1000);
    s.add("g0", T0);
    s.add("g1", T0 + 600);
    s.add("g2", T0 + 1100);
    assert.deepEqual(s.checkBatch(["g0", "g1", "g2", "nope"], T0 + 1100), [true, true, true, false]);
    s.add("g0", T0 + 1200);
    assert.equal(s.has("g0", T0 + 2000), true);
    assert.equal(s.has("g1", T0 + 2000), false);
  });

  it("a long pause clears everything at once", () => {
    const s = new TtlIdSet(1000);
    for (let i = 0; i < 10; i++) s.add(`id-${i}`, T0);
    assert.equal(s.has("id-3", T0 + 10_000_000), false);
    assert.equal(s.size, 0);
  });

  it("records owners", () => {
    const s = new TtlIdSet(1000);
    s.add("a", T0, "p/1/5");
    s.add("b", T0);
    assert.equal(s.ownerOf("a", T0), "p/1/5");
    assert.equal(s.ownerOf("b", T0), "");
    assert.equal(s.ownerOf("c", T0), undefined);
  });

  it("rotates early at the per-generation cap, so a Map never nears V8's 16.7M limit", () => {
    const s = new TtlIdSet(60_000, { maxEntriesPerGeneration: 100 });
    for (let i = 0; i < 1000; i++) s.add(`id-${i}`, T0);
    assert.ok(s.size <= 300, `size ${s.size}`);
    assert.ok(s.stats().earlyRotations >= 9);
    assert.equal(s.has("id-999", T0), true);
    assert.throws(() => new TtlIdSet(1000, { maxEntriesPerGeneration: 20_000_000 }), isPaystreamError);
  });
});

describe("InMemorySharedDedupStore", () => {
  it("first claim wins; the same owner may claim again; another owner may not", async () => {
    const store = new InMemorySharedDedupStore();
    assert.deepEqual(await store.claim([{ id: "a", owner: "o1" }]), [true]);
    assert.deepEqual(
      await store.claim([
        { id: "a", owner: "o1" },
        { id: "a", owner: "o2" },
        { id: "b", owner: "o3" },
      ]),
      [true, false, true],
    );
  });

  it("forgets after its TTL", async () => {
    let now = T0;
    const store = new InMemorySharedDedupStore({ ttlMs: 1000, now: () => now });
    await store.claim([{ id: "a", owner: "o1" }]);
    now += 1000;
    assert.deepEqual(await store.claim([{ id: "a", owner: "o2" }]), [false]);
    now += 1000;
    assert.deepEqual(await store.claim([{ id: "a", owner: "o2" }]), [true]);
  });
});

describe("Deduper", () => {
  it("passes new records and drops resends within a batch and across batches", async () => {
    const spy = new SpyStore(new InMemorySharedDedupStore());
    const d = new Deduper(spy);
    assert.deepEqual(await d.filterBatch(txs("a", "b", "a", "c"), at(1, 2, 3, 4), T0), [
      true,
      true,
      false,
      true,
    ]);
    assert.deepEqual(await d.filterBatch(txs("b", "d"), at(5, 6), T0 + 10), [false, true]);
    const st = d.stats();
    assert.equal(st.duplicates, 2);
    assert.equal(st.localHits, 1);
  });

  it("asks the shared store once per batch, only for ids the local cache does not know", async () => {
    const spy = new SpyStore(new InMemorySharedDedupStore());
    const d = new Deduper(spy);
    await d.filterBatch(txs("a", "b"), at(1, 2), T0);
    await d.filterBatch(txs("a", "c", "b", "e"), at(3, 4, 5, 6), T0 + 10);
    assert.equal(spy.calls.length, 2);
    assert.deepEqual(
      spy.calls[1]!.map((c) => c.id),
      ["c", "e"],
    );
    // A batch fully answered locally makes no round trip.
    assert.deepEqual(await d.filterBatch(txs("a", "c"), at(7, 8), T0 + 20), [false, false]);
    assert.equal(spy.calls.length, 2);
  });

  it("processes a redelivered record again (same owner), locally and after a restart", async () => {
    const shared = new InMemorySharedDedupStore();
    const before = new Deduper(shared);
    assert.deepEqual(await before.filterBatch(txs("a", "b"), at(10, 11), T0), [true, true]);
    // Seek back in the same process (e.g. a sink failed before commit): same records again.
    assert.deepEqual(await before.filterBatch(txs("a", "b"), at(10, 11), T0 + 5), [true, true]);
    // kill -9 after claiming, before committing: a new process replays from the last commit.
    const after = new Deduper(shared);
    assert.deepEqual(await after.filterBatch(txs("a", "b", "b"), at(10, 11, 12), T0 + 100), [
      true,
      true,
      false,
    ]);
    // The resend (offset 12) stays a duplicate whichever replica or process sees it.
    assert.deepEqual(await new Deduper(shared).filterBatch(txs("b"), at(12), T0 + 200), [false]);
    assert.deepEqual(await after.filterBatch(txs("b"), at(12), T0 + 200), [false]);
  });

  it("a duplicate found by another replica's claim is remembered locally", async () => {
    const shared = new InMemorySharedDedupStore();
    await new Deduper(shared).filterBatch(txs("a"), at(1), T0);
    const spy = new SpyStore(shared);
    const d = new Deduper(spy);
    assert.deepEqual(await d.filterBatch(txs("a"), at(2), T0), [false]);
    assert.deepEqual(await d.filterBatch(txs("a"), at(2), T0 + 1), [false]);
    assert.equal(spy.calls.length, 1);
  });

  it("expires local entries after localTtlMs and falls back to the shared store", async () => {
    let now = T0;
    const spy = new SpyStore(new InMemorySharedDedupStore({ ttlMs: 60_000, now: () => now }));
    const d = new Deduper(spy, { localTtlMs: 1000 });
    await d.filterBatch(txs("a"), at(1), now);
    now += 5000;
    assert.deepEqual(await d.filterBatch(txs("a"), at(2), now), [false]);
    assert.equal(spy.calls.length, 2);
  });

  it("a failed shared call rejects and records nothing, so the batch can be retried", async () => {
    const spy = new SpyStore(new InMemorySharedDedupStore());
    const d = new Deduper(spy);
    spy.failNext = true;
    await assert.rejects(d.filterBatch(txs("a", "b"), at(1, 2), T0), /redis down/);
    assert.deepEqual(await d.filterBatch(txs("a", "b"), at(1, 2), T0), [true, true]);
  });

  it("rejects a store that answers the wrong number of claims, and mismatched owners", async () => {
    const broken: SharedDedupStore = { claim: () => Promise.resolve([true]) };
    await assert.rejects(new Deduper(broken).filterBatch(txs("a", "b"), at(1, 2), T0), isPaystreamError);
    await assert.rejects(new Deduper(broken).filterBatch(txs("a", "b"), at(1), T0), isPaystreamError);
  });
});

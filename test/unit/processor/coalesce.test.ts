import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Coalescer } from "../../../src/processor/coalesce.ts";
import { waitFor } from "../../helpers/fixtures.ts";

/** A write that records what it got and finishes when the test says so. */
function gatedWriter() {
  const calls: { items: number[]; refs: string[]; done: () => void; fail: (e: Error) => void }[] = [];
  const write = (items: number[], refs: string[]) =>
    new Promise<void>((done, fail) => {
      calls.push({ items: [...items], refs: [...refs], done, fail });
    });
  return { calls, write };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("Coalescer", () => {
  it("writes the first batch at once, and everything queued meanwhile as one write, in order", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 100);
    const settled: number[] = [];
    const a = c.push([1, 2], ["a", "a"]).then(() => settled.push(1));
    await tick();
    assert.equal(w.calls.length, 1, "the first write starts without waiting");
    const b = c.push([3], ["b"]).then(() => settled.push(2));
    const d = c.push([4, 5], ["d", "d"]).then(() => settled.push(3));
    assert.equal(c.pending, 5);
    await tick();
    assert.equal(w.calls.length, 1, "nothing else while a write runs");
    w.calls[0]!.done();
    await a;
    await tick();
    assert.deepEqual(w.calls[1]!.items, [3, 4, 5]);
    assert.deepEqual(w.calls[1]!.refs, ["b", "d", "d"], "references stay aligned with their items");
    assert.deepEqual(settled, [1], "later batches wait for the write that carries them");
    w.calls[1]!.done();
    await Promise.all([b, d]);
    assert.deepEqual(settled, [1, 2, 3]);
    assert.equal(c.pending, 0);
  });

  it("never merges past maxItems, but always takes at least one batch", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 3);
    const all = [c.push([1], ["x"]), c.push([2, 3], ["y", "y"]), c.push([4, 5, 6, 7], ["z", "z", "z", "z"])];
    await tick();
    w.calls[0]!.done();
    await tick();
    assert.deepEqual(w.calls[1]!.items, [2, 3], "the 4-item batch would exceed 3");
    w.calls[1]!.done();
    await tick();
    assert.deepEqual(w.calls[2]!.items, [4, 5, 6, 7], "a batch bigger than maxItems goes alone");
    w.calls[2]!.done();
    await Promise.all(all);
  });

  it("rejects exactly the batches of a failed write and goes on with the next", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 100);
    const first = c.push([1], ["a"]);
    await tick();
    const second = c.push([2], ["b"]);
    const third = c.push([3], ["c"]);
    w.calls[0]!.fail(new Error("boom"));
    await assert.rejects(first, /boom/);
    await tick();
    w.calls[1]!.fail(new Error("again"));
    await assert.rejects(second, /again/);
    await assert.rejects(third, /again/);
    assert.equal(c.pending, 0);
    const fourth = c.push([4], ["d"]);
    await tick();
    w.calls[2]!.done();
    await fourth;
  });

  it("resolves an empty push without writing", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 10);
    await c.push([], []);
    assert.equal(w.calls.length, 0);
  });
});

describe("Coalescer with several writers", () => {
  it("runs up to `concurrency` writes at once and merges only what queues behind them", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 100, 2);
    const all = [c.push([1], ["a"]), c.push([2], ["b"]), c.push([3], ["c"]), c.push([4], ["d"])];
    await tick();
    assert.deepEqual(
      w.calls.map((x) => x.items),
      [[1], [2]],
      "two writes start at once",
    );
    w.calls[1]!.done();
    await tick();
    assert.deepEqual(w.calls[2]!.items, [3, 4], "the freed slot takes everything queued");
    w.calls[0]!.done();
    w.calls[2]!.done();
    await Promise.all(all);
    assert.equal(c.pending, 0);
  });
});

describe("Coalescer linger: writes sized by what is waiting", () => {
  it("a free slot waits for fillItems, then writes everything waiting as one write", async () => {
    const w = gatedWriter();
    let now = 0;
    const c = new Coalescer(w.write, 100, { lingerMs: 10_000, fillItems: 5, now: () => now });
    const all = [c.push([1, 2], ["a", "a"]), c.push([3, 4], ["b", "b"])];
    await tick();
    assert.equal(w.calls.length, 0, "4 items, below fillItems, within the linger: no write yet");
    now = 10;
    all.push(c.push([5], ["c"]));
    await tick();
    assert.equal(w.calls.length, 1, "the 5th item fills the write: it starts at once");
    assert.deepEqual(w.calls[0]!.items, [1, 2, 3, 4, 5]);
    w.calls[0]!.done();
    await Promise.all(all);
    assert.equal(c.pending, 0);
  });

  it("after lingerMs what waits is written even if fewer than fillItems", async () => {
    const w = gatedWriter();
    let now = 0;
    const c = new Coalescer(w.write, 100, { lingerMs: 50, fillItems: 1000, now: () => now });
    const first = c.push([1], ["a"]);
    await tick();
    assert.equal(w.calls.length, 0);
    now = 50;
    const second = c.push([2], ["b"]);
    await tick();
    assert.deepEqual(
      w.calls.map((x) => x.items),
      [[1, 2]],
      "the oldest waited lingerMs: both go",
    );
    w.calls[0]!.done();
    await Promise.all([first, second]);
  });

  it("the linger timer writes a lone small batch without another push", async () => {
    const w = gatedWriter();
    const c = new Coalescer(w.write, 100, { lingerMs: 5, fillItems: 1000 });
    const only = c.push([7], ["z"]);
    await waitFor(() => w.calls.length === 1, 5_000, "the lingering write");
    assert.deepEqual(w.calls[0]!.items, [7]);
    w.calls[0]!.done();
    await only;
  });

  it("lingers again for what arrives while a write runs, unless it fills a write", async () => {
    const w = gatedWriter();
    const now = 0;
    const c = new Coalescer(w.write, 100, { lingerMs: 50, fillItems: 3, now: () => now });
    const all = [c.push([1, 2, 3], ["a", "a", "a"])];
    await tick();
    assert.equal(w.calls.length, 1);
    all.push(c.push([4], ["b"]));
    w.calls[0]!.done();
    await tick();
    await tick();
    assert.equal(w.calls.length, 1, "one item after the write: it lingers");
    all.push(c.push([5, 6], ["c", "c"]));
    await tick();
    assert.deepEqual(w.calls[1]!.items, [4, 5, 6]);
    w.calls[1]!.done();
    await Promise.all(all);
  });
});

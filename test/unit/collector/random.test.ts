import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AliasTable, hashSeed, Rng } from "../../../src/collector/random.ts";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function draws(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.nextU32());
}

describe("Rng", () => {
  it("repeats its sequence for the same seed and stream, and only then", () => {
    assert.deepEqual(draws(new Rng(42), 100), draws(new Rng(42), 100));
    assert.deepEqual(draws(new Rng("black-friday"), 100), draws(new Rng("black-friday"), 100));
    assert.notDeepEqual(draws(new Rng(42), 100), draws(new Rng(43), 100));
    assert.notDeepEqual(draws(new Rng(42, 0), 100), draws(new Rng(42, 1), 100));
    assert.notDeepEqual(draws(new Rng("a"), 100), draws(new Rng("b"), 100));
  });

  it("reseed restarts exactly like a fresh generator", () => {
    const rng = new Rng(1);
    draws(rng, 17);
    rng.normal(); // leaves a spare Box-Muller value behind
    rng.reseed(9, 3);
    const fresh = new Rng(9, 3);
    assert.equal(rng.normal(), fresh.normal());
    assert.deepEqual(draws(rng, 50), draws(fresh, 50));
  });

  it("hashes seeds: small integers as themselves, everything else to 32 bits", () => {
    assert.equal(hashSeed(42), 42);
    assert.equal(hashSeed("42"), 42, "a seed from a flag or env var means the same as the number");
    assert.notEqual(hashSeed("042"), 42);
    for (const s of [-1, 2 ** 40, 1.5, "", "x", Date.UTC(2025, 10, 28)]) {
      const h = hashSeed(s);
      assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32, `${s} -> ${h}`);
    }
  });

  it("keeps every helper inside its range and hits both ends of int()", () => {
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 20_000; i++) {
      const f = rng.float();
      assert.ok(f >= 0 && f < 1);
      const b = rng.below(7);
      assert.ok(Number.isInteger(b) && b >= 0 && b < 7);
      const k = rng.int(-3, 3);
      assert.ok(Number.isInteger(k) && k >= -3 && k <= 3);
      seen.add(k);
      const u = rng.uniform(10, 20);
      assert.ok(u >= 10 && u < 20);
      assert.ok(rng.exponential(5) >= 0);
    }
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      [-3, -2, -1, 0, 1, 2, 3],
    );
  });

  it("is roughly uniform (chi-square over 10 buckets)", () => {
    const rng = new Rng(11);
    const n = 100_000;
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < n; i++) counts[rng.below(10)]!++;
    const expected = n / 10;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 30, `chi2 ${chi2}`); // 9 degrees of freedom: p < 0.001 above 27.9
  });

  it("draws normals and log-normals with the right moments", () => {
    const rng = new Rng(3);
    const n = 200_000;
    let sum = 0;
    let sq = 0;
    const logs: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = rng.normal(5, 2);
      sum += x;
      sq += x * x;
      logs.push(rng.logNormal(Math.log(30), 0.7));
    }
    const mean = sum / n;
    const sd = Math.sqrt(sq / n - mean * mean);
    assert.ok(Math.abs(mean - 5) < 0.02, `mean ${mean}`);
    assert.ok(Math.abs(sd - 2) < 0.02, `sd ${sd}`);
    logs.sort((a, b) => a - b);
    const median = logs[n / 2]!;
    assert.ok(Math.abs(median - 30) < 0.5, `median ${median}`);
  });

  it("picks by weight and from arrays", () => {
    const rng = new Rng(5);
    const counts = [0, 0, 0];
    for (let i = 0; i < 60_000; i++) counts[rng.weighted([1, 0, 2])]!++;
    assert.equal(counts[1], 0);
    assert.ok(Math.abs(counts[2]! / counts[0]! - 2) < 0.1, `${counts}`);
    const items = ["a", "b", "c"] as const;
    const picked = new Set(Array.from({ length: 200 }, () => rng.pick(items)));
    assert.deepEqual([...picked].sort(), ["a", "b", "c"]);
  });

  it("makes version-4-shaped, unique, reproducible uuids", () => {
    const a = new Rng(99);
    const b = new Rng(99);
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const u = a.uuid();
      assert.match(u, UUID_V4);
      assert.equal(u, b.uuid());
      seen.add(u);
    }
    assert.equal(seen.size, 100_000);
    assert.match(a.hex32(), /^[0-9a-f]{8}$/);
  });

  it("never calls Math.random or crypto.randomUUID", () => {
    const random = Math.random;
    const randomUUID = crypto.randomUUID;
    Math.random = () => assert.fail("Math.random used");
    crypto.randomUUID = () => assert.fail("crypto.randomUUID used");
    try {
      const rng = new Rng("no-globals");
      for (let i = 0; i < 1000; i++) {
        rng.uuid();
        rng.normal();
        rng.hex32();
      }
    } finally {
      Math.random = random;
      crypto.randomUUID = randomUUID;
    }
  });
});

describe("AliasTable", () => {
  it("samples in proportion to the weights and never picks a zero weight", () => {
    const weights = [5, 0, 1, 3, 0.5, 0.5];
    const table = new AliasTable(weights);
    assert.equal(table.size, weights.length);
    const rng = new Rng(21);
    const n = 400_000;
    const counts = new Array<number>(weights.length).fill(0);
    for (let i = 0; i < n; i++) counts[table.sample(rng)]!++;
    const total = weights.reduce((s, w) => s + w, 0);
    weights.forEach((w, i) => {
      const p = counts[i]! / n;
      assert.ok(Math.abs(p - w / total) < 0.005, `index ${i}: ${p} vs ${w / total}`);
    });
    assert.equal(counts[1], 0);
    assert.equal(counts[4]! > 0, true);
  });

  it("handles a single weight and heavy skew", () => {
    const rng = new Rng(1);
    assert.equal(new AliasTable([3]).sample(rng), 0);
    const skew = new AliasTable([1e6, 1, 1]);
    let rare = 0;
    for (let i = 0; i < 100_000; i++) if (skew.sample(rng) !== 0) rare++;
    assert.ok(rare < 20, `rare ${rare}`);
  });

  it("rejects empty, negative, non-finite and all-zero weights", () => {
    assert.throws(() => new AliasTable([]), RangeError);
    assert.throws(() => new AliasTable([1, -1]), RangeError);
    assert.throws(() => new AliasTable([1, Number.NaN]), RangeError);
    assert.throws(() => new AliasTable([1, Number.POSITIVE_INFINITY]), RangeError);
    assert.throws(() => new AliasTable([0, 0]), RangeError);
  });
});

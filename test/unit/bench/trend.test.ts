/** The soak's slope and "flat" judgement (bench/lib/trend.ts). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { leastSquares, trend } from "../../../bench/lib/trend.ts";

const line = (a: number, b: number, xs: number[]) => xs.map((x) => [x, a + b * x] as const);
const xs = Array.from({ length: 31 }, (_, i) => i * 60);

describe("leastSquares", () => {
  it("recovers an exact line", () => {
    const f = leastSquares(line(5, 0.5, [0, 10, 20, 30]));
    assert.ok(Math.abs(f.slope - 0.5) < 1e-12);
    assert.ok(Math.abs(f.intercept - 5) < 1e-12);
  });

  it("fits the middle of symmetric noise", () => {
    const f = leastSquares([
      [0, 1],
      [0, 3],
      [10, 1],
      [10, 3],
    ]);
    assert.equal(f.slope, 0);
    assert.equal(f.intercept, 2);
  });

  it("has slope 0 for one distinct x", () => {
    assert.equal(leastSquares([[3, 7]]).slope, 0);
    assert.equal(leastSquares([]).slope, 0);
  });
});

describe("trend", () => {
  it("reports slope per minute, start, end and the change over the span", () => {
    // +2 per minute over 30 min from 100: change 60 on a mean of 130 → 46%, not flat.
    const t = trend(line(100, 2 / 60, xs), { fromS: 0 });
    assert.ok(Math.abs(t.slopePerMin - 2) < 1e-9);
    assert.ok(Math.abs(t.change - 60) < 1e-6);
    assert.equal(t.start, 102);
    assert.equal(t.end, 158);
    assert.equal(t.flat, false);
    assert.ok(t.relativeChange > 0.4);
  });

  it("calls a series flat when the fitted change is under the share of its mean", () => {
    const noisy = xs.map((x, i) => [x, 500 + (i % 2 ? 40 : -40) + x / 6000] as const);
    const t = trend(noisy, { fromS: 0 });
    assert.equal(t.flat, true);
  });

  it("uses the absolute floor for series that sit near zero", () => {
    const lag = xs.map((x, i) => [x, i % 3 === 0 ? 0 : 200 + x / 10] as const);
    assert.equal(trend(lag, { fromS: 0 }).flat, false);
    assert.equal(trend(lag, { fromS: 0, flatFloor: 3000 }).flat, true);
  });

  it("judges only from fromS on and skips unread samples", () => {
    // Grows until 10 min, then stays: flat when judged from 10 min.
    const plateau = xs.map((x) => [x, Math.min(x, 600)] as const);
    assert.equal(trend(plateau, { fromS: 0 }).flat, false);
    const t = trend([...plateau, [1900, null]], { fromS: 600 });
    assert.equal(t.flat, true);
    assert.equal(t.fromS, 600);
    assert.equal(t.n, 21);
  });

  it("does not judge fewer than three samples", () => {
    assert.equal(
      trend(
        [
          [0, 1],
          [60, 2],
        ],
        { fromS: 0 },
      ).flat,
      null,
    );
  });
});

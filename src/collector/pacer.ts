/**
 * Rate pacing for the collector. The target is a straight line from the moment the rate was
 * set: after t seconds at rate r, r·t records are due. Each tick sends what is due, so the
 * rate is exact over any window regardless of tick jitter, and a new rate takes effect on
 * the next tick (a few ms).
 *
 * When the sink pushes back (Kafka slower than the target), the debt is capped at one
 * second of records: the collector then runs as fast as the sink allows and reports the
 * shortfall in its actual-rate metric, instead of buffering without bound or bursting to
 * "catch up" later.
 */
export class Pacer {
  #rate = 0;
  #anchorMs = 0;
  #sentSinceAnchor = 0;

  constructor(rate: number, nowMs: number) {
    this.setRate(rate, nowMs);
  }

  get rate(): number {
    return this.#rate;
  }

  setRate(rate: number, nowMs: number): void {
    this.#rate = rate;
    this.#anchorMs = nowMs;
    this.#sentSinceAnchor = 0;
  }

  /** Records due now (never negative). */
  due(nowMs: number): number {
    if (this.#rate === 0) return 0;
    let owed = Math.floor((this.#rate * (nowMs - this.#anchorMs)) / 1000) - this.#sentSinceAnchor;
    if (owed > this.#rate) {
      // Fell more than a second behind: forgive the debt rather than burst.
      this.setRate(this.#rate, nowMs - 1000);
      owed = this.#rate;
    }
    return Math.max(owed, 0);
  }

  sent(n: number): void {
    this.#sentSinceAnchor += n;
  }
}

/** Counts per second over a sliding window (default 10 s) for the actual-rate figure. */
export class RateMeter {
  readonly #buckets: Float64Array;
  readonly #stamps: Float64Array;
  readonly #seconds: number;
  readonly #startSec: number;

  constructor(seconds = 10, nowMs = Date.now()) {
    this.#seconds = seconds;
    this.#startSec = Math.floor(nowMs / 1000);
    this.#buckets = new Float64Array(seconds + 1);
    this.#stamps = new Float64Array(seconds + 1).fill(-1);
  }

  add(n: number, nowMs: number): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.#buckets.length;
    if (this.#stamps[i] !== sec) {
      this.#stamps[i] = sec;
      this.#buckets[i] = 0;
    }
    this.#buckets[i]! += n;
  }

  /** Mean rate over the last `seconds` complete seconds (fewer right after start). */
  rate(nowMs: number): number {
    const cur = Math.floor(nowMs / 1000);
    const span = Math.max(1, Math.min(this.#seconds, cur - this.#startSec));
    let sum = 0;
    for (let k = 1; k <= span; k++) {
      const sec = cur - k;
      const i = sec % this.#buckets.length;
      if (this.#stamps[i] === sec) sum += this.#buckets[i]!;
    }
    return sum / span;
  }
}

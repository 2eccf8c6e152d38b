/**
 * Seeded randomness for the traffic generator.
 *
 * Everything the collector emits must be reproducible from a seed (a failing test or a
 * surprising alert can then be replayed byte for byte), so generation never touches
 * Math.random or crypto.randomUUID. The core is sfc32: four 32-bit words, passes
 * PractRand to 2^60 bytes, and runs on plain int32 arithmetic that V8 keeps in registers.
 * It is not cryptographic, which is fine: nothing here is a secret.
 */

const TWO_POW_32 = 4294967296;
const TWO_PI = 2 * Math.PI;

/**
 * Reduces a seed to 32 bits. Integers in [0, 2^32), as numbers or decimal strings, are used
 * as they are, so `--seed 42` from a flag or an env var means the same as 42 in code;
 * anything else (words, negatives, Date.now()) is hashed with FNV-1a over its string form.
 */
export function hashSeed(seed: number | string): number {
  const s = String(seed);
  if (/^(0|[1-9]\d{0,9})$/.test(s) && Number(s) < TWO_POW_32) return Number(s);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One splitmix32 step: a strong 32-bit finaliser, used to spread seeds over the state. */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Char codes of the 16 lowercase hex digits. */
const HEX = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));
const fromCharCode = String.fromCharCode;

function hx(x: number, shift: number): number {
  return HEX[(x >>> shift) & 15]!;
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;
  private spare = 0;
  private hasSpare = false;

  /**
   * `stream` selects an independent sequence for the same seed (e.g. one per account), so
   * a value derived for account 7 does not depend on how many other accounts were derived
   * first.
   */
  constructor(seed: number | string = 0, stream = 0) {
    this.reseed(seed, stream);
  }

  /** Restarts the generator in place; lets hot paths reuse one instance instead of allocating. */
  reseed(seed: number | string, stream = 0): void {
    let x = (hashSeed(seed) ^ mix32(stream ^ 0x5bd1e995)) | 0;
    x = mix32(x);
    this.a = mix32(x);
    this.b = mix32(x + 1);
    this.c = mix32(x + 2);
    this.d = mix32(x + 3) | 1;
    this.hasSpare = false;
    // sfc32's first outputs are correlated with the seed words; its authors discard 12.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** Uniform integer in [0, 2^32). */
  nextU32(): number {
    const a = this.a;
    const b = this.b;
    const c = this.c;
    const d = (this.d + 1) | 0;
    const t = (((a + b) | 0) + d) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    this.c = (((c << 21) | (c >>> 11)) + t) | 0;
    this.d = d;
    return t >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of resolution (plenty for a simulation). */
  float(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n). The modulo bias of float scaling is below n / 2^32. */
  below(n: number): number {
    return Math.floor((this.nextU32() / TWO_POW_32) * n);
  }

  /** Uniform integer in [min, max], both ends included. */
  int(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  /** Uniform float in [min, max). */
  uniform(min: number, max: number): number {
    return min + this.float() * (max - min);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** Index drawn with probability proportional to its weight; linear, for short lists. */
  weighted(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i]!;
    let r = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  /** Gaussian via Box-Muller; the second value of each pair is kept for the next call. */
  normal(mean = 0, sd = 1): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return mean + sd * this.spare;
    }
    const u1 = 1 - this.float(); // (0, 1]: log(0) would be -Infinity
    const u2 = this.float();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(TWO_PI * u2);
    this.hasSpare = true;
    return mean + sd * r * Math.cos(TWO_PI * u2);
  }

  /** exp(N(mu, sigma)): median e^mu, mean e^(mu + sigma^2 / 2). */
  logNormal(mu: number, sigma: number): number {
    return Math.exp(mu + sigma * this.normal());
  }

  exponential(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }

  /** Eight lowercase hex digits. */
  hex32(): string {
    const x = this.nextU32();
    return fromCharCode(hx(x, 28), hx(x, 24), hx(x, 20), hx(x, 16), hx(x, 12), hx(x, 8), hx(x, 4), hx(x, 0));
  }

  /**
   * A string shaped like an RFC 9562 version-4 UUID, drawn from this generator. One
   * fromCharCode call yields a flat string: concatenating pieces would build a rope that
   * every later copy of the record has to walk.
   */
  uuid(): string {
    const x = this.nextU32();
    const y = (this.nextU32() & 0xffff0fff) | 0x4000; // version 4
    const z = ((this.nextU32() & 0x3fffffff) | 0x80000000) >>> 0; // variant 10xx
    const w = this.nextU32();
    // biome-ignore format: one group per uuid field reads better than one argument per line
    return fromCharCode(
      hx(x, 28), hx(x, 24), hx(x, 20), hx(x, 16), hx(x, 12), hx(x, 8), hx(x, 4), hx(x, 0), 45,
      hx(y, 28), hx(y, 24), hx(y, 20), hx(y, 16), 45,
      hx(y, 12), hx(y, 8), hx(y, 4), hx(y, 0), 45,
      hx(z, 28), hx(z, 24), hx(z, 20), hx(z, 16), 45,
      hx(z, 12), hx(z, 8), hx(z, 4), hx(z, 0),
      hx(w, 28), hx(w, 24), hx(w, 20), hx(w, 16), hx(w, 12), hx(w, 8), hx(w, 4), hx(w, 0),
    );
  }
}

/**
 * Walker/Vose alias table: O(n) to build, O(1) per draw whatever the weights, which matters
 * when drawing one of a million accounts by activity 100 000 times a second.
 */
export class AliasTable {
  readonly size: number;
  /** Pairs (acceptance probability, alias index): one cache line per draw, not two. */
  private readonly cells: Float64Array;

  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    if (n === 0) throw new RangeError("alias table needs at least one weight");
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = weights[i]!;
      if (!(w >= 0) || !Number.isFinite(w))
        throw new RangeError(`weight ${i} is ${w}, must be finite and >= 0`);
      total += w;
    }
    if (!(total > 0)) throw new RangeError("alias table needs a positive total weight");
    this.size = n;
    const cells = new Float64Array(2 * n);
    const scaled = new Float64Array(n);
    const small = new Int32Array(n);
    const large = new Int32Array(n);
    let ns = 0;
    let nl = 0;
    for (let i = 0; i < n; i++) {
      scaled[i] = (weights[i]! * n) / total;
      if (scaled[i]! < 1) small[ns++] = i;
      else large[nl++] = i;
    }
    while (ns > 0 && nl > 0) {
      const s = small[--ns]!;
      const l = large[nl - 1]!;
      cells[2 * s] = scaled[s]!;
      cells[2 * s + 1] = l;
      scaled[l] = scaled[l]! + scaled[s]! - 1;
      if (scaled[l]! < 1) {
        nl--;
        small[ns++] = l;
      }
    }
    // Whatever is left is 1 up to rounding error.
    while (nl > 0) {
      const l = large[--nl]!;
      cells[2 * l] = 1;
      cells[2 * l + 1] = l;
    }
    while (ns > 0) {
      const s = small[--ns]!;
      cells[2 * s] = 1;
      cells[2 * s + 1] = s;
    }
    this.cells = cells;
  }

  sample(rng: Rng): number {
    const i = 2 * rng.below(this.size);
    return rng.float() < this.cells[i]! ? i >>> 1 : this.cells[i + 1]!;
  }
}

/**
 * One account's event-time state (window.ts keeps one per account): the ring of its window
 * events, long-run amount history, the newest location, and per-rule cooldowns.
 *
 * The ring's memory layout is private to this module. The rule evaluator reads events
 * through at(i, EventField.x), firstAfter() and sumRange(): small methods V8 inlines, so the
 * hot path stays as cheap as reading the array in place and allocates nothing. WindowStore
 * changes the ring only through attachRing/detachRing/pruneThrough/insert/grow/dropOldest,
 * and the scalar fields below directly.
 */

import type { Transaction } from "../contracts/transaction.ts";

/**
 * Event record layout inside the ring: STRIDE doubles per event. Integers up to 2^53 are
 * exact in a double, so amounts (cents), running sums, 32-bit merchant hashes and country
 * codes lose nothing, and one array per account beats one per field. F_CUM is a running sum
 * of amounts in ring order (from an arbitrary base), so the sum of any window is one
 * subtraction instead of a scan.
 */
const STRIDE = 9;
const F_TIME = 0;
const F_AMOUNT = 1;
const F_LAT = 2;
const F_LON = 3;
const F_MERCHANT = 4;
const F_COUNTRY = 5;
const F_CUM = 6;
/**
 * Dedup (window-dedup.ts): a 52-bit hash of the event's transaction_id, and the Kafka offset
 * of the record that carried it (-1 when not known: tools replaying without offsets).
 */
const F_ID = 7;
const F_OFFSET = 8;

/** The fields of a window event, for AccountState.at(). */
export const EventField = {
  timeMs: F_TIME,
  amountMinor: F_AMOUNT,
  lat: F_LAT,
  lon: F_LON,
  /** merchantHash(merchant_id). */
  merchant: F_MERCHANT,
  /** countryCode(country). */
  country: F_COUNTRY,
} as const;
export type EventField = (typeof EventField)[keyof typeof EventField];

/** recordedOffset(): no event with that id in the ring. */
export const NOT_RECORDED = -2;

/** Events a new ring holds; rings of this size are pooled by the store. */
export const INITIAL_RING_EVENTS = 4;
/** The ring of a cold account: frozen, so a write to a ring that is not there throws. */
const EMPTY = Object.freeze([]) as unknown as number[];

/**
 * A ring of `events` slots. A plain array of doubles rather than a Float64Array: a typed
 * array allocates an off-heap backing store with external-memory accounting, and add()
 * measured ~20% slower with one (ring creation and growth, more GC); a double array is one
 * on-heap allocation and reads just as fast.
 */
function newRing(events: number): number[] {
  return new Array<number>(events * STRIDE).fill(0.5);
}

/** A window event decoded for tests and debugging (allocates; not for the hot path). */
export interface WindowEventView {
  eventTimeMs: number;
  amountMinor: number;
  lat: number;
  lon: number;
  merchant: number;
  country: string;
}

/** 32-bit FNV-1a: merchants only need to be told apart within one window, not named. */
export function merchantHash(merchantId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < merchantId.length; i++) {
    h ^= merchantId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * 52 bits of hash of a transaction_id, exact in a double, for dedup within an account's
 * window (WindowStore.recordedOffset). Two 32-bit hashes (FNV-1a and a multiply-xorshift)
 * over the UTF-16 code units. It is compared only against the events of one account at one
 * event-time millisecond, so a false match needs two transactions of that account in the
 * same millisecond whose ids collide in 52 bits: about 2^-52 per such pair.
 */
export function transactionIdHash(id: string): number {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x85ebca6b);
    b ^= b >>> 13;
  }
  b = Math.imul(b ^ (b >>> 16), 0xc2b2ae35);
  b ^= b >>> 16;
  return (a >>> 12) * 0x1_0000_0000 + (b >>> 0);
}

/** ISO 3166-1 alpha-2 packed into 16 bits: exact, so distinct-country counts never collide. */
export function countryCode(country: string): number {
  return (country.charCodeAt(0) << 8) | country.charCodeAt(1);
}

export function countryFromCode(code: number): string {
  return String.fromCharCode(code >>> 8, code & 0xff);
}

/**
 * One account's state. The scalar fields are public so the rule evaluator reads them
 * without calls; only WindowStore writes them.
 */
export class AccountState {
  readonly accountId: string;

  /** Ring of window events in event-time order (stable for equal times), STRIDE doubles each. */
  #buf: number[] = EMPTY;
  /** Ring slot of logical index 0 (the oldest event). */
  #head = 0;
  /** Capacity - 1; capacity is a power of two so a slot is (head + i) & mask. */
  #mask = -1;
  /** Events in the ring. */
  len = 0;
  /**
   * Cheap summaries of the ring that let rules skip scans. Both are conservative: they are
   * reset when the ring empties and only widened on insert, never narrowed on prune.
   * uniformCountry: the country code shared by every event in the ring, or -1.
   * minAmountMinor: a lower bound of the amounts in the ring.
   */
  uniformCountry = -1;
  minAmountMinor = 0;

  /** Transactions ever seen (within historyTtlMs idle gaps), late ones included. */
  historyCount = 0;
  /** Mean amount in minor units: exact mean for the first 1/alpha transactions, then EWMA. */
  historyMean = 0;
  /** historyCount / historyMean before the current transaction: what "prior history" means. */
  priorCount = 0;
  priorMean = 0;

  /** Newest event by event time, and the one it replaced (geo-velocity's "previous event"). */
  lastTimeMs = Number.NEGATIVE_INFINITY;
  lastLat = 0;
  lastLon = 0;
  prevTimeMs = Number.NEGATIVE_INFINITY;
  prevLat = 0;
  prevLon = 0;

  /** Set by WindowStore.add for the transaction just added; read by the rule evaluator. */
  curIndex = -1;
  curLate = false;
  /** The current transaction is the newest by event time (prev* is its predecessor). */
  curNewest = false;

  /** Cooldowns as parallel arrays keyed by rule id: null for the vast majority that never alert. */
  cooldownRuleIds: string[] | null = null;
  cooldownUntilMs: number[] | null = null;

  /** Lifecycle: hot = owns a ring; tokens invalidate stale expiry-queue entries. */
  hot = false;
  hotToken = 0;
  coldToken = 0;
  evicted = false;

  constructor(accountId: string) {
    this.accountId = accountId;
  }

  // ---- reading the ring (the rule evaluator) --------------------------------------------

  /** Field of the event at logical index i (0 = oldest, len - 1 = newest by event time). */
  at(i: number, field: EventField): number {
    return this.#buf[((this.#head + i) & this.#mask) * STRIDE + field]!;
  }

  /** Smallest logical index j <= cur whose event time is > cutoffMs (cur + 1 if none): binary search. */
  firstAfter(cutoffMs: number, cur: number): number {
    const buf = this.#buf;
    const h = this.#head;
    const m = this.#mask;
    let lo = 0;
    let hi = cur + 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (buf[((h + mid) & m) * STRIDE + F_TIME]! > cutoffMs) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Sum of amounts of logical indices [from, to] (from <= to), from the running sums. */
  sumRange(from: number, to: number): number {
    const b = this.#buf;
    const first = this.#offset(from);
    return b[this.#offset(to) + F_CUM]! - (b[first + F_CUM]! - b[first + F_AMOUNT]!);
  }

  /**
   * The offset recorded with the event at exactly eventTimeMs whose id hash is idHash, or
   * NOT_RECORDED. A resend carries its original's event time, so only the (usually one)
   * event of that millisecond is compared: a binary search, then a short scan.
   */
  recordedOffset(eventTimeMs: number, idHash: number): number {
    const buf = this.#buf;
    const h = this.#head;
    const m = this.#mask;
    const len = this.len;
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (buf[((h + mid) & m) * STRIDE + F_TIME]! < eventTimeMs) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < len; i++) {
      const o = ((h + i) & m) * STRIDE;
      if (buf[o + F_TIME]! !== eventTimeMs) break;
      if (buf[o + F_ID] === idHash) return buf[o + F_OFFSET]!;
    }
    return NOT_RECORDED;
  }

  /** Events in (endMs - windowMs, endMs]: the window an event at endMs sees (no allocation). */
  countInWindow(endMs: number, windowMs: number): number {
    const start = endMs - windowMs;
    let n = 0;
    for (let i = 0; i < this.len; i++) {
      const t = this.#buf[this.#offset(i) + F_TIME]!;
      if (t > endMs) break;
      if (t > start) n++;
    }
    return n;
  }

  /** Window events in event-time order (allocates: tests and debugging only). */
  events(): WindowEventView[] {
    const out: WindowEventView[] = [];
    for (let i = 0; i < this.len; i++) {
      const o = this.#offset(i);
      const b = this.#buf;
      out.push({
        eventTimeMs: b[o + F_TIME]!,
        amountMinor: b[o + F_AMOUNT]!,
        lat: b[o + F_LAT]!,
        lon: b[o + F_LON]!,
        merchant: b[o + F_MERCHANT]!,
        country: countryFromCode(b[o + F_COUNTRY]!),
      });
    }
    return out;
  }

  /** True while ruleId must stay silent for an event at eventTimeMs. */
  inCooldown(ruleId: string, eventTimeMs: number): boolean {
    const ids = this.cooldownRuleIds;
    if (ids === null) return false;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === ruleId) return eventTimeMs < this.cooldownUntilMs![i]!;
    }
    return false;
  }

  /**
   * Records that ruleId alerted. One entry per rule id that ever fired for the account, so
   * the arrays stay as short as the rule list. Expired entries are not reused for other
   * rules: an out-of-order event within the lateness may still fall inside them.
   */
  startCooldown(ruleId: string, untilMs: number): void {
    if (this.cooldownRuleIds === null) {
      this.cooldownRuleIds = [ruleId];
      this.cooldownUntilMs = [untilMs];
      return;
    }
    const ids = this.cooldownRuleIds;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === ruleId) {
        this.cooldownUntilMs![i] = untilMs;
        return;
      }
    }
    ids.push(ruleId);
    this.cooldownUntilMs!.push(untilMs);
  }

  // ---- changing the ring (WindowStore only) ---------------------------------------------

  /** Ring capacity in events (0 while cold). */
  get capacity(): number {
    return this.#mask + 1;
  }

  get ringFull(): boolean {
    return this.len > this.#mask;
  }

  /** Gives a cold account an empty ring: `pooled` (INITIAL_RING_EVENTS events) or a new one. */
  attachRing(pooled: number[] | undefined): void {
    this.#buf = pooled ?? newRing(INITIAL_RING_EVENTS);
    this.#mask = INITIAL_RING_EVENTS - 1;
    this.#head = 0;
    this.len = 0;
  }

  /** Drops the ring; returns its array when it is of the pooled size. */
  detachRing(): number[] | undefined {
    const buf = this.#buf;
    this.#buf = EMPTY;
    this.#mask = -1;
    this.#head = 0;
    this.len = 0;
    return buf.length === INITIAL_RING_EVENTS * STRIDE ? buf : undefined;
  }

  /** Drops events at or before horizonMs from the old end; returns how many. */
  pruneThrough(horizonMs: number): number {
    const buf = this.#buf;
    let dropped = 0;
    while (this.len > 0 && buf[this.#head * STRIDE + F_TIME]! <= horizonMs) {
      this.#head = (this.#head + 1) & this.#mask;
      this.len--;
      dropped++;
    }
    return dropped;
  }

  /** Drops the oldest event (a full ring at its size cap). */
  dropOldest(): void {
    this.#head = (this.#head + 1) & this.#mask;
    this.len--;
  }

  /** Doubles the ring; returns the old array when it is of the pooled size. */
  grow(): number[] | undefined {
    const cap = this.#mask + 1;
    const next = newRing(cap * 2);
    const buf = this.#buf;
    for (let i = 0; i < cap; i++) {
      const from = ((this.#head + i) & this.#mask) * STRIDE;
      const to = i * STRIDE;
      for (let k = 0; k < STRIDE; k++) next[to + k] = buf[from + k]!;
    }
    this.#buf = next;
    this.#head = 0;
    this.#mask = cap * 2 - 1;
    return buf.length === INITIAL_RING_EVENTS * STRIDE ? buf : undefined;
  }

  /**
   * Inserts in event-time order after any equal times (the ring must not be full); returns
   * the logical index. idHash and offset identify the record for dedup (recordedOffset).
   */
  insert(tx: Transaction, idHash: number, offset: number): number {
    const t = tx.eventTimeMs;
    const amount = tx.amountMinor;
    const country = countryCode(tx.country);
    const buf = this.#buf;
    const m = this.#mask;
    const h = this.#head;
    let i = this.len;
    // Usually zero iterations: events mostly arrive in order, and out-of-order ones are at
    // most the allowed lateness behind, i.e. near the end. Shifted events now follow the
    // new one, so their running sums grow by its amount.
    while (i > 0) {
      const from = ((h + i - 1) & m) * STRIDE;
      if (buf[from + F_TIME]! <= t) break;
      const to = ((h + i) & m) * STRIDE;
      buf[to] = buf[from]!;
      buf[to + 1] = buf[from + 1]!;
      buf[to + 2] = buf[from + 2]!;
      buf[to + 3] = buf[from + 3]!;
      buf[to + 4] = buf[from + 4]!;
      buf[to + 5] = buf[from + 5]!;
      buf[to + 6] = buf[from + 6]! + amount;
      buf[to + 7] = buf[from + 7]!;
      buf[to + 8] = buf[from + 8]!;
      i--;
    }
    const o = ((h + i) & m) * STRIDE;
    let base = 0;
    if (i > 0) {
      base = buf[((h + i - 1) & m) * STRIDE + F_CUM]!;
    } else if (this.len > 0) {
      // Inserted as the oldest: continue from the base of the event now after it.
      const next = ((h + 1) & m) * STRIDE;
      base = buf[next + F_CUM]! - amount - buf[next + F_AMOUNT]!;
    }
    buf[o + F_TIME] = t;
    buf[o + F_AMOUNT] = amount;
    buf[o + F_LAT] = tx.lat;
    buf[o + F_LON] = tx.lon;
    buf[o + F_MERCHANT] = merchantHash(tx.merchant_id);
    buf[o + F_COUNTRY] = country;
    buf[o + F_CUM] = base + amount;
    buf[o + F_ID] = idHash;
    buf[o + F_OFFSET] = offset;
    if (this.len === 0) {
      this.uniformCountry = country;
      this.minAmountMinor = amount;
    } else {
      if (country !== this.uniformCountry) this.uniformCountry = -1;
      if (amount < this.minAmountMinor) this.minAmountMinor = amount;
    }
    this.len++;
    return i;
  }

  /** Logical index i (0 = oldest) to the offset of its record in the ring. */
  #offset(i: number): number {
    return ((this.#head + i) & this.#mask) * STRIDE;
  }
}

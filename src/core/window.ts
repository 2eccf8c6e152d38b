/**
 * Per-account event-time state for the fraud rules: a trailing window of recent events,
 * long-run amount history, the newest location, and per-rule cooldowns.
 *
 * Semantics (docs/rules.md repeats them for rule authors):
 * - The window of an event at time t is (t - windowMs, t]: an event exactly windowMs older
 *   is out, one a millisecond younger is in. Anchoring on the event's own time, not on the
 *   newest time seen, makes an out-of-order event see exactly what it would have seen had
 *   it arrived in order, so results do not depend on arrival order within the lateness.
 * - Watermark = max event time seen - allowedLatenessMs. An event strictly behind it is
 *   late. Late events still update history and, if they can still fall inside a future
 *   on-time event's window (t > watermark - windowMs), are inserted into the window; the
 *   rules never alert on them (see rules.ts).
 * - State lives in two tiers so memory stays bounded without forgetting history:
 *     hot  = ring buffer of window events + everything below; released once the account's
 *            newest event is <= watermark - windowMs (i.e. windowMs + lateness behind the
 *            newest event seen), because no on-time event can see those events any more;
 *     cold = history (count, mean), newest location/time, cooldowns; dropped after
 *            historyTtlMs without events, or earliest-idle-first when maxAccounts is hit.
 *   Expiry is driven by two FIFO deadline queues, checked a few entries per add(): O(1)
 *   amortised, no timers, no full scans, and nothing to do for an account between its
 *   deadlines (an event only bumps lastTimeMs; the queue entry is re-checked lazily).
 *
 * Watermarks are per store. Give each Kafka partition its own store: a lagging partition
 * then cannot make another partition's events late, and a revoked partition's state is
 * dropped by dropping its store. Keys (account_id) never span partitions.
 *
 * Memory per account, measured by bench/core.bench.ts (Node 24, x64, heapUsed delta after
 * GC, 200K accounts, account_id strings, Map entries and expiry-queue slots included):
 *   cold (history, newest location, cooldowns)   ~500 B: the state object (~30 fields,
 *        ~260 B, plus boxed doubles ~130 B), Map entry and key ~70 B, queue slot ~30 B;
 *   hot  (plus a ring of 4 events)                ~730 B: the ring is 28 doubles (~270 B);
 *        a ring grows by doubling, 56 B per extra event slot.
 * So 1M accounts that each transacted in the last minute cost ~0.75 GB, 1M idle ones ~0.5 GB.
 * maxAccounts is per store: with one store per partition, divide the memory budget by the
 * number of partitions a replica may own.
 */

import type { Transaction } from "../contracts/transaction.ts";
import { ConfigError } from "./errors.ts";

export const DEFAULT_WINDOW_MS = 60_000;
export const DEFAULT_ALLOWED_LATENESS_MS = 10_000;
export const DEFAULT_HISTORY_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_ACCOUNTS = 1_000_000;
export const DEFAULT_MAX_EVENTS_PER_ACCOUNT = 2048;
export const DEFAULT_HISTORY_ALPHA = 0.05;
export const DEFAULT_SWEEP_BUDGET = 4;

/**
 * Event record layout inside AccountState.buf: STRIDE doubles per event. Integers up to
 * 2^53 are exact in a double, so amounts (cents), running sums, 32-bit merchant hashes
 * and country codes lose nothing, and one array per account beats one per field.
 * F_CUM is a running sum of amounts in ring order (from an arbitrary base), so the sum of
 * any window is one subtraction instead of a scan.
 */
export const STRIDE = 7;
export const F_TIME = 0;
export const F_AMOUNT = 1;
export const F_LAT = 2;
export const F_LON = 3;
export const F_MERCHANT = 4;
export const F_COUNTRY = 5;
export const F_CUM = 6;

const INITIAL_CAPACITY = 4;
const POOL_MAX = 4096;
const EMPTY: number[] = [];

/**
 * A ring of `events` slots. A plain array of doubles rather than a Float64Array: a typed
 * array allocates an off-heap backing store with external-memory accounting, and add()
 * measured ~20% slower with one (ring creation and growth, more GC); a double array is one
 * on-heap allocation and reads just as fast.
 */
function newRing(events: number): number[] {
  return new Array<number>(events * STRIDE).fill(0.5);
}

export type Lateness = "on-time" | "late";

export interface WindowStoreOptions {
  /** Longest rule window the store can serve. Default 60 000. */
  windowMs?: number;
  /** How far behind the newest event time an event may be and still count as on time. Default 10 000. */
  allowedLatenessMs?: number;
  /** Idle time (event time) after which an account's history and cooldowns are forgotten. 0 = with the window. Default 24 h. */
  historyTtlMs?: number;
  /** Soft cap on tracked accounts: beyond it the longest-idle cold accounts are dropped early. Default 1 000 000. */
  maxAccounts?: number;
  /** Cap on events kept per account window (rounded up to a power of two); the oldest are dropped beyond it. Default 2048. */
  maxEventsPerAccount?: number;
  /** EWMA weight of the amount history once it holds more than 1/alpha transactions. Default 0.05. */
  historyAlpha?: number;
  /** Expiry-queue entries examined per add(). Default 4. */
  sweepBudget?: number;
}

export interface WindowStoreStats {
  /** Accounts tracked, hot and cold. */
  accounts: number;
  /** Accounts holding a window ring. */
  hotAccounts: number;
  /** Events currently held in all windows. */
  windowEvents: number;
  maxEventTimeMs: number;
  watermarkMs: number;
  /** Events that arrived behind the watermark (still applied to history). */
  lateEvents: number;
  /** Late events too old to enter any window (history only). */
  tooLateForWindow: number;
  /** Events dropped from a window because the account hit maxEventsPerAccount. */
  windowOverflowDrops: number;
  /** Rings released after the account went idle. */
  cooled: number;
  /** Accounts forgotten after historyTtlMs idle. */
  expired: number;
  /** Accounts forgotten early to respect maxAccounts. */
  capacityEvictions: number;
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

/** ISO 3166-1 alpha-2 packed into 16 bits: exact, so distinct-country counts never collide. */
export function countryCode(country: string): number {
  return (country.charCodeAt(0) << 8) | country.charCodeAt(1);
}

export function countryFromCode(code: number): string {
  return String.fromCharCode(code >>> 8, code & 0xff);
}

/**
 * One account's state. Fields are public so the rule evaluator can read the ring without
 * accessor calls or copies; only WindowStore writes them.
 */
export class AccountState {
  readonly accountId: string;

  /** Ring of window events in event-time order (stable for equal times), STRIDE doubles each. */
  buf: number[] = EMPTY;
  /** Ring slot of logical index 0 (the oldest event). */
  head = 0;
  /** Events in the ring. */
  len = 0;
  /** Capacity - 1; capacity is a power of two so a slot is (head + i) & mask. */
  mask = -1;
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

  /** Set by WindowStore.add for the transaction just added; read by evaluate(). */
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

  /** Logical index i (0 = oldest) to the offset of its record in buf. */
  offset(i: number): number {
    return ((this.head + i) & this.mask) * STRIDE;
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

  /** Sum of amounts of logical indices [from, to] (from <= to), from the running sums. */
  sumRange(from: number, to: number): number {
    const b = this.buf;
    const first = this.offset(from);
    return b[this.offset(to) + F_CUM]! - (b[first + F_CUM]! - b[first + F_AMOUNT]!);
  }

  /** Events in (endMs - windowMs, endMs]: the window an event at endMs sees (no allocation). */
  countInWindow(endMs: number, windowMs: number): number {
    const start = endMs - windowMs;
    let n = 0;
    for (let i = 0; i < this.len; i++) {
      const t = this.buf[this.offset(i) + F_TIME]!;
      if (t > endMs) break;
      if (t > start) n++;
    }
    return n;
  }

  /** Window events in event-time order (allocates: tests and debugging only). */
  events(): WindowEventView[] {
    const out: WindowEventView[] = [];
    for (let i = 0; i < this.len; i++) {
      const o = this.offset(i);
      const b = this.buf;
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
}

/**
 * FIFO of (state, deadline, token). Deadlines are forced non-decreasing on push so the head
 * is always the earliest; forcing can only postpone a check, never advance it, and the
 * postponement is bounded by how out of order pushes are (at most the allowed lateness).
 */
class ExpiryQueue {
  private states: (AccountState | undefined)[];
  private deadlines: Float64Array;
  private tokens: Float64Array;
  private head = 0;
  private mask: number;
  size = 0;
  private tail = Number.NEGATIVE_INFINITY;

  constructor(capacity = 1024) {
    this.states = new Array<AccountState | undefined>(capacity).fill(undefined);
    this.deadlines = new Float64Array(capacity);
    this.tokens = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  push(state: AccountState, deadline: number, token: number): void {
    if (this.size > this.mask) this.grow();
    if (deadline < this.tail) deadline = this.tail;
    this.tail = deadline;
    const slot = (this.head + this.size) & this.mask;
    this.states[slot] = state;
    this.deadlines[slot] = deadline;
    this.tokens[slot] = token;
    this.size++;
  }

  headDeadline(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.deadlines[this.head]!;
  }

  headToken(): number {
    return this.tokens[this.head]!;
  }

  /** Removes and returns the head state (caller checked size > 0). */
  shift(): AccountState {
    const s = this.states[this.head]!;
    this.states[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return s;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const states = new Array<AccountState | undefined>(cap).fill(undefined);
    const deadlines = new Float64Array(cap);
    const tokens = new Float64Array(cap);
    for (let i = 0; i < this.size; i++) {
      const from = (this.head + i) & this.mask;
      states[i] = this.states[from];
      deadlines[i] = this.deadlines[from]!;
      tokens[i] = this.tokens[from]!;
    }
    this.states = states;
    this.deadlines = deadlines;
    this.tokens = tokens;
    this.head = 0;
    this.mask = cap - 1;
  }
}

function positiveInt(field: string, value: number | undefined, fallback: number, allowZero = false): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 0 || (v === 0 && !allowZero)) {
    throw new ConfigError(`window.${field}`, `must be a ${allowZero ? "non-negative" : "positive"} integer`);
  }
  return v;
}

export class WindowStore {
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
  readonly historyTtlMs: number;
  readonly maxAccounts: number;
  readonly maxEventsPerAccount: number;
  readonly historyAlpha: number;
  readonly sweepBudget: number;

  private readonly accounts = new Map<string, AccountState>();
  private readonly hotQueue = new ExpiryQueue();
  private readonly coldQueue = new ExpiryQueue();
  private readonly pool: number[][] = [];
  /** Below this count the history is an exact running mean (1/n >= alpha). */
  private readonly exactMeanUpTo: number;

  private maxEventTime = Number.NEGATIVE_INFINITY;
  private watermark = Number.NEGATIVE_INFINITY;
  private hotAccounts = 0;
  private windowEvents = 0;
  private lateEvents = 0;
  private tooLateForWindow = 0;
  private windowOverflowDrops = 0;
  private cooled = 0;
  private expired = 0;
  private capacityEvictions = 0;

  constructor(options: WindowStoreOptions = {}) {
    this.windowMs = positiveInt("windowMs", options.windowMs, DEFAULT_WINDOW_MS);
    this.allowedLatenessMs = positiveInt(
      "allowedLatenessMs",
      options.allowedLatenessMs,
      DEFAULT_ALLOWED_LATENESS_MS,
      true,
    );
    this.historyTtlMs = positiveInt("historyTtlMs", options.historyTtlMs, DEFAULT_HISTORY_TTL_MS, true);
    this.maxAccounts = positiveInt("maxAccounts", options.maxAccounts, DEFAULT_MAX_ACCOUNTS);
    const maxEvents = positiveInt(
      "maxEventsPerAccount",
      options.maxEventsPerAccount,
      DEFAULT_MAX_EVENTS_PER_ACCOUNT,
    );
    this.maxEventsPerAccount = Math.max(INITIAL_CAPACITY, 2 ** Math.ceil(Math.log2(maxEvents)));
    this.sweepBudget = positiveInt("sweepBudget", options.sweepBudget, DEFAULT_SWEEP_BUDGET);
    const alpha = options.historyAlpha ?? DEFAULT_HISTORY_ALPHA;
    if (!(alpha > 0 && alpha <= 1)) throw new ConfigError("window.historyAlpha", "must be in (0, 1]");
    this.historyAlpha = alpha;
    this.exactMeanUpTo = Math.floor(1 / alpha);
  }

  /** Accounts tracked (hot and cold). */
  get size(): number {
    return this.accounts.size;
  }

  get watermarkMs(): number {
    return this.watermark;
  }

  get maxEventTimeMs(): number {
    return this.maxEventTime;
  }

  /** Classifies against the current watermark: exactly at the watermark is still on time. */
  classify(eventTimeMs: number): Lateness {
    return eventTimeMs < this.watermark ? "late" : "on-time";
  }

  get(accountId: string): AccountState | undefined {
    return this.accounts.get(accountId);
  }

  /**
   * Applies a validated transaction to its account and returns the state, ready for
   * evaluate(). The caller must evaluate before the next add(): curIndex/curLate describe
   * only the latest transaction.
   */
  add(tx: Transaction): AccountState {
    if (this.hotQueue.headDeadline() <= this.watermark || this.coldQueue.headDeadline() <= this.watermark) {
      this.sweep(this.sweepBudget);
    }
    const t = tx.eventTimeMs;
    const late = t < this.watermark;
    if (t > this.maxEventTime) {
      this.maxEventTime = t;
      this.watermark = t - this.allowedLatenessMs;
    }

    let s = this.accounts.get(tx.account_id);
    const isNew = s === undefined;
    if (s === undefined) s = this.create(tx.account_id);

    // History includes late events: the mean of amounts does not care about order, and
    // dropping them would bias it towards whatever arrives on time.
    s.priorCount = s.historyCount;
    s.priorMean = s.historyMean;
    const n = ++s.historyCount;
    s.historyMean += (tx.amountMinor - s.historyMean) * (n <= this.exactMeanUpTo ? 1 / n : this.historyAlpha);

    s.curLate = late;
    if (late) this.lateEvents++;
    if (t >= s.lastTimeMs) {
      s.curNewest = true;
      s.prevTimeMs = s.lastTimeMs;
      s.prevLat = s.lastLat;
      s.prevLon = s.lastLon;
      s.lastTimeMs = t;
      s.lastLat = tx.lat;
      s.lastLon = tx.lon;
    } else {
      s.curNewest = false;
    }

    // Oldest time any future on-time event's window can reach back to (exclusive).
    const horizon = this.watermark - this.windowMs;
    if (t > horizon) {
      if (!s.hot) this.heat(s);
      this.prune(s, horizon);
      s.curIndex = this.insert(s, tx);
    } else {
      s.curIndex = -1;
      this.tooLateForWindow++;
      // Every state has exactly one live expiry entry: hot ones got theirs in heat().
      if (isNew) this.coldQueue.push(s, s.lastTimeMs + this.historyTtlMs, ++s.coldToken);
    }
    return s;
  }

  /**
   * Examines up to `budget` expiry-queue entries whose deadline the watermark has passed.
   * add() calls it with sweepBudget; an idle processor may call it between batches.
   * Returns the number of entries examined.
   */
  sweep(budget: number): number {
    let done = 0;
    const wm = this.watermark;
    const hq = this.hotQueue;
    while (done < budget && hq.size > 0 && hq.headDeadline() <= wm) {
      const token = hq.headToken();
      const s = hq.shift();
      done++;
      if (s.evicted || !s.hot || token !== s.hotToken) continue;
      const due = s.lastTimeMs + this.windowMs;
      if (due <= wm) this.cool(s);
      else hq.push(s, due, ++s.hotToken);
    }
    const cq = this.coldQueue;
    while (done < budget && cq.size > 0 && cq.headDeadline() <= wm) {
      const token = cq.headToken();
      const s = cq.shift();
      done++;
      if (s.evicted || s.hot || token !== s.coldToken) continue;
      const due = s.lastTimeMs + this.historyTtlMs;
      if (due <= wm) {
        this.forget(s);
        this.expired++;
      } else {
        cq.push(s, due, ++s.coldToken);
      }
    }
    return done;
  }

  stats(): WindowStoreStats {
    return {
      accounts: this.accounts.size,
      hotAccounts: this.hotAccounts,
      windowEvents: this.windowEvents,
      maxEventTimeMs: this.maxEventTime,
      watermarkMs: this.watermark,
      lateEvents: this.lateEvents,
      tooLateForWindow: this.tooLateForWindow,
      windowOverflowDrops: this.windowOverflowDrops,
      cooled: this.cooled,
      expired: this.expired,
      capacityEvictions: this.capacityEvictions,
    };
  }

  private create(accountId: string): AccountState {
    if (this.accounts.size >= this.maxAccounts) this.evictForCapacity();
    const s = new AccountState(accountId);
    this.accounts.set(accountId, s);
    return s;
  }

  /**
   * Drops the cold account whose idle deadline comes first. Hot accounts are never dropped:
   * that would silently blind the rules to a live window. A few stale entries are skipped at
   * most, so a single add() stays O(1).
   */
  private evictForCapacity(): void {
    const cq = this.coldQueue;
    for (let tries = 0; tries < 8 && cq.size > 0; tries++) {
      const token = cq.headToken();
      const s = cq.shift();
      if (s.evicted || s.hot || token !== s.coldToken) continue;
      this.forget(s);
      this.capacityEvictions++;
      return;
    }
  }

  private heat(s: AccountState): void {
    const buf = this.pool.pop();
    s.buf = buf ?? newRing(INITIAL_CAPACITY);
    s.mask = INITIAL_CAPACITY - 1;
    s.head = 0;
    s.len = 0;
    s.hot = true;
    this.hotAccounts++;
    this.hotQueue.push(s, Math.max(s.lastTimeMs, this.watermark) + this.windowMs, ++s.hotToken);
  }

  private cool(s: AccountState): void {
    this.releaseRing(s);
    s.hot = false;
    this.hotAccounts--;
    this.cooled++;
    if (this.historyTtlMs === 0) {
      this.forget(s);
      this.expired++;
    } else {
      this.coldQueue.push(s, s.lastTimeMs + this.historyTtlMs, ++s.coldToken);
    }
  }

  private forget(s: AccountState): void {
    if (s.hot) {
      this.releaseRing(s);
      s.hot = false;
      this.hotAccounts--;
    }
    s.evicted = true;
    this.accounts.delete(s.accountId);
  }

  private releaseRing(s: AccountState): void {
    this.windowEvents -= s.len;
    if (s.buf.length === INITIAL_CAPACITY * STRIDE && this.pool.length < POOL_MAX) this.pool.push(s.buf);
    s.buf = EMPTY;
    s.mask = -1;
    s.head = 0;
    s.len = 0;
  }

  private prune(s: AccountState, horizon: number): void {
    const buf = s.buf;
    while (s.len > 0 && buf[s.head * STRIDE + F_TIME]! <= horizon) {
      s.head = (s.head + 1) & s.mask;
      s.len--;
      this.windowEvents--;
    }
  }

  /** Inserts in event-time order after any equal times; returns the logical index. */
  private insert(s: AccountState, tx: Transaction): number {
    if (s.len > s.mask) this.makeRoom(s);
    const t = tx.eventTimeMs;
    const amount = tx.amountMinor;
    const country = countryCode(tx.country);
    const buf = s.buf;
    const m = s.mask;
    const h = s.head;
    let i = s.len;
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
      i--;
    }
    const o = ((h + i) & m) * STRIDE;
    let base = 0;
    if (i > 0) {
      base = buf[((h + i - 1) & m) * STRIDE + F_CUM]!;
    } else if (s.len > 0) {
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
    if (s.len === 0) {
      s.uniformCountry = country;
      s.minAmountMinor = amount;
    } else {
      if (country !== s.uniformCountry) s.uniformCountry = -1;
      if (amount < s.minAmountMinor) s.minAmountMinor = amount;
    }
    s.len++;
    this.windowEvents++;
    return i;
  }

  /** Grows a full ring (doubling), or at the cap drops the oldest event. */
  private makeRoom(s: AccountState): void {
    const cap = s.mask + 1;
    if (cap >= this.maxEventsPerAccount) {
      s.head = (s.head + 1) & s.mask;
      s.len--;
      this.windowEvents--;
      this.windowOverflowDrops++;
      return;
    }
    const next = newRing(cap * 2);
    const buf = s.buf;
    for (let i = 0; i < cap; i++) {
      const from = ((s.head + i) & s.mask) * STRIDE;
      const to = i * STRIDE;
      for (let k = 0; k < STRIDE; k++) next[to + k] = buf[from + k]!;
    }
    if (s.buf.length === INITIAL_CAPACITY * STRIDE && this.pool.length < POOL_MAX) this.pool.push(s.buf);
    s.buf = next;
    s.head = 0;
    s.mask = cap * 2 - 1;
  }
}

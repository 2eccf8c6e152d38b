/**
 * The window store: per-account event-time state for the fraud rules (a trailing window of
 * recent events, long-run amount history, the newest location, and per-rule cooldowns: one
 * AccountState each, account-state.ts), the watermark, and bounded memory.
 *
 * Semantics (docs/rules.md repeats them for rule authors):
 * - The window of an event at time t is (t - windowMs, t]: an event exactly windowMs older
 *   is out, one a millisecond younger is in. Anchoring on the event's own time, not on the
 *   newest time seen, makes an out-of-order event see exactly what it would have seen had
 *   it arrived in order, so results do not depend on arrival order within the lateness.
 * - Watermark = min(max event time seen, processing time) - allowedLatenessMs, and it never
 *   moves back. An event strictly behind it is late. The processing-time bound is defence in
 *   depth behind the decoder's event-time bounds (docs/processor.md): an event_time ahead of
 *   the clock cannot drag the watermark ahead of honest events, and one beyond
 *   maxFutureSkewMs is not applied at all (counted in futureEvents). Without a clock (add()
 *   given no nowMs and no `clock` option) the bound is off: tests and tools replaying fixed
 *   times. Late events still update history and, if they can still fall inside a future
 *   on-time event's window (t > watermark - windowMs), are inserted into the window; the
 *   rules never alert on them (see evaluate.ts).
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
 *   Since dedup moved into the ring (each event also keeps its id hash and offset, 2 doubles)
 *   a ring of 4 is 36 doubles: +64 B per hot account, 72 B per extra event slot (measured at
 *   200K accounts x 3 events: 726 → 792 B hot, cold unchanged at ~470 B).
 * So 1M accounts that each transacted in the last minute cost ~0.8 GB, 1M idle ones ~0.5 GB.
 * maxAccounts is per store: with one store per partition, divide the memory budget by the
 * number of partitions a replica may own.
 */

import { DEFAULT_MAX_FUTURE_SKEW_MS, type Transaction } from "../contracts/transaction.ts";
import { AccountState, INITIAL_RING_EVENTS, NOT_RECORDED, transactionIdHash } from "./account-state.ts";
import { ConfigError } from "./errors.ts";
import { ExpiryQueue } from "./expiry-queue.ts";

/** What add() returns; the rule evaluator reads it (account-state.ts). */
export type { AccountState } from "./account-state.ts";

export const DEFAULT_WINDOW_MS = 60_000;
export const DEFAULT_ALLOWED_LATENESS_MS = 10_000;
export const DEFAULT_HISTORY_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_ACCOUNTS = 1_000_000;
export const DEFAULT_MAX_EVENTS_PER_ACCOUNT = 2048;
export const DEFAULT_HISTORY_ALPHA = 0.05;
export const DEFAULT_SWEEP_BUDGET = 4;

/** Pooled rings of the initial size, reused when accounts heat up again. */
const POOL_MAX = 4096;

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
  /**
   * Events further than this ahead of processing time are not applied (history, window and
   * watermark untouched; counted in futureEvents). Default 5 min, as the decoder's.
   */
  maxFutureSkewMs?: number;
  /**
   * Processing time, read by add() when it is given no nowMs. Without both, the watermark
   * follows event time alone (no processing-time bound).
   */
  clock?: () => number;
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
  /** Events more than maxFutureSkewMs ahead of processing time: not applied at all. */
  futureEvents: number;
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
  readonly maxFutureSkewMs: number;
  private readonly clock: (() => number) | undefined;

  private readonly accounts = new Map<string, AccountState>();
  private readonly hotQueue = new ExpiryQueue();
  private readonly coldQueue = new ExpiryQueue();
  private readonly pool: number[][] = [];
  /** Below this count the history is an exact running mean (1/n >= alpha). */
  private readonly exactMeanUpTo: number;

  private maxEventTime = Number.NEGATIVE_INFINITY;
  private watermark = Number.NEGATIVE_INFINITY;
  /** The watermark was last held back by processing time: it may move as the clock does. */
  private watermarkCapped = false;
  private futureEvents = 0;
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
    this.maxEventsPerAccount = Math.max(INITIAL_RING_EVENTS, 2 ** Math.ceil(Math.log2(maxEvents)));
    this.sweepBudget = positiveInt("sweepBudget", options.sweepBudget, DEFAULT_SWEEP_BUDGET);
    this.maxFutureSkewMs = positiveInt(
      "maxFutureSkewMs",
      options.maxFutureSkewMs,
      DEFAULT_MAX_FUTURE_SKEW_MS,
      true,
    );
    this.clock = options.clock;
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
   *
   * nowMs is processing time (default: the `clock` option, else unbounded): the watermark
   * never passes nowMs - allowedLatenessMs, and an event beyond nowMs + maxFutureSkewMs is
   * not applied (curIndex -1, so it raises nothing; the state is returned, or a detached
   * one for an unknown account). Give the same nowMs as the decoder got.
   */
  add(
    tx: Transaction,
    nowMs?: number,
    offset = -1,
    idHash = transactionIdHash(tx.transaction_id),
  ): AccountState {
    if (this.hotQueue.headDeadline() <= this.watermark || this.coldQueue.headDeadline() <= this.watermark) {
      this.sweep(this.sweepBudget);
    }
    const t = tx.eventTimeMs;
    const late = t < this.watermark;
    // Only an event newer than all before it, or a clock catching up with a capped
    // watermark, can move the watermark: the common out-of-order path reads no clock.
    if (t > this.maxEventTime || this.watermarkCapped) {
      const now = nowMs ?? (this.clock === undefined ? Number.POSITIVE_INFINITY : this.clock());
      if (t > this.maxEventTime) {
        // Applying it would also park far-future deadlines in the FIFO expiry queues, which
        // would then hold back every account's expiry behind them.
        if (t > now + this.maxFutureSkewMs) return this.refuseFuture(tx);
        this.maxEventTime = t;
      }
      const bound = Math.min(this.maxEventTime, now);
      this.watermarkCapped = bound < this.maxEventTime;
      const wm = bound - this.allowedLatenessMs;
      if (wm > this.watermark) this.watermark = wm;
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
      s.curIndex = this.insert(s, tx, idHash, offset);
    } else {
      s.curIndex = -1;
      this.tooLateForWindow++;
      // Every state has exactly one live expiry entry: hot ones got theirs in heat().
      if (isNew) this.coldQueue.push(s, s.lastTimeMs + this.historyTtlMs, ++s.coldToken);
    }
    return s;
  }

  /**
   * Dedup within the window: the Kafka offset recorded (by add) with the event of this
   * account, event time and transaction_id, or NOT_RECORDED (-2). A resend carries its
   * original's event time, so while the original is in its account's window this finds it;
   * once it is not (windowMs + allowedLatenessMs behind the newest event), the resend is too
   * late to enter any window either, and only the warehouse key sees it (docs/processor.md,
   * "Dedup"). -1 means the event was added without an offset.
   */
  recordedOffset(tx: Transaction, idHash = transactionIdHash(tx.transaction_id)): number {
    const s = this.accounts.get(tx.account_id);
    if (s === undefined || s.len === 0) return NOT_RECORDED;
    return s.recordedOffset(tx.eventTimeMs, idHash);
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
      futureEvents: this.futureEvents,
      tooLateForWindow: this.tooLateForWindow,
      windowOverflowDrops: this.windowOverflowDrops,
      cooled: this.cooled,
      expired: this.expired,
      capacityEvictions: this.capacityEvictions,
    };
  }

  /** An event too far ahead of processing time: counted, applied to nothing. */
  private refuseFuture(tx: Transaction): AccountState {
    this.futureEvents++;
    const s = this.accounts.get(tx.account_id) ?? new AccountState(tx.account_id);
    s.curIndex = -1;
    s.curLate = false;
    s.curNewest = false;
    return s;
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
    s.attachRing(this.pool.pop());
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
    this.recycle(s.detachRing());
  }

  private recycle(ring: number[] | undefined): void {
    if (ring !== undefined && this.pool.length < POOL_MAX) this.pool.push(ring);
  }

  private prune(s: AccountState, horizon: number): void {
    this.windowEvents -= s.pruneThrough(horizon);
  }

  /** Inserts in event-time order after any equal times; returns the logical index. */
  private insert(s: AccountState, tx: Transaction, idHash: number, offset: number): number {
    if (s.ringFull) this.makeRoom(s);
    this.windowEvents++;
    return s.insert(tx, idHash, offset);
  }

  /** Grows a full ring (doubling), or at the cap drops the oldest event. */
  private makeRoom(s: AccountState): void {
    if (s.capacity >= this.maxEventsPerAccount) {
      s.dropOldest();
      this.windowEvents--;
      this.windowOverflowDrops++;
      return;
    }
    this.recycle(s.grow());
  }
}

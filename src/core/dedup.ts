/**
 * Deduplication by transaction_id: a resend (same id, new Kafka record) is dropped; a
 * redelivery (the same Kafka record again, after a crash or a seek back) is processed again,
 * and the idempotent sinks make that harmless.
 *
 * Telling the two apart is what makes "kill -9 loses nothing" hold. With a plain
 * first-seen claim (SET NX), a replica that claims an id and dies before its outputs are
 * durable leaves a claim behind; the replayed record is then "seen" and dropped, and the
 * transaction is lost. So every claim carries an owner: a string naming the Kafka record
 * (e.g. "payments.transactions/7/123456" = topic/partition/offset). A claim succeeds when
 * the id is new or is already owned by the same record.
 *
 * Two tiers: a local TTL cache answers for ids this process has already resolved, and the
 * shared store (Redis in production, InMemorySharedDedupStore when embedded) is asked once
 * per batch for the rest. Correctness comes from the shared store; the local tier saves
 * round trips and keeps a resend burst from reaching Redis at all.
 */
import { ProcessorDefaults } from "../contracts/defaults.ts";
import { ErrorCodes, PaystreamError } from "./errors.ts";

export const DEFAULT_LOCAL_TTL_MS = ProcessorDefaults.dedupLocalTtlMs;
/** The same horizon as `--dedup-ttl`'s default (24 h), so embedded and Redis dedup agree. */
export const DEFAULT_SHARED_TTL_MS = ProcessorDefaults.dedupTtlMs;
/**
 * Per-generation cap. A V8 Map holds at most 2^24 (16.7M) entries and throws beyond, and at
 * ~130 B per entry (id + owner strings + table slot) 1M entries is ~130 MB per generation.
 */
export const DEFAULT_MAX_ENTRIES_PER_GENERATION = 1_000_000;
const V8_MAP_LIMIT = 16_777_216;
const GENERATIONS = 3;

export interface TtlIdSetOptions {
  maxEntriesPerGeneration?: number;
}

export interface TtlIdSetStats {
  entries: number;
  rotations: number;
  /** Rotations forced by the entry cap: under that load the effective TTL is shorter than asked. */
  earlyRotations: number;
}

/**
 * Transaction ids remembered for at least ttlMs and at most 1.5 x ttlMs: three Maps
 * (id -> owner), the newest taking inserts, rotated every ttlMs/2. Expiry costs O(1) per
 * rotation (a generation is dropped whole) instead of a timestamp per entry. Time is
 * passed in (nowMs), so the class does no I/O and tests control the clock.
 */
export class TtlIdSet {
  readonly ttlMs: number;
  readonly maxEntriesPerGeneration: number;
  /** gens[0] is the newest. */
  private gens: Map<string, string>[] = [];
  private readonly periodMs: number;
  private nextRotationMs = Number.NaN;
  private rotations = 0;
  private earlyRotations = 0;

  constructor(ttlMs: number, options: TtlIdSetOptions = {}) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 2) {
      throw new PaystreamError(ErrorCodes.CONFIG_INVALID, "dedup ttlMs must be an integer >= 2");
    }
    const cap = options.maxEntriesPerGeneration ?? DEFAULT_MAX_ENTRIES_PER_GENERATION;
    if (!Number.isSafeInteger(cap) || cap < 1 || cap > V8_MAP_LIMIT - 1) {
      throw new PaystreamError(
        ErrorCodes.CONFIG_INVALID,
        `dedup maxEntriesPerGeneration must be an integer in [1, ${V8_MAP_LIMIT - 1}]`,
      );
    }
    this.ttlMs = ttlMs;
    this.maxEntriesPerGeneration = cap;
    this.periodMs = Math.ceil(ttlMs / 2);
    for (let g = 0; g < GENERATIONS; g++) this.gens.push(new Map());
  }

  /** Entries across generations (an id re-added after rotation may count twice). */
  get size(): number {
    let n = 0;
    for (const g of this.gens) n += g.size;
    return n;
  }

  stats(): TtlIdSetStats {
    return { entries: this.size, rotations: this.rotations, earlyRotations: this.earlyRotations };
  }

  has(id: string, nowMs: number): boolean {
    return this.ownerOf(id, nowMs) !== undefined;
  }

  /** The owner recorded with id ("" if none was given), or undefined if unknown or expired. */
  ownerOf(id: string, nowMs: number): string | undefined {
    this.advance(nowMs);
    const gens = this.gens;
    for (let g = 0; g < GENERATIONS; g++) {
      const owner = gens[g]!.get(id);
      if (owner !== undefined) return owner;
    }
    return undefined;
  }

  /** Remembers id (refreshing its TTL if already known). */
  add(id: string, nowMs: number, owner = ""): void {
    this.advance(nowMs);
    let young = this.gens[0]!;
    if (young.size >= this.maxEntriesPerGeneration && !young.has(id)) {
      this.rotate();
      this.earlyRotations++;
      this.nextRotationMs = nowMs + this.periodMs;
      young = this.gens[0]!;
    }
    young.set(id, owner);
  }

  /** For each id, whether it is already known; out (reused if given) is returned. */
  checkBatch(ids: readonly string[], nowMs: number, out: boolean[] = []): boolean[] {
    out.length = ids.length;
    for (let i = 0; i < ids.length; i++) out[i] = this.has(ids[i]!, nowMs);
    return out;
  }

  clear(): void {
    for (let g = 0; g < GENERATIONS; g++) this.gens[g] = new Map();
    this.nextRotationMs = Number.NaN;
  }

  private advance(nowMs: number): void {
    if (Number.isNaN(this.nextRotationMs)) {
      this.nextRotationMs = nowMs + this.periodMs;
      return;
    }
    if (nowMs < this.nextRotationMs) return;
    const steps = Math.floor((nowMs - this.nextRotationMs) / this.periodMs) + 1;
    if (steps >= GENERATIONS) {
      for (let g = 0; g < GENERATIONS; g++) this.gens[g] = new Map();
      this.rotations += steps;
    } else {
      for (let k = 0; k < steps; k++) this.rotate();
    }
    this.nextRotationMs += steps * this.periodMs;
  }

  private rotate(): void {
    this.gens.pop();
    this.gens.unshift(new Map());
    this.rotations++;
  }
}

/** One id to claim, and the Kafka record claiming it. */
export interface DedupClaim {
  id: string;
  owner: string;
}

/**
 * The cross-replica, restart-surviving tier. claim() answers, per claim, true when the
 * caller should process the record: the id was unknown (it is now recorded with its owner,
 * for the store's TTL) or is already recorded with the same owner (a redelivery). false =
 * a duplicate. One call per batch. The Redis implementation (src/adapters/redis/dedup.ts)
 * is one pipelined `SET <prefix><id> <owner> NX GET EX <ttl>` per id (Redis >= 7.0):
 * nil or the same owner -> true, another owner -> false.
 */
export interface SharedDedupStore {
  claim(claims: readonly DedupClaim[]): Promise<boolean[]>;
}

export interface InMemorySharedDedupStoreOptions {
  /** How long ids are remembered (at least this, at most 1.5x). Default 24 h (DEFAULT_SHARED_TTL_MS). */
  ttlMs?: number;
  maxEntriesPerGeneration?: number;
  /** Clock for expiry; default Date.now. */
  now?: () => number;
}

/**
 * SharedDedupStore for the embedded single-process mode (and tests): same owner semantics
 * as the Redis store, but forgets everything on restart, so after a restart only the
 * idempotent sinks keep replays from doubling rows.
 */
export class InMemorySharedDedupStore implements SharedDedupStore {
  private readonly set: TtlIdSet;
  private readonly now: () => number;

  constructor(options: InMemorySharedDedupStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    const cap = options.maxEntriesPerGeneration;
    this.set = new TtlIdSet(
      options.ttlMs ?? DEFAULT_SHARED_TTL_MS,
      cap === undefined ? {} : { maxEntriesPerGeneration: cap },
    );
  }

  claim(claims: readonly DedupClaim[]): Promise<boolean[]> {
    const set = this.set;
    const now = this.now();
    const out = new Array<boolean>(claims.length);
    for (let i = 0; i < claims.length; i++) {
      const { id, owner } = claims[i]!;
      const existing = set.ownerOf(id, now);
      if (existing === undefined) {
        set.add(id, now, owner);
        out[i] = true;
      } else {
        out[i] = existing === owner && owner !== "";
      }
    }
    return Promise.resolve(out);
  }

  get size(): number {
    return this.set.size;
  }
}

export interface DeduperOptions {
  /** TTL of the local cache; keep it below the shared store's. Default 2 min. */
  localTtlMs?: number;
  localMaxEntriesPerGeneration?: number;
}

export interface DeduperStats {
  /** Records judged duplicates (resends). */
  duplicates: number;
  /** Records answered by the local cache, without the shared store. */
  localHits: number;
  /** Ids sent to the shared store. */
  sharedClaims: number;
  /** Shared store round trips. */
  sharedCalls: number;
  local: TtlIdSetStats;
}

/** The transaction fields dedup reads (Transaction satisfies it). */
export interface DedupItem {
  readonly transaction_id: string;
}

export class Deduper {
  private readonly shared: SharedDedupStore;
  private readonly local: TtlIdSet;
  private readonly inBatch = new Set<string>();
  private duplicates = 0;
  private localHits = 0;
  private sharedClaims = 0;
  private sharedCalls = 0;

  constructor(shared: SharedDedupStore, options: DeduperOptions = {}) {
    this.shared = shared;
    const cap = options.localMaxEntriesPerGeneration;
    this.local = new TtlIdSet(
      options.localTtlMs ?? DEFAULT_LOCAL_TTL_MS,
      cap === undefined ? {} : { maxEntriesPerGeneration: cap },
    );
  }

  /**
   * Which records of a batch to process (true) or drop as duplicates (false).
   * owners[i] names the Kafka record of txs[i] (see the module comment) and must be
   * non-empty and unique per record. Within one batch, a second record with an id already
   * in the batch is a duplicate.
   * If the shared store fails, the promise rejects and nothing is recorded locally: retry
   * the whole batch.
   */
  async filterBatch(txs: readonly DedupItem[], owners: readonly string[], nowMs: number): Promise<boolean[]> {
    const n = txs.length;
    if (owners.length !== n) {
      throw new PaystreamError(ErrorCodes.CONFIG_INVALID, `dedup: ${n} records but ${owners.length} owners`);
    }
    const verdict = new Array<boolean>(n);
    const pending: number[] = [];
    const inBatch = this.inBatch;
    let duplicates = 0;
    let localHits = 0;
    inBatch.clear();
    for (let i = 0; i < n; i++) {
      const id = txs[i]!.transaction_id;
      if (inBatch.has(id)) {
        verdict[i] = false;
        duplicates++;
        continue;
      }
      inBatch.add(id);
      const owner = owners[i]!;
      const known = this.local.ownerOf(id, nowMs);
      if (known === undefined) {
        pending.push(i);
      } else {
        localHits++;
        verdict[i] = owner !== "" && known === owner;
        if (!verdict[i]) duplicates++;
      }
    }
    inBatch.clear();
    this.localHits += localHits;
    if (pending.length === 0) {
      this.duplicates += duplicates;
      return verdict;
    }

    const claims = new Array<DedupClaim>(pending.length);
    for (let k = 0; k < pending.length; k++) {
      const i = pending[k]!;
      claims[k] = { id: txs[i]!.transaction_id, owner: owners[i]! };
    }
    this.sharedCalls++;
    this.sharedClaims += claims.length;
    const claimed = await this.shared.claim(claims);
    if (claimed.length !== claims.length) {
      throw new PaystreamError(
        ErrorCodes.REDIS_UNAVAILABLE,
        `dedup store answered ${claimed.length} claims for ${claims.length} ids`,
        { retriable: true },
      );
    }
    for (let k = 0; k < pending.length; k++) {
      const ok = claimed[k] === true;
      verdict[pending[k]!] = ok;
      if (!ok) duplicates++;
      // A duplicate is remembered with no owner: any record carrying this id is then a
      // duplicate locally too, including a redelivery of this very record.
      const c = claims[k]!;
      this.local.add(c.id, nowMs, ok ? c.owner : "");
    }
    this.duplicates += duplicates;
    return verdict;
  }

  stats(): DeduperStats {
    return {
      duplicates: this.duplicates,
      localHits: this.localHits,
      sharedClaims: this.sharedClaims,
      sharedCalls: this.sharedCalls,
      local: this.local.stats(),
    };
  }
}

/**
 * The bounded memo the Masker keeps its tokens in. Keys are raw PII values or account ids:
 * the cache lives only in this process's memory, is bounded, and is never serialised.
 */

export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
}

/**
 * A map in two generations: inserts go to the young one; when it fills, the old one is
 * dropped and the young one becomes old. Hits in the old generation are promoted, so
 * anything used once per generation stays. O(1), no per-entry bookkeeping, unlike an LRU.
 */
export class TwoGenerationCache<V> {
  #young = new Map<string, V>();
  #old = new Map<string, V>();
  readonly #limit: number;
  hits = 0;
  misses = 0;

  /** limit: entries per generation; the cache holds at most twice this. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  get(key: string): V | undefined {
    let v = this.#young.get(key);
    if (v !== undefined) {
      this.hits++;
      return v;
    }
    v = this.#old.get(key);
    if (v !== undefined) {
      this.hits++;
      this.set(key, v);
      return v;
    }
    this.misses++;
    return undefined;
  }

  set(key: string, value: V): void {
    if (this.#young.size >= this.#limit) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, value);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.size };
  }

  clear(): void {
    this.#young = new Map();
    this.#old = new Map();
  }
}

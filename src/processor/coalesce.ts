/**
 * Merges writes that queue up into single writes, sized by what is waiting.
 *
 * Up to `concurrency` writes run at once (a PostgreSQL pool takes several). While every slot
 * is busy, later batches queue, and the next write takes all of them (up to maxItems): under
 * load a sink pays its per-write cost (a DuckDB or PostgreSQL transaction) once per round
 * trip instead of once per fetched batch, which is what lets it keep up.
 *
 * At low load every fetched batch is a handful of records, and a write per batch costs more
 * than the rows in it (DuckDB: ~4–5 ms of CPU per write, so 140 tiny writes a second at
 * 1K tx/s kept a core busy). So a free slot waits up to `lingerMs` for `fillItems` items
 * before it writes what is there; once that many are waiting it writes at once. Rows are
 * then durable up to lingerMs later, alerts are not (they reach the alert store and Kafka
 * without waiting for the warehouse). lingerMs 0 writes at once, as before.
 *
 * Each caller's promise settles with the write that carried its items; order is preserved.
 */
export interface CoalescerOptions {
  /** Writes at once (default 1). */
  concurrency?: number;
  /** How long a free slot waits for fillItems before writing what is queued (default 0). */
  lingerMs?: number;
  /** Items that make a write worth starting at once (default maxItems). */
  fillItems?: number;
  /** Clock for the linger (tests). */
  now?: () => number;
}

interface Entry<T, R> {
  items: T[];
  refs: R[];
  at: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Coalescer<T, R> {
  readonly #write: (items: T[], refs: R[]) => Promise<void>;
  readonly #maxItems: number;
  readonly #concurrency: number;
  readonly #lingerMs: number;
  readonly #fillItems: number;
  readonly #now: () => number;
  #queue: Entry<T, R>[] = [];
  /** Items in #queue (not yet taken by a write). */
  #queued = 0;
  #running = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Items queued or being written. */
  pending = 0;

  constructor(
    write: (items: T[], refs: R[]) => Promise<void>,
    maxItems: number,
    options: number | CoalescerOptions = {},
  ) {
    const o = typeof options === "number" ? { concurrency: options } : options;
    this.#write = write;
    this.#maxItems = maxItems;
    this.#concurrency = o.concurrency ?? 1;
    this.#lingerMs = o.lingerMs ?? 0;
    this.#fillItems = Math.min(o.fillItems ?? maxItems, maxItems);
    this.#now = o.now ?? (() => performance.now());
  }

  /** Queues items (with a parallel array of references: the records they came from). */
  push(items: T[], refs: R[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    this.pending += items.length;
    this.#queued += items.length;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ items, refs, at: this.#now(), resolve, reject });
      this.#kick();
    });
  }

  /** Whether a free slot should write now: enough items, or the oldest has lingered enough. */
  #ready(): boolean {
    if (this.#queue.length === 0) return false;
    if (this.#lingerMs <= 0 || this.#queued >= this.#fillItems) return true;
    return this.#now() - this.#queue[0]!.at >= this.#lingerMs;
  }

  /** Starts a writer slot if one is free and the queue is ready, else arms the linger timer. */
  #kick(): void {
    if (this.#running >= this.#concurrency || this.#queue.length === 0) return;
    if (this.#ready()) {
      void this.#drain();
      return;
    }
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lingerMs - (this.#now() - this.#queue[0]!.at));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, wait);
  }

  /** One writer slot: writes queued entries while the queue is ready. */
  async #drain(): Promise<void> {
    this.#running++;
    while (this.#ready()) {
      let n = 0;
      let k = 0;
      // At least one entry, then as many whole entries as fit.
      do n += this.#queue[k++]!.items.length;
      while (k < this.#queue.length && n + this.#queue[k]!.items.length <= this.#maxItems);
      const taken = this.#queue.splice(0, k);
      this.#queued -= n;
      const items = taken.length === 1 ? taken[0]!.items : taken.flatMap((e) => e.items);
      const refs = taken.length === 1 ? taken[0]!.refs : taken.flatMap((e) => e.refs);
      try {
        await this.#write(items, refs);
        for (const e of taken) e.resolve();
      } catch (err) {
        for (const e of taken) e.reject(err);
      } finally {
        this.pending -= n;
      }
    }
    this.#running--;
    // Entries that came while writing but are not ready yet: linger for them.
    this.#kick();
  }
}

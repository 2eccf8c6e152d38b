/**
 * Merges writes that queue up while the sink is busy into the next single write.
 *
 * Up to `concurrency` writes run at once (a PostgreSQL pool takes several); a write starts at
 * once when a slot is free (no linger: latency when idle); while every slot is busy, later
 * batches queue, and the next write takes all of them (up to maxItems). Under load a sink
 * then pays its per-write cost (a DuckDB or PostgreSQL transaction) once per round trip
 * instead of once per fetched batch, which is what lets it keep up. Each caller's promise
 * settles with the write that carried its items; order is preserved.
 */
export class Coalescer<T, R> {
  readonly #write: (items: T[], refs: R[]) => Promise<void>;
  readonly #maxItems: number;
  readonly #concurrency: number;
  #queue: { items: T[]; refs: R[]; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #running = 0;
  /** Items queued or being written. */
  pending = 0;

  constructor(write: (items: T[], refs: R[]) => Promise<void>, maxItems: number, concurrency = 1) {
    this.#write = write;
    this.#maxItems = maxItems;
    this.#concurrency = concurrency;
  }

  /** Queues items (with a parallel array of references: the records they came from). */
  push(items: T[], refs: R[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    this.pending += items.length;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ items, refs, resolve, reject });
      if (this.#running < this.#concurrency) void this.#drain();
    });
  }

  /** One writer slot: writes queued entries until the queue is empty. */
  async #drain(): Promise<void> {
    this.#running++;
    while (this.#queue.length > 0) {
      let n = 0;
      let k = 0;
      // At least one entry, then as many whole entries as fit.
      do n += this.#queue[k++]!.items.length;
      while (k < this.#queue.length && n + this.#queue[k]!.items.length <= this.#maxItems);
      const taken = this.#queue.splice(0, k);
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
  }
}

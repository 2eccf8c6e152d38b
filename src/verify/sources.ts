/**
 * `paystream verify`, the read side it needs beyond the ports: row counts asked of the
 * warehouse while the input topic is still being read. Everything is batched: one warehouse
 * query per chunk of keys. Topics and alerts are read through the TopicReader and
 * AlertReader ports (src/contracts/ports.ts), whose Kafka and Redis implementations live in
 * src/adapters.
 */
import type { InspectableWarehouse, KeyedTableName, TopicReadResult } from "../contracts/ports.ts";

/** What one topic read found (the port's answer). */
export type TopicRead = TopicReadResult;

/**
 * Row counts by primary key for many keys, asked while the keys are still being found: ids
 * are pushed one by one (as the input topic is read), handed to the warehouse in chunks (it
 * splits them further per query) one chunk at a time behind the reading, and each chunk's
 * counts go to `onChunk` at once, so memory holds one chunk's answer, not millions.
 */
export class ChunkedKeyCounter {
  readonly #wh: Pick<InspectableWarehouse, "countByKey">;
  readonly #table: KeyedTableName;
  readonly #size: number;
  readonly #onChunk: (ids: readonly string[], counts: ReadonlyMap<string, number>) => void;
  #chunk: string[] = [];
  #chain: Promise<void> = Promise.resolve();
  /** Keys whose counts have arrived. */
  checked = 0;

  constructor(
    wh: Pick<InspectableWarehouse, "countByKey">,
    table: KeyedTableName,
    onChunk: (ids: readonly string[], counts: ReadonlyMap<string, number>) => void,
    chunkSize = 200_000,
  ) {
    this.#wh = wh;
    this.#table = table;
    this.#onChunk = onChunk;
    this.#size = chunkSize;
  }

  push(key: string): void {
    this.#chunk.push(key);
    if (this.#chunk.length >= this.#size) this.#submit();
  }

  #submit(): void {
    if (this.#chunk.length === 0) return;
    const ids = this.#chunk;
    this.#chunk = [];
    this.#chain = this.#chain.then(async () => {
      this.#onChunk(ids, await this.#wh.countByKey(this.#table, ids));
      this.checked += ids.length;
    });
    // Failures surface in finish(); until then they must not count as unhandled.
    this.#chain.catch(() => {});
  }

  /** Submits what is left and waits for every chunk's answer (rethrows the first failure). */
  async finish(): Promise<void> {
    this.#submit();
    await this.#chain;
  }
}

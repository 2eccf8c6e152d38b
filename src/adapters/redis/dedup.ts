/**
 * Shared dedup store in Redis: one pipelined round trip per batch, never one per transaction.
 *
 * A claim records its OWNER (the partition/offset of the first record that carried the id),
 * not just "seen". That is what makes dedup safe across a crash: if the processor claimed an
 * id and died before committing, the replay of that same record finds its own claim and is
 * processed again (its outputs are idempotent), while a genuine resend — another offset —
 * finds someone else's claim and is dropped. A plain SET NX would lose the replayed record.
 *
 * `SET key owner NX GET EX ttl` does claim-and-read in one command (Redis ≥ 7.0).
 */
import type { DedupClaim, DedupStore } from "../../contracts/ports.ts";
import type { Redis } from "./client.ts";

export const DEDUP_KEY_PREFIX = "ps:dedup:";

export class RedisDedupStore implements DedupStore {
  readonly #redis: Redis;
  readonly #ttlSeconds: number;

  constructor(redis: Redis, ttlMs: number) {
    this.#redis = redis;
    this.#ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
  }

  /** For each claim: true when this owner holds it (first seen, or its own earlier claim). */
  async claim(claims: readonly DedupClaim[]): Promise<boolean[]> {
    if (claims.length === 0) return [];
    const pipe = this.#redis.multi();
    for (const c of claims) {
      pipe.set(DEDUP_KEY_PREFIX + c.id, c.owner, {
        condition: "NX",
        GET: true,
        expiration: { type: "EX", value: this.#ttlSeconds },
      });
    }
    const replies = (await pipe.execAsPipeline()) as unknown as (string | null)[];
    const out = new Array<boolean>(claims.length);
    for (let i = 0; i < claims.length; i++) {
      const prev = replies[i];
      out[i] = prev === null || prev === undefined || prev === claims[i]!.owner;
    }
    return out;
  }
}

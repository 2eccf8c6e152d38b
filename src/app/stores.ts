/**
 * The alert ports (AlertStore, AlertReader) and the shared dedup tier (DedupStore) on Redis
 * or on the embedded in-process store. One Redis connection serves all three.
 */
import { EmbeddedAlertReader, EmbeddedAlertStore } from "../adapters/embedded/alerts.ts";
import { EmbeddedCaseState, EmbeddedCaseStore } from "../adapters/embedded/cases.ts";
import { RedisAlertReader, RedisAlertStore } from "../adapters/redis/alerts.ts";
import { RedisCaseStore } from "../adapters/redis/cases.ts";
import { connectRedis, type Redis } from "../adapters/redis/client.ts";
import { RedisDedupStore } from "../adapters/redis/dedup.ts";
import type { AlertReader, AlertStore, CaseStore, DedupStore } from "../contracts/ports.ts";
import { InMemorySharedDedupStore } from "../core/dedup.ts";
import type { Logger } from "../lib/log.ts";
import { redactUrl } from "../lib/url.ts";

export interface AlertStores {
  readonly kind: "redis" | "embedded";
  /** For banners and logs: the Redis URL (password redacted), or "embedded store". */
  readonly label: string;
  readonly store: AlertStore;
  readonly reader: AlertReader;
  /** The shared dedup tier, remembering claims for `ttlMs`. */
  dedup(ttlMs: number): DedupStore;
  /**
   * The case store, filing with `gapMs` (default the window). Every call sees the same cases:
   * the processor's (which files) and the dashboard's (which only reads and sets status).
   */
  cases(gapMs?: number): CaseStore;
  close(): Promise<void>;
}

/** Redis when a URL is given (fails fast, naming the address, when it does not answer), else embedded. */
export async function openAlertStores(redisUrl: string | undefined, log: Logger): Promise<AlertStores> {
  if (redisUrl === undefined) {
    const store = new EmbeddedAlertStore();
    const cases = new EmbeddedCaseState();
    return {
      kind: "embedded",
      label: "embedded store",
      store,
      reader: new EmbeddedAlertReader(store),
      dedup: (ttlMs) => new InMemorySharedDedupStore({ ttlMs }),
      cases: (gapMs) => new EmbeddedCaseStore({ state: cases, ...(gapMs === undefined ? {} : { gapMs }) }),
      close: () => store.close(),
    };
  }
  const redis = await connectRedis({
    url: redisUrl,
    onError: (err) => log.warn({ err: err.message }, "redis connection error"),
  });
  return redisStores(redis, redisUrl, () => redis.destroy());
}

/** The ports on a Redis client opened elsewhere; `close` is what closing them does to it. */
export function redisStores(redis: Redis, url: string, close: () => void = () => {}): AlertStores {
  const store = new RedisAlertStore(redis);
  return {
    kind: "redis",
    label: redactUrl(url),
    store,
    reader: new RedisAlertReader(redis, url),
    dedup: (ttlMs) => new RedisDedupStore(redis, ttlMs),
    cases: (gapMs) => new RedisCaseStore(redis, gapMs === undefined ? {} : { gapMs }),
    close: async () => {
      await store.close();
      close();
    },
  };
}

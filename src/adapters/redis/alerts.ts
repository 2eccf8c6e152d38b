/**
 * Alerts into Redis for live consumers (RedisAlertStore), in one pipelined round trip per batch:
 *   fraud:alert:<id>        hash, TTL                  — the alert itself, idempotent by id
 *   fraud:alerts            stream, capped (~MAXLEN)   — ordered feed; entry id derived from the alert
 *   fraud:active_accounts   sorted set, score = time   — who is alerting now
 *   fraud:alerts:live       PUBLISH                    — push to subscribers (dashboard)
 *
 * Replays must not add a second copy: the hash is rewritten in place, and the stream entry is
 * guarded by `HSETNX fraud:alert:<id> streamed 1` evaluated in a Lua script so the XADD and
 * PUBLISH happen only the first time an alert id is seen.
 *
 * RedisAlertReader reads them back: the stream and the zset for the dashboard's feed, the
 * hashes for `paystream verify`.
 */
import type { Alert } from "../../contracts/alert.ts";
import { alertToJson } from "../../contracts/alert.ts";
import type { AlertReader, AlertStore, ShadowSummary } from "../../contracts/ports.ts";
import { AlertKeys } from "../../contracts/redis.ts";
import { redactUrl } from "../../lib/url.ts";
import type { Redis } from "./client.ts";

// KEYS[1]=alert hash, KEYS[2]=stream, KEYS[3]=zset; ARGV: ttl, maxlen, account, score, json, channel, field/value pairs...
const WRITE_ALERT = `
local fresh = redis.call('HSETNX', KEYS[1], 'alert_id', ARGV[7])
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[3], 'GT', tonumber(ARGV[4]), ARGV[3])
if fresh == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[2]), '*', 'alert', ARGV[5])
  redis.call('PUBLISH', ARGV[6], ARGV[5])
end
return fresh
`;

// KEYS[1]=seen marker, KEYS[2]=shadow stream, KEYS[3]=per-rule hash; ARGV: ttl, maxlen, rule id, json.
// Shadow alerts stay out of the live keys and channel: only these three are touched.
const WRITE_SHADOW = `
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1]))
if fresh then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[2]), '*', 'alert', ARGV[4])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  return 1
end
return 0
`;

export interface RedisAlertStoreOptions {
  ttlSeconds?: number;
  streamMaxLen?: number;
  /** Shadow alerts kept for the dashboard (the per-rule counts are not capped). */
  shadowMaxLen?: number;
}

export class RedisAlertStore implements AlertStore {
  readonly #redis: Redis;
  readonly #ttl: number;
  readonly #maxLen: number;
  readonly #shadowMaxLen: number;
  #sha: string | undefined;
  #shadowSha: string | undefined;

  constructor(redis: Redis, opts: RedisAlertStoreOptions = {}) {
    this.#redis = redis;
    this.#ttl = opts.ttlSeconds ?? 7 * 24 * 3600;
    this.#maxLen = opts.streamMaxLen ?? 100_000;
    this.#shadowMaxLen = opts.shadowMaxLen ?? 10_000;
  }

  async writeShadowAlerts(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    try {
      await this.#writeShadow(alerts);
    } catch (err) {
      if (!String((err as Error).message).includes("NOSCRIPT")) throw err;
      this.#shadowSha = undefined;
      await this.#writeShadow(alerts);
    }
  }

  async #writeShadow(alerts: Alert[]): Promise<void> {
    this.#shadowSha ??= await this.#redis.scriptLoad(WRITE_SHADOW);
    const pipe = this.#redis.multi();
    for (const a of alerts) {
      pipe.evalSha(this.#shadowSha, {
        keys: [AlertKeys.shadowSeen(a.alertId), AlertKeys.shadowStream, AlertKeys.shadowByRule],
        arguments: [String(this.#ttl), String(this.#shadowMaxLen), a.ruleId, alertToJson(a)],
      });
    }
    await pipe.execAsPipeline();
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    try {
      await this.#write(alerts);
    } catch (err) {
      // A restarted Redis has lost its script cache; load it again once.
      if (!String((err as Error).message).includes("NOSCRIPT")) throw err;
      this.#sha = undefined;
      await this.#write(alerts);
    }
  }

  async #write(alerts: Alert[]): Promise<void> {
    this.#sha ??= await this.#redis.scriptLoad(WRITE_ALERT);
    const pipe = this.#redis.multi();
    for (const a of alerts) {
      const json = alertToJson(a);
      const fields = [
        "rule_id",
        a.ruleId,
        "severity",
        a.severity,
        "account_id",
        a.accountId,
        "transaction_id",
        a.transactionId,
        "event_time_ms",
        String(a.eventTimeMs),
        "detected_at_ms",
        String(a.detectedAtMs),
        "json",
        json,
      ];
      pipe.evalSha(this.#sha, {
        keys: [AlertKeys.alert(a.alertId), AlertKeys.stream, AlertKeys.activeAccounts],
        arguments: [
          String(this.#ttl),
          String(this.#maxLen),
          a.accountId,
          String(a.detectedAtMs),
          json,
          AlertKeys.channel,
          a.alertId,
          ...fields,
        ],
      });
    }
    await pipe.execAsPipeline();
  }

  async close(): Promise<void> {}
}

export class RedisAlertReader implements AlertReader {
  readonly #redis: Redis;
  readonly source: string;

  /** `url` only names the source (password redacted); the client is the caller's to close. */
  constructor(redis: Redis, url?: string) {
    this.#redis = redis;
    this.source = `redis ${url ? `${redactUrl(url)} ` : ""}(${AlertKeys.stream})`;
  }

  async latest(limit: number): Promise<unknown[]> {
    const entries = await this.#redis.xRevRange(AlertKeys.stream, "+", "-", { COUNT: limit });
    const out: unknown[] = [];
    for (const e of entries ?? []) {
      const json = e.message.alert;
      if (typeof json !== "string") continue;
      try {
        out.push(JSON.parse(json));
      } catch {
        // not an alert entry: skip it
      }
    }
    return out;
  }

  activeAccounts(sinceMs: number): Promise<number> {
    return this.#redis.zCount(AlertKeys.activeAccounts, sinceMs, "+inf");
  }

  async shadowSummary(limit: number): Promise<ShadowSummary> {
    const [counts, entries] = await Promise.all([
      this.#redis.hGetAll(AlertKeys.shadowByRule),
      this.#redis.xRevRange(AlertKeys.shadowStream, "+", "-", { COUNT: limit }),
    ]);
    const byRule: Record<string, number> = {};
    for (const [rule, n] of Object.entries(counts ?? {})) byRule[rule] = Number(n);
    const latest: unknown[] = [];
    for (const e of entries ?? []) {
      const json = e.message.alert;
      if (typeof json !== "string") continue;
      try {
        latest.push(JSON.parse(json));
      } catch {
        // not an alert entry: skip it
      }
    }
    return { byRule, latest };
  }

  /** Pipelined EXISTS on the `fraud:alert:<id>` hashes, 1,000 per round trip. */
  async existing(ids: readonly string[]): Promise<Set<string>> {
    const present = new Set<string>();
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      const pipe = this.#redis.multi();
      for (const id of chunk) pipe.exists(AlertKeys.alert(id));
      const res = await pipe.execAsPipeline();
      res.forEach((n, j) => {
        if (Number(n) > 0) present.add(chunk[j]!);
      });
    }
    return present;
  }
}

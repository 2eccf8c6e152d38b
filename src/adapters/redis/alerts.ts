/**
 * Alerts into Redis for live consumers, in one pipelined round trip per batch:
 *   fraud:alert:<id>        hash, TTL                  — the alert itself, idempotent by id
 *   fraud:alerts            stream, capped (~MAXLEN)   — ordered feed; entry id derived from the alert
 *   fraud:active_accounts   sorted set, score = time   — who is alerting now
 *   fraud:alerts:live       PUBLISH                    — push to subscribers (dashboard)
 *
 * Replays must not add a second copy: the hash is rewritten in place, and the stream entry is
 * guarded by `HSETNX fraud:alert:<id> streamed 1` evaluated in a Lua script so the XADD and
 * PUBLISH happen only the first time an alert id is seen.
 */
import type { Alert } from "../../contracts/alert.ts";
import { alertToJson } from "../../contracts/alert.ts";
import type { AlertStore } from "../../contracts/ports.ts";
import { AlertKeys } from "../../contracts/redis.ts";
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

export interface RedisAlertStoreOptions {
  ttlSeconds?: number;
  streamMaxLen?: number;
}

export class RedisAlertStore implements AlertStore {
  readonly #redis: Redis;
  readonly #ttl: number;
  readonly #maxLen: number;
  #sha: string | undefined;

  constructor(redis: Redis, opts: RedisAlertStoreOptions = {}) {
    this.#redis = redis;
    this.#ttl = opts.ttlSeconds ?? 7 * 24 * 3600;
    this.#maxLen = opts.streamMaxLen ?? 100_000;
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

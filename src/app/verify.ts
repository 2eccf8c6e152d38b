/**
 * `paystream verify` on real services: opens the ports verify reads (Kafka topics, the Redis
 * alert hashes, the warehouse read side), runs the reconciliation, and closes what it
 * opened. Connections come first, so a bad warehouse URL fails before minutes of reading.
 */
import { KafkaTopicReader } from "../adapters/kafka/reader.ts";
import { RedisAlertReader } from "../adapters/redis/alerts.ts";
import { connectRedis, type Redis } from "../adapters/redis/client.ts";
import type { InspectableWarehouse } from "../contracts/ports.ts";
import { ConfigError } from "../core/errors.ts";
import { runVerification, type VerifyRun, type VerifyRunOptions } from "../verify/verify.ts";
import { openWarehouseForReading } from "./warehouse.ts";

export type { VerifyRun };

export interface VerifyOptions extends VerifyRunOptions {
  brokers: string[];
  /** Redis URL, or an open client (left open). */
  redisUrl?: string;
  redis?: Redis;
  /** Warehouse URL (opened without migrating), or an open warehouse (left open). */
  warehouseUrl?: string;
  warehouse?: InspectableWarehouse;
  clientId?: string;
}

export async function verify(opts: VerifyOptions): Promise<VerifyRun> {
  if (!opts.warehouse && !opts.warehouseUrl) throw new ConfigError("warehouse", "is required");
  if (!opts.redis && !opts.redisUrl) throw new ConfigError("redis.url", "is required");
  const warehouse = opts.warehouse ?? (await openWarehouseForReading(opts.warehouseUrl!));
  let redis: Redis | undefined;
  try {
    redis = opts.redis ?? (await connectRedis({ url: opts.redisUrl! }));
    const topics = new KafkaTopicReader({
      brokers: opts.brokers,
      clientId: opts.clientId ?? "paystream-verify",
    });
    const alerts = new RedisAlertReader(redis, opts.redisUrl);
    return await runVerification({ topics, alerts, warehouse }, opts);
  } finally {
    if (!opts.redis) redis?.destroy();
    if (!opts.warehouse) await warehouse.close().catch(() => {});
  }
}

/**
 * Redis adapter: connection with bounded reconnect backoff and errors that name the address.
 * Hot paths use explicit pipelines (multi/exec without MULTI, i.e. `client.multi().execAsPipeline()`).
 */
import { createClient, type RedisClientType } from "redis";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
import { redactUrl } from "../../lib/url.ts";

export type Redis = RedisClientType;

export interface RedisConnectOptions {
  url: string;
  /** Give up the first connection after this long (later disconnects retry forever). */
  connectTimeoutMs?: number;
  onError?: (err: Error) => void;
}

export async function connectRedis(opts: RedisConnectOptions): Promise<Redis> {
  const client = createClient({
    url: opts.url,
    // Fail commands at once while disconnected instead of queueing them: the caller's retry
    // loop then reports the outage (not-ready, error metrics) and holds offsets meanwhile.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      // Exponential backoff capped at 2 s; the processor reports not-ready meanwhile.
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
    },
  }) as Redis;
  client.on("error", (err: Error) => opts.onError?.(err));
  const deadline = opts.connectTimeoutMs ?? 5000;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline).unref(),
      ),
    ]);
    await client.ping();
  } catch (err) {
    client.destroy();
    throw new PaystreamError(
      ErrorCodes.REDIS_UNAVAILABLE,
      `cannot reach Redis at ${redactUrl(opts.url)}: ${(err as Error).message}`,
      { cause: err, retriable: true, details: { url: redactUrl(opts.url) } },
    );
  }
  return client;
}

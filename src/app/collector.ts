/**
 * `paystream collector`: the collector service on a Kafka producer (its own topics created
 * if missing: a produce to a missing topic would only retry).
 */
import type { CollectorConfig } from "../collector/config.ts";
import { collectorAccess, type RunningCollector, startCollector } from "../collector/service.ts";
import { Topics } from "../contracts/topics.ts";
import type { Logger } from "../lib/log.ts";
import { openRecordLog } from "./log.ts";

export interface CollectorProcess {
  running: RunningCollector;
  /** Closes the producer; after running.stop(). */
  close(): Promise<void>;
}

export async function runCollector(cfg: CollectorConfig, log: Logger): Promise<CollectorProcess> {
  // A missing API token stops start-up before anything connects.
  const access = collectorAccess(cfg, log);
  const recordLog = await openRecordLog({
    brokers: cfg.brokers,
    clientId: `paystream-collector-${process.pid}`,
    topics: { [Topics.transactions]: cfg.topic, [Topics.labels]: cfg.labelsTopic },
    compression: cfg.compression,
  });
  try {
    return {
      running: await startCollector(cfg, recordLog.sink, log, { access }),
      close: () => recordLog.close(),
    };
  } catch (err) {
    await recordLog.close();
    throw err;
  }
}

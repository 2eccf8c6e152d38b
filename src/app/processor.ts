/**
 * The one way a processor is built: on an adapter graph, for `paystream processor` (Kafka,
 * Redis and the configured warehouse) and `paystream up` (each part embedded or real). Both
 * go through startProcessorOn, so the two differ only in the graph.
 */
import { Topics } from "../contracts/topics.ts";
import type { Logger } from "../lib/log.ts";
import type { ProcessorConfig } from "../processor/config.ts";
import { type RunningProcessor, startProcessor } from "../processor/service.ts";
import { type AdapterGraph, openGraph } from "./graph.ts";
import type { TopicNames } from "./log.ts";
import { openRulesLogOn } from "./rules-log.ts";

/** The topics the processor reads and writes, under their configured names. */
export function processorTopics(cfg: ProcessorConfig): TopicNames {
  return {
    [Topics.transactions]: cfg.kafka.topic,
    [Topics.dlq]: cfg.kafka.dlqTopic,
    [Topics.alerts]: cfg.kafka.alertsTopic,
  };
}

/**
 * Starts a processor on `graph`. The processor is the graph's last user: its stop closes
 * the graph (in `up` the collector, which shares the producer, has stopped by then).
 */
export async function startProcessorOn(
  graph: AdapterGraph,
  cfg: ProcessorConfig,
  log: Logger,
  opts: Parameters<typeof startProcessor>[3] = {},
): Promise<RunningProcessor> {
  const source = graph.log.source({
    topic: cfg.kafka.topic,
    groupId: cfg.kafka.groupId,
    groupProtocol: cfg.kafka.groupProtocol,
    maxBatch: cfg.maxBatch,
  });
  let rulesLog: Awaited<ReturnType<typeof openRulesLogOn>> | undefined;
  try {
    rulesLog = await openRulesLogOn(graph.log, cfg.kafka.rulesTopic, `paystream-processor-${process.pid}`);
    return await startProcessor(
      cfg,
      log,
      {
        source,
        sink: graph.log.sink,
        alertStore: graph.stores.store,
        ...(cfg.dedupShared ? { dedupStore: graph.stores.dedup(cfg.dedupTtlMs) } : {}),
        caseStore: graph.stores.cases(cfg.caseGapMs),
        warehouse: graph.warehouse,
        rulesLog,
        close: () => graph.close(),
      },
      opts,
    );
  } catch (err) {
    // Refused before it ran (no PII key, bad rules file): leave no connection behind.
    await source.close().catch(() => {});
    await rulesLog?.close().catch(() => {});
    await graph.close().catch(() => {});
    throw err;
  }
}

/** `paystream processor`: a consumer-group member on the real services. */
export async function runProcessor(cfg: ProcessorConfig, log: Logger): Promise<RunningProcessor> {
  const graph = await openGraph(
    {
      clientId: `paystream-processor-${process.pid}`,
      brokers: cfg.kafka.brokers,
      redisUrl: cfg.redisUrl,
      warehouse: cfg.warehouse,
      topics: processorTopics(cfg),
    },
    log,
  );
  return startProcessorOn(graph, cfg, log);
}

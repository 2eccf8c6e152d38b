/**
 * Backtests for the command line: the runner (src/dashboard/backtest-api.ts, where the
 * dashboard's route can reach it too) on a Kafka TopicReader, and the rule sets it compares
 * read from the rules log. The embedded log's EmbeddedTopicReader works the same way (`up`).
 */
import { KafkaTopicReader } from "../adapters/kafka/reader.ts";
import type { TopicReader } from "../contracts/ports.ts";
import type { RuleVersion } from "../contracts/rules-log.ts";
import { openRulesLog } from "./rules-log.ts";

export {
  type BacktestReport,
  type BacktestTopics,
  type RunBacktestOptions,
  runBacktest,
  type VersionedRuleSet,
} from "../dashboard/backtest-api.ts";

export function kafkaTopicReader(brokers: readonly string[], clientId = "paystream-backtest"): TopicReader {
  return new KafkaTopicReader({ brokers: [...brokers], clientId });
}

/** Every published rules version, oldest first (empty when none was published). */
export async function publishedVersions(
  brokers: readonly string[],
  topic: string,
  clientId = "paystream-backtest",
): Promise<RuleVersion[]> {
  const log = await openRulesLog({ brokers, clientId, topic });
  try {
    return await log.history();
  } finally {
    await log.close().catch(() => {});
  }
}

/**
 * The rules control log (RulesLog port) on Kafka or on the embedded log. The topic goes by
 * its deployment name (--rules-topic, like --topic and --dlq-topic), so a test or a second
 * pipeline on the same broker with its own names gets its own rules log.
 */
import type { EmbeddedLog } from "../adapters/embedded/log.ts";
import { EmbeddedRulesLog } from "../adapters/embedded/rules-log.ts";
import { ensureTopics } from "../adapters/kafka/client.ts";
import { KafkaRulesLog } from "../adapters/kafka/rules-log.ts";
import type { RulesLog } from "../contracts/rules-log.ts";
import { Topics } from "../contracts/topics.ts";
import type { RecordLog } from "./log.ts";

export type RulesLogSpec =
  | { brokers: readonly string[]; clientId: string; topic: string }
  | { embedded: EmbeddedLog; topic: string };

/** On Kafka the topic is created (compacted, one partition) if missing. */
export async function openRulesLog(spec: RulesLogSpec): Promise<RulesLog> {
  if ("embedded" in spec) return new EmbeddedRulesLog(spec.embedded, spec.topic);
  const conn = { brokers: [...spec.brokers], clientId: spec.clientId };
  await ensureTopics(conn, [Topics.rules], undefined, { [Topics.rules]: spec.topic });
  return new KafkaRulesLog(conn, spec.topic);
}

/** The rules log next to a record log: the same broker, or the same in-process log. */
export function openRulesLogOn(log: RecordLog, topic: string, clientId: string): Promise<RulesLog> {
  if (log.embedded) return openRulesLog({ embedded: log.embedded, topic });
  if (!log.brokers) throw new Error(`record log ${log.label} has neither brokers nor an embedded log`);
  return openRulesLog({ brokers: log.brokers, clientId, topic });
}

/**
 * The record-log ports (RecordSink, RecordSource) on Kafka or on the embedded log. Opening
 * checks the broker and creates the topics this process uses under their deployment names,
 * with the partition counts of contracts/topics.ts, so a produce or a group join never waits
 * on a topic that is not there.
 */
import { EmbeddedLog, EmbeddedSink, EmbeddedSource } from "../adapters/embedded/log.ts";
import { checkKafka, createProducer, ensureTopics, type KafkaConnection } from "../adapters/kafka/client.ts";
import { KafkaSink, KafkaSource } from "../adapters/kafka/log.ts";
import type { RecordSink, RecordSource } from "../contracts/ports.ts";
import { TopicLayout, type TopicName } from "../contracts/topics.ts";

/** The topics this process reads or writes: each default name, and the name it goes by here. */
export type TopicNames = Partial<Record<TopicName, string>>;

export type ProducerCompression = "none" | "gzip" | "snappy" | "lz4" | "zstd";

export interface RecordLogSpec {
  /** Kafka bootstrap brokers; undefined: the embedded in-process log. */
  brokers: readonly string[] | undefined;
  clientId: string;
  topics: TopicNames;
  compression?: ProducerCompression;
}

export interface SourceSpec {
  topic: string;
  groupId: string;
  groupProtocol?: "consumer" | "classic";
  maxBatch?: number;
}

export interface RecordLog {
  readonly kind: "kafka" | "embedded";
  /** For banners and logs: the brokers, or "embedded log". */
  readonly label: string;
  /** Kafka's bootstrap brokers; undefined for the embedded log. */
  readonly brokers?: readonly string[];
  /** The in-process log itself (embedded only): what the rules log of `up` lives on. */
  readonly embedded?: EmbeddedLog;
  /** The one producer of this process (the collector and processor of `up` share it). */
  readonly sink: RecordSink;
  /** A consumer-group member on `spec.topic`. Its owner closes it. */
  source(spec: SourceSpec): RecordSource;
  close(): Promise<void>;
}

export function openRecordLog(spec: RecordLogSpec): Promise<RecordLog> {
  return spec.brokers !== undefined
    ? openKafkaLog({ brokers: [...spec.brokers], clientId: spec.clientId }, spec)
    : Promise.resolve(openEmbeddedLog(spec));
}

/** Every topic of the layout, with the deployment's names substituted where given. */
function layoutOf(topics: TopicNames): Map<string, number> {
  const out = new Map<string, number>();
  for (const [t, name] of Object.entries(topics) as [TopicName, string | undefined][]) {
    out.set(name ?? t, TopicLayout[t].partitions);
  }
  return out;
}

async function openKafkaLog(conn: KafkaConnection, spec: RecordLogSpec): Promise<RecordLog> {
  await checkKafka(conn);
  const which = Object.keys(spec.topics) as TopicName[];
  await ensureTopics(conn, which, undefined, spec.topics);
  const compression = spec.compression ?? "none";
  const sink =
    compression === "none"
      ? new KafkaSink(conn)
      : new KafkaSink(conn, undefined, () => createProducer(conn, { compression }));
  return {
    kind: "kafka",
    label: `kafka ${conn.brokers.join(",")}`,
    brokers: conn.brokers,
    sink,
    source: (s) =>
      new KafkaSource(conn, {
        topic: s.topic,
        groupId: s.groupId,
        ...(s.groupProtocol ? { groupProtocol: s.groupProtocol } : {}),
        ...(s.maxBatch ? { maxBatch: s.maxBatch } : {}),
      }),
    close: () => sink.close(),
  };
}

function openEmbeddedLog(spec: RecordLogSpec): RecordLog {
  const log = new EmbeddedLog();
  // The whole default layout as well: in one process every part shares this log, and a
  // record to a topic nobody created would be an error rather than a drop.
  for (const [topic, { partitions }] of Object.entries(TopicLayout)) log.createTopic(topic, partitions);
  for (const [topic, partitions] of layoutOf(spec.topics)) log.createTopic(topic, partitions);
  const sink = new EmbeddedSink(log);
  return {
    kind: "embedded",
    label: "embedded log",
    embedded: log,
    sink,
    source: (s) => new EmbeddedSource(log, s.topic, s.maxBatch),
    close: () => sink.close(),
  };
}

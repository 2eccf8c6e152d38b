/** The processor's options: one table for parsing, env vars and `--help`. */
import { CONSUMER_GROUP, Topics } from "../contracts/topics.ts";
import { type OptionTable, p } from "../lib/config.ts";

export const processorOptions = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "PAYSTREAM_KAFKA_BROKERS",
    description: "Kafka bootstrap brokers, host:port[,host:port]",
    parse: p.brokers(),
    default: ["127.0.0.1:9092"],
  },
  {
    key: "kafka.groupId",
    flag: "group",
    env: "PAYSTREAM_GROUP_ID",
    description: "consumer group shared by all processor replicas",
    parse: p.string({ min: 1 }),
    default: CONSUMER_GROUP,
  },
  {
    key: "kafka.topic",
    flag: "topic",
    env: "PAYSTREAM_TOPIC",
    description: "input topic of schema-v1 transactions",
    parse: p.string({ min: 1 }),
    default: Topics.transactions,
  },
  {
    key: "kafka.dlqTopic",
    flag: "dlq-topic",
    env: "PAYSTREAM_DLQ_TOPIC",
    description: "dead-letter topic: invalid and unwritable records, with the reason in headers",
    parse: p.string({ min: 1 }),
    default: Topics.dlq,
  },
  {
    key: "kafka.alertsTopic",
    flag: "alerts-topic",
    env: "PAYSTREAM_ALERTS_TOPIC",
    description: "topic every alert is also produced to (keyed by account, alert_id header)",
    parse: p.string({ min: 1 }),
    default: Topics.alerts,
  },
  {
    key: "kafka.groupProtocol",
    flag: "group-protocol",
    env: "PAYSTREAM_GROUP_PROTOCOL",
    description: "consumer group protocol: consumer (KIP-848, incremental) or classic",
    parse: p.oneOf("consumer", "classic"),
    default: "consumer",
  },
  {
    key: "redis.url",
    flag: "redis",
    env: "PAYSTREAM_REDIS_URL",
    description: "Redis for alerts and the shared dedup store",
    parse: p.url("redis", "rediss"),
    default: "redis://127.0.0.1:6379",
  },
  {
    key: "warehouse",
    flag: "warehouse",
    env: "PAYSTREAM_WAREHOUSE",
    description: "warehouse: duckdb:<path> | postgres://... | bigquery://<project>/<dataset>",
    parse: p.string({ min: 1 }),
    default: "duckdb:./data/paystream.duckdb",
  },
  {
    key: "rules.file",
    flag: "rules",
    env: "PAYSTREAM_RULES_FILE",
    description: "fraud rules file (YAML/JSON); reloaded on change or SIGHUP",
    parse: p.string({ min: 1 }),
    default: "config/rules.default.yaml",
  },
  {
    key: "window.ms",
    flag: "window",
    env: "PAYSTREAM_WINDOW",
    description: "sliding window length (event time)",
    parse: p.duration(1000, 3_600_000),
    default: 60_000,
  },
  {
    key: "window.latenessMs",
    flag: "allowed-lateness",
    env: "PAYSTREAM_ALLOWED_LATENESS",
    description: "how far behind the newest event an event may be and still count as on time",
    parse: p.duration(0, 3_600_000),
    default: 10_000,
  },
  {
    key: "recovery.spanMs",
    flag: "recovery-span",
    env: "PAYSTREAM_RECOVERY_SPAN",
    description:
      "append-time span replayed before the committed offset to rebuild a gained partition's state " +
      "(>= window + lateness; longer also restores amount-spike history and last locations)",
    parse: p.duration(1000, 7 * 24 * 3_600_000),
    default: 75_000,
  },
  {
    key: "dedup.ttlMs",
    flag: "dedup-ttl",
    env: "PAYSTREAM_DEDUP_TTL",
    description: "how long a transaction_id is remembered in Redis (the dedup horizon)",
    parse: p.duration(60_000, 30 * 24 * 3_600_000),
    default: 24 * 3_600_000,
  },
  {
    key: "pii.key",
    flag: "pii-key",
    env: "PAYSTREAM_PII_KEY",
    description: "secret for PII tokens (>= 32 hex chars or >= 16 bytes of text); required unless --demo",
    parse: p.string({ min: 16 }),
    secret: true,
    optional: true,
  },
  {
    key: "demo",
    flag: "demo",
    env: "PAYSTREAM_DEMO",
    description: "demo mode: generate a random PII key (tokens then change on every start)",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
  {
    key: "http.host",
    flag: "host",
    env: "PAYSTREAM_HTTP_HOST",
    description: "address for /metrics, /healthz, /readyz",
    parse: p.string({ min: 1 }),
    default: "0.0.0.0",
  },
  {
    key: "http.port",
    flag: "metrics-port",
    env: "PAYSTREAM_METRICS_PORT",
    description: "port for /metrics, /healthz, /readyz",
    parse: p.int(0, 65535),
    default: 9464,
  },
  {
    key: "batch.max",
    flag: "max-batch",
    env: "PAYSTREAM_MAX_BATCH",
    description: "most records processed as one I/O batch",
    parse: p.int(1, 100_000),
    default: 5000,
  },
  {
    key: "batch.maxInFlight",
    flag: "max-in-flight",
    env: "PAYSTREAM_MAX_IN_FLIGHT",
    description:
      "batches whose writes may be in flight at once (backpressure bound, with 50,000 rows pending)",
    parse: p.int(1, 64),
    default: 16,
  },
  {
    key: "maxMessageBytes",
    flag: "max-message-bytes",
    env: "PAYSTREAM_MAX_MESSAGE_BYTES",
    description: "records larger than this go to the DLQ as oversized",
    parse: p.int(256, 10 * 1024 * 1024),
    default: 16 * 1024,
  },
  {
    key: "duration",
    flag: "duration",
    env: "PAYSTREAM_DURATION",
    description: "stop after this long (0 = run until SIGTERM)",
    parse: p.duration(0),
    default: 0,
  },
] as const satisfies OptionTable;

export interface ProcessorConfig {
  kafka: {
    brokers: string[];
    groupId: string;
    topic: string;
    dlqTopic: string;
    alertsTopic: string;
    groupProtocol: "consumer" | "classic";
  };
  redisUrl: string;
  warehouse: string;
  rulesFile: string;
  windowMs: number;
  allowedLatenessMs: number;
  dedupTtlMs: number;
  recoverySpanMs: number;
  piiKey: string | undefined;
  demo: boolean;
  http: { host: string; port: number };
  maxBatch: number;
  maxInFlight: number;
  maxMessageBytes: number;
  durationMs: number;
}

export function toProcessorConfig(v: Record<string, unknown>): ProcessorConfig {
  return {
    kafka: {
      brokers: v["kafka.brokers"] as string[],
      groupId: v["kafka.groupId"] as string,
      topic: v["kafka.topic"] as string,
      dlqTopic: (v["kafka.dlqTopic"] as string | undefined) ?? Topics.dlq,
      alertsTopic: (v["kafka.alertsTopic"] as string | undefined) ?? Topics.alerts,
      groupProtocol: (v["kafka.groupProtocol"] as "consumer" | "classic" | undefined) ?? "consumer",
    },
    redisUrl: v["redis.url"] as string,
    warehouse: v.warehouse as string,
    rulesFile: v["rules.file"] as string,
    windowMs: v["window.ms"] as number,
    allowedLatenessMs: v["window.latenessMs"] as number,
    dedupTtlMs: v["dedup.ttlMs"] as number,
    recoverySpanMs: (v["recovery.spanMs"] as number | undefined) ?? 75_000,
    piiKey: v["pii.key"] as string | undefined,
    demo: v.demo as boolean,
    http: { host: v["http.host"] as string, port: v["http.port"] as number },
    maxBatch: v["batch.max"] as number,
    maxInFlight: v["batch.maxInFlight"] as number,
    maxMessageBytes: v.maxMessageBytes as number,
    durationMs: v.duration as number,
  };
}

/** The collector's options: one table for parsing, env vars and `--help`. */
import { Topics } from "../contracts/topics.ts";
import { type OptionTable, p } from "../lib/config.ts";

export const collectorOptions = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "PAYSTREAM_KAFKA_BROKERS",
    description: "Kafka bootstrap brokers, host:port[,host:port]",
    parse: p.brokers(),
    default: ["127.0.0.1:9092"],
  },
  {
    key: "topic",
    flag: "topic",
    env: "PAYSTREAM_TOPIC",
    description: "topic the transactions go to",
    parse: p.string({ min: 1 }),
    default: Topics.transactions,
  },
  {
    key: "labelsTopic",
    flag: "labels-topic",
    env: "PAYSTREAM_LABELS_TOPIC",
    description: "topic the ground-truth labels go to",
    parse: p.string({ min: 1 }),
    default: Topics.labels,
  },
  {
    key: "rate",
    flag: "rate",
    env: "PAYSTREAM_RATE",
    description: "initial target rate in transactions per second (change live: POST /config/rate)",
    parse: p.int(0, 10_000_000),
    default: 1000,
  },
  {
    key: "maxRate",
    flag: "max-rate",
    env: "PAYSTREAM_MAX_RATE",
    description: "highest rate the API accepts",
    parse: p.int(1, 10_000_000),
    default: 1_000_000,
  },
  {
    key: "seed",
    flag: "seed",
    env: "PAYSTREAM_SEED",
    description: "traffic seed: the same seed gives the same traffic",
    parse: p.int(0, 2 ** 31 - 1),
    default: 42,
  },
  {
    key: "accounts",
    flag: "accounts",
    env: "PAYSTREAM_ACCOUNTS",
    description: "accounts in the simulated population",
    parse: p.int(100, 10_000_000),
    default: 100_000,
  },
  {
    key: "merchants",
    flag: "merchants",
    env: "PAYSTREAM_MERCHANTS",
    description: "merchants in the simulated population",
    parse: p.int(500, 1_000_000),
    default: 5000,
  },
  {
    key: "scenarioRate",
    flag: "scenario-rate",
    env: "PAYSTREAM_SCENARIO_RATE",
    description:
      "fraud incidents per scenario type: fraction of accounts per hour (PUT /config sets each type)",
    parse: p.number(0, 1),
    default: 0.005,
  },
  {
    key: "faults.duplicate",
    flag: "duplicate-rate",
    env: "PAYSTREAM_DUPLICATE_RATE",
    description: "fraction of records resent as exact duplicates",
    parse: p.number(0, 0.5),
    default: 0.005,
  },
  {
    key: "faults.late",
    flag: "late-rate",
    env: "PAYSTREAM_LATE_RATE",
    description: "fraction of records with event_time up to --late-max in the past",
    parse: p.number(0, 0.5),
    default: 0.002,
  },
  {
    key: "faults.outOfOrder",
    flag: "out-of-order-rate",
    env: "PAYSTREAM_OUT_OF_ORDER_RATE",
    description: "fraction of records out of order within their account",
    parse: p.number(0, 0.5),
    default: 0.005,
  },
  {
    key: "faults.malformed",
    flag: "malformed-rate",
    env: "PAYSTREAM_MALFORMED_RATE",
    description: "fraction of malformed records (bad JSON, missing fields, bad card, ...)",
    parse: p.number(0, 0.5),
    default: 0.001,
  },
  {
    key: "lateMaxMs",
    flag: "late-max",
    env: "PAYSTREAM_LATE_MAX",
    description: "how far in the past late events go",
    parse: p.duration(1001, 3_600_000),
    default: 30_000,
  },
  {
    key: "http.host",
    flag: "host",
    env: "PAYSTREAM_HTTP_HOST",
    description: "address of the control API",
    parse: p.string({ min: 1 }),
    default: "0.0.0.0",
  },
  {
    key: "http.port",
    flag: "port",
    env: "PAYSTREAM_COLLECTOR_PORT",
    description: "port of the control API (/config, /metrics, /healthz, /readyz)",
    parse: p.int(0, 65535),
    default: 5000,
  },
  {
    key: "http.token",
    flag: "api-token",
    env: "PAYSTREAM_API_TOKEN",
    description: "bearer token required by the write endpoints (none = open)",
    parse: p.string({ min: 16 }),
    secret: true,
    optional: true,
  },
  {
    key: "batch.size",
    flag: "batch-size",
    env: "PAYSTREAM_PRODUCER_BATCH",
    description: "most records per produce request",
    parse: p.int(1, 100_000),
    default: 2000,
  },
  {
    key: "batch.lingerMs",
    flag: "linger",
    env: "PAYSTREAM_PRODUCER_LINGER",
    description: "pacing tick: records due are generated and sent every tick",
    parse: p.duration(1, 1000),
    default: 5,
  },
  {
    key: "batch.maxInFlight",
    flag: "max-in-flight",
    env: "PAYSTREAM_PRODUCER_MAX_IN_FLIGHT",
    description: "produce requests in flight before the collector waits (backpressure)",
    parse: p.int(1, 64),
    default: 8,
  },
  {
    key: "compression",
    flag: "compression",
    env: "PAYSTREAM_PRODUCER_COMPRESSION",
    description: "producer compression: none, gzip, snappy, lz4, zstd",
    parse: p.oneOf("none", "gzip", "snappy", "lz4", "zstd"),
    default: "none",
  },
  {
    key: "labelsFile",
    flag: "labels-file",
    env: "PAYSTREAM_LABELS_FILE",
    description: "also append ground-truth labels to this JSONL file",
    parse: p.string({ min: 1 }),
    optional: true,
  },
  {
    key: "duration",
    flag: "duration",
    env: "PAYSTREAM_DURATION",
    description: "stop after this long (0 = run until SIGTERM)",
    parse: p.duration(0),
    default: 0,
  },
  {
    key: "count",
    flag: "count",
    env: "PAYSTREAM_COUNT",
    description: "stop after producing this many records (0 = no limit)",
    parse: p.int(0, Number.MAX_SAFE_INTEGER),
    default: 0,
  },
] as const satisfies OptionTable;

export interface CollectorConfig {
  brokers: string[];
  topic: string;
  labelsTopic: string;
  rate: number;
  maxRate: number;
  seed: number;
  accounts: number;
  merchants: number;
  scenarioRate: number;
  faults: { duplicate: number; late: number; outOfOrder: number; malformed: number };
  lateMaxMs: number;
  http: { host: string; port: number; token: string | undefined };
  batchSize: number;
  lingerMs: number;
  maxInFlight: number;
  compression: "none" | "gzip" | "snappy" | "lz4" | "zstd";
  labelsFile: string | undefined;
  durationMs: number;
  count: number;
}

export function toCollectorConfig(v: Record<string, unknown>): CollectorConfig {
  return {
    brokers: v["kafka.brokers"] as string[],
    topic: (v.topic as string | undefined) ?? Topics.transactions,
    labelsTopic: (v.labelsTopic as string | undefined) ?? Topics.labels,
    rate: v.rate as number,
    maxRate: v.maxRate as number,
    seed: v.seed as number,
    accounts: v.accounts as number,
    merchants: v.merchants as number,
    scenarioRate: v.scenarioRate as number,
    faults: {
      duplicate: v["faults.duplicate"] as number,
      late: v["faults.late"] as number,
      outOfOrder: v["faults.outOfOrder"] as number,
      malformed: v["faults.malformed"] as number,
    },
    lateMaxMs: v.lateMaxMs as number,
    http: {
      host: v["http.host"] as string,
      port: v["http.port"] as number,
      token: v["http.token"] as string | undefined,
    },
    batchSize: v["batch.size"] as number,
    lingerMs: v["batch.lingerMs"] as number,
    maxInFlight: v["batch.maxInFlight"] as number,
    compression: v.compression as CollectorConfig["compression"],
    labelsFile: v.labelsFile as string | undefined,
    durationMs: v.duration as number,
    count: v.count as number,
  };
}

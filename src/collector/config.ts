/** The collector's options: one table for parsing, types, env vars and `--help`. */
import { DefaultPorts } from "../contracts/defaults.ts";
import { type ConfigValues, defineOptions, p, withDefaults, withOverrides } from "../lib/config.ts";
import {
  allowedHosts,
  allowedOrigins,
  apiToken,
  httpConnectionTimeout,
  httpHost,
  httpPort,
  httpRequestTimeout,
  inputTopic,
  insecureOpenApi,
  kafkaBrokers,
  labelsTopic,
  logLevel,
  runDuration,
} from "../lib/options.ts";
import { DEFAULT_FAULT_RATES, DEFAULT_LATE_MAX_MS } from "./generator.ts";
import { DEFAULT_ACCOUNTS, DEFAULT_MERCHANTS, MAX_ACCOUNTS } from "./population.ts";

export const collectorOptions = defineOptions([
  kafkaBrokers,
  withOverrides(inputTopic, { description: "topic the transactions go to" }),
  withOverrides(labelsTopic, { description: "topic the ground-truth labels go to" }),
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
    description: "highest rate the API accepts (one collector process does a few hundred thousand at most)",
    parse: p.int(1, 10_000_000),
    default: 100_000,
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
    parse: p.int(100, MAX_ACCOUNTS),
    default: DEFAULT_ACCOUNTS,
  },
  {
    key: "merchants",
    flag: "merchants",
    env: "PAYSTREAM_MERCHANTS",
    description: "merchants in the simulated population",
    parse: p.int(500, 1_000_000),
    default: DEFAULT_MERCHANTS,
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
    default: DEFAULT_FAULT_RATES.duplicate,
  },
  {
    key: "faults.late",
    flag: "late-rate",
    env: "PAYSTREAM_LATE_RATE",
    description: "fraction of records with event_time up to --late-max in the past",
    parse: p.number(0, 0.5),
    default: DEFAULT_FAULT_RATES.late,
  },
  {
    key: "faults.outOfOrder",
    flag: "out-of-order-rate",
    env: "PAYSTREAM_OUT_OF_ORDER_RATE",
    description: "fraction of records out of order within their account",
    parse: p.number(0, 0.5),
    default: DEFAULT_FAULT_RATES.outOfOrder,
  },
  {
    key: "faults.malformed",
    flag: "malformed-rate",
    env: "PAYSTREAM_MALFORMED_RATE",
    description: "fraction of malformed records (bad JSON, missing fields, bad card, ...)",
    parse: p.number(0, 0.5),
    default: DEFAULT_FAULT_RATES.malformed,
  },
  {
    key: "lateMaxMs",
    flag: "late-max",
    env: "PAYSTREAM_LATE_MAX",
    description: "how far in the past late events go",
    parse: p.duration(1001, 3_600_000),
    default: DEFAULT_LATE_MAX_MS,
  },
  withOverrides(httpHost, { description: "address of the control API" }),
  withOverrides(httpPort, {
    env: "PAYSTREAM_COLLECTOR_PORT",
    description: "port of the control API (/config, /metrics, /healthz, /readyz)",
    default: DefaultPorts.collector,
  }),
  apiToken,
  insecureOpenApi,
  allowedHosts,
  allowedOrigins,
  httpRequestTimeout,
  httpConnectionTimeout,
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
  runDuration,
  {
    key: "count",
    flag: "count",
    env: "PAYSTREAM_COUNT",
    description: "stop after producing this many records (0 = no limit)",
    parse: p.int(0, Number.MAX_SAFE_INTEGER),
    default: 0,
  },
  logLevel,
]);

/** The collector's options as loaded: `loadConfig(collectorOptions).values`. */
export type CollectorValues = ConfigValues<typeof collectorOptions>;

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
  http: {
    host: string;
    port: number;
    token: string | undefined;
    /** No token, on purpose and logged (--insecure-open-api). */
    insecureOpenApi?: boolean;
    /** `paystream up` on loopback or with --demo: no token needed. */
    demo?: boolean;
    /** Host names answered; undefined: loopback names on loopback, any otherwise. */
    allowedHosts?: string[] | undefined;
    allowedOrigins?: string[] | undefined;
    requestTimeoutMs?: number;
    connectionTimeoutMs?: number;
  };
  batchSize: number;
  lingerMs: number;
  maxInFlight: number;
  compression: "none" | "gzip" | "snappy" | "lz4" | "zstd";
  labelsFile: string | undefined;
  durationMs: number;
  count: number;
}

/**
 * The service's view of the values. Keys absent from `values` take the table's default, so a
 * caller holding only some of them (`paystream up` picks a subset) never repeats a default.
 */
export function toCollectorConfig(values: Partial<CollectorValues>): CollectorConfig {
  const v = withDefaults(collectorOptions, values);
  return {
    brokers: v["kafka.brokers"],
    topic: v.topic,
    labelsTopic: v.labelsTopic,
    rate: v.rate,
    maxRate: v.maxRate,
    seed: v.seed,
    accounts: v.accounts,
    merchants: v.merchants,
    scenarioRate: v.scenarioRate,
    faults: {
      duplicate: v["faults.duplicate"],
      late: v["faults.late"],
      outOfOrder: v["faults.outOfOrder"],
      malformed: v["faults.malformed"],
    },
    lateMaxMs: v.lateMaxMs,
    http: {
      host: v["http.host"],
      port: v["http.port"],
      token: v["http.token"],
      insecureOpenApi: v["http.insecureOpenApi"],
      demo: false,
      allowedHosts: v["http.allowedHosts"],
      allowedOrigins: v["http.allowedOrigins"],
      requestTimeoutMs: v["http.requestTimeoutMs"],
      connectionTimeoutMs: v["http.connectionTimeoutMs"],
    },
    batchSize: v["batch.size"],
    lingerMs: v["batch.lingerMs"],
    maxInFlight: v["batch.maxInFlight"],
    compression: v.compression,
    labelsFile: v.labelsFile,
    durationMs: v.duration,
    count: v.count,
  };
}

/** The processor's options: one table for parsing, types, env vars and `--help`. */
import { DefaultPorts, defaultRecoverySpanMs, ProcessorDefaults } from "../contracts/defaults.ts";
import {
  DEFAULT_MAX_AMOUNT_MINOR,
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_MAX_FUTURE_SKEW_MS,
} from "../contracts/transaction.ts";
import { DEFAULT_COORDINATE_DECIMALS, MAX_COORDINATE_DECIMALS } from "../core/masking.ts";
import { formatMinor, MAX_AMOUNT_MINOR_LIMIT, parseAmountMinor } from "../core/schema.ts";
import {
  type ConfigValues,
  defineOptions,
  formatDuration,
  p,
  withDefaults,
  withOverrides,
} from "../lib/config.ts";
import {
  alertsTopic,
  dlqTopic,
  groupId,
  httpHost,
  httpPort,
  inputTopic,
  kafkaBrokers,
  logLevel,
  maxMessageBytes,
  piiKey,
  redisUrl,
  rulesTopic,
  runDuration,
  warehouseUrl,
} from "../lib/options.ts";

const HOUR = 3_600_000;

/** A decimal amount in major units ("1000000000.00"), held as minor units and shown back as decimal. */
const amountParser = Object.assign(
  (raw: unknown): number => {
    const minor = parseAmountMinor(typeof raw === "number" ? raw : String(raw));
    if (!Number.isSafeInteger(minor) || minor <= 0 || minor > MAX_AMOUNT_MINOR_LIMIT)
      throw new Error(
        `must be a positive amount up to ${formatMinor(MAX_AMOUNT_MINOR_LIMIT)}, got ${JSON.stringify(raw)}`,
      );
    return minor;
  },
  { format: formatMinor },
);

export const processorOptions = defineOptions([
  kafkaBrokers,
  withOverrides(groupId, { key: "kafka.groupId" }),
  withOverrides(inputTopic, { key: "kafka.topic", description: "input topic of schema-v1 transactions" }),
  withOverrides(dlqTopic, { key: "kafka.dlqTopic" }),
  withOverrides(alertsTopic, { key: "kafka.alertsTopic" }),
  withOverrides(rulesTopic, { key: "kafka.rulesTopic" }),
  {
    key: "kafka.groupProtocol",
    flag: "group-protocol",
    env: "PAYSTREAM_GROUP_PROTOCOL",
    description: "consumer group protocol: consumer (KIP-848, incremental) or classic",
    parse: p.oneOf("consumer", "classic"),
    default: "consumer",
  },
  redisUrl,
  warehouseUrl,
  {
    key: "rules.file",
    flag: "rules",
    env: "PAYSTREAM_RULES_FILE",
    description:
      "fraud rules file (YAML/JSON): published to the rules log at start-up and when it changes (or on SIGHUP)",
    parse: p.string({ min: 1 }),
    default: "config/rules.default.yaml",
  },
  {
    key: "window.ms",
    flag: "window",
    env: "PAYSTREAM_WINDOW",
    description: "sliding window length (event time)",
    parse: p.duration(1000, HOUR),
    default: ProcessorDefaults.windowMs,
  },
  {
    key: "window.latenessMs",
    flag: "allowed-lateness",
    env: "PAYSTREAM_ALLOWED_LATENESS",
    description: "how far behind the newest event an event may be and still count as on time",
    parse: p.duration(0, HOUR),
    default: ProcessorDefaults.allowedLatenessMs,
  },
  {
    key: "recovery.spanMs",
    flag: "recovery-span",
    env: "PAYSTREAM_RECOVERY_SPAN",
    description:
      "append-time span replayed before the committed offset to rebuild a gained partition's state " +
      "(>= window + lateness; longer also restores amount-spike history and last locations)",
    parse: p.duration(1000, 7 * 24 * HOUR),
    optional: true,
    defaultHelp: `window + allowed lateness + ${formatDuration(ProcessorDefaults.recoveryMarginMs)} (${formatDuration(defaultRecoverySpanMs())})`,
  },
  {
    key: "cases.gapMs",
    flag: "case-gap-ms",
    env: "PAYSTREAM_CASE_GAP_MS",
    description:
      "alerts on one account within this event-time gap of its case's last hit join that case (docs/cases.md)",
    parse: p.duration(1000, 7 * 24 * HOUR),
    optional: true,
    defaultHelp: "the window (--window)",
  },
  {
    key: "cases.syncIntervalMs",
    flag: "case-sync-interval",
    env: "PAYSTREAM_CASE_SYNC_INTERVAL",
    description:
      "how often analysts' case status changes are copied from the case store into the warehouse's fraud_cases (docs/cases.md)",
    parse: p.duration(100, HOUR),
    default: ProcessorDefaults.caseSyncIntervalMs,
  },
  {
    key: "kafka.partitionStallMs",
    flag: "partition-stall",
    env: "PAYSTREAM_PARTITION_STALL",
    description:
      "an owned partition with lag whose records stop arriving for this long, while nothing is in flight, makes the consumer rejoin the group (0: never; docs/processor.md)",
    parse: p.duration(0, HOUR),
    default: ProcessorDefaults.partitionStallMs,
  },
  {
    key: "dedup.shared",
    flag: "dedup-shared",
    env: "PAYSTREAM_DEDUP_SHARED",
    description:
      "also claim every transaction_id in Redis for --dedup-ttl (one round trip per batch): for sinks that cannot refuse a duplicate key themselves; by default dedup is the window's (partition-local) plus the warehouse key",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
  {
    key: "dedup.ttlMs",
    flag: "dedup-ttl",
    env: "PAYSTREAM_DEDUP_TTL",
    description: "with --dedup-shared: how long a transaction_id is remembered in Redis",
    parse: p.duration(60_000, 30 * 24 * HOUR),
    default: ProcessorDefaults.dedupTtlMs,
  },
  piiKey,
  {
    key: "dlq.key",
    flag: "dlq-key",
    env: "PAYSTREAM_DLQ_KEY",
    description:
      "AES-256-GCM key (64 hex digits, from a secret) sealing each DLQ record's original for `paystream dlq redrive`; without it the DLQ keeps only the masked projection",
    parse: p.string({ pattern: /^[0-9a-fA-F]{64}$/, hint: "64 hex digits" }),
    secret: true,
    optional: true,
  },
  {
    key: "dlq.keyId",
    flag: "dlq-key-id",
    env: "PAYSTREAM_DLQ_KEY_ID",
    description:
      "id written with every sealed original (raw_key_id header): which key opens it after a rotation",
    parse: p.string({ pattern: /^[A-Za-z0-9._-]{1,64}$/, hint: "1-64 letters, digits, '.', '_' or '-'" }),
    optional: true,
    defaultHelp: "16 hex digits of a SHA-256 of the key",
  },
  {
    key: "demo",
    flag: "demo",
    env: "PAYSTREAM_DEMO",
    description:
      "demo mode: generate a random PII key (tokens then change on every start) and, without --dlq-key, a throwaway DLQ key",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
  withOverrides(httpHost, { description: "address for /metrics, /healthz, /readyz" }),
  withOverrides(httpPort, {
    flag: "metrics-port",
    env: "PAYSTREAM_METRICS_PORT",
    description: "port for /metrics, /healthz, /readyz",
    default: DefaultPorts.processorMetrics,
  }),
  {
    key: "batch.max",
    flag: "max-batch",
    env: "PAYSTREAM_MAX_BATCH",
    description: "most records processed as one I/O batch",
    parse: p.int(1, 100_000),
    default: ProcessorDefaults.maxBatch,
  },
  {
    key: "batch.maxInFlight",
    flag: "max-in-flight",
    env: "PAYSTREAM_MAX_IN_FLIGHT",
    description: `batches whose writes may be in flight at once (backpressure bound, with ${ProcessorDefaults.maxPendingRows.toLocaleString("en-US")} rows pending)`,
    parse: p.int(1, 64),
    default: ProcessorDefaults.maxInFlight,
  },
  maxMessageBytes,
  {
    key: "limits.maxFutureSkewMs",
    flag: "max-future-skew",
    env: "PAYSTREAM_MAX_FUTURE_SKEW",
    description:
      "events further ahead of processing time go to the DLQ (event_time_in_future) and never move a watermark",
    parse: p.duration(0, HOUR),
    default: DEFAULT_MAX_FUTURE_SKEW_MS,
  },
  {
    key: "limits.maxAgeMs",
    flag: "max-event-age",
    env: "PAYSTREAM_MAX_EVENT_AGE",
    description: "events older than this (event time vs processing time) go to the DLQ (event_time_too_old)",
    parse: p.duration(60_000, 365 * 24 * HOUR),
    default: DEFAULT_MAX_EVENT_AGE_MS,
  },
  {
    key: "limits.maxAmount",
    flag: "max-amount",
    env: "PAYSTREAM_MAX_AMOUNT",
    description: "largest amount accepted, in major units (e.g. 1000000000.00); above it amount_out_of_range",
    parse: amountParser,
    default: DEFAULT_MAX_AMOUNT_MINOR,
  },
  {
    key: "masking.coordinateDecimals",
    flag: "coordinate-decimals",
    env: "PAYSTREAM_COORDINATE_DECIMALS",
    description:
      "decimal places of lat/lon kept in warehouse rows (2 is ~1 km); rules always use full precision",
    parse: p.int(0, MAX_COORDINATE_DECIMALS),
    default: DEFAULT_COORDINATE_DECIMALS,
  },
  runDuration,
  logLevel,
]);

/** The processor's options as loaded: `loadConfig(processorOptions).values`. */
export type ProcessorValues = ConfigValues<typeof processorOptions>;

export interface ProcessorConfig {
  kafka: {
    brokers: string[];
    groupId: string;
    topic: string;
    dlqTopic: string;
    alertsTopic: string;
    rulesTopic: string;
    groupProtocol: "consumer" | "classic";
  };
  redisUrl: string;
  warehouse: string;
  rulesFile: string;
  windowMs: number;
  allowedLatenessMs: number;
  /** The shared (Redis) dedup tier on top of the window's; see docs/processor.md, "Dedup". */
  dedupShared: boolean;
  dedupTtlMs: number;
  /** Event-time gap that ends a case (docs/cases.md); default the window. */
  caseGapMs: number;
  /** How often case status changes are synced into the warehouse (docs/cases.md). */
  caseSyncIntervalMs: number;
  partitionStallMs: number;
  recoverySpanMs: number;
  piiKey: string | undefined;
  /** The DLQ sealing key (64 hex digits) and its id; both secrets' absence is allowed. */
  dlqKey: string | undefined;
  dlqKeyId: string | undefined;
  demo: boolean;
  http: { host: string; port: number };
  maxBatch: number;
  maxInFlight: number;
  maxMessageBytes: number;
  maxFutureSkewMs: number;
  maxAgeMs: number;
  /** Minor units. */
  maxAmountMinor: number;
  /** Decimal places of lat/lon in warehouse rows (the Masker's coordinateDecimals). */
  coordinateDecimals: number;
  durationMs: number;
}

/**
 * The service's view of the values. Keys absent from `values` take the table's default, so a
 * caller holding only some of them (`paystream up` picks a subset) never repeats a default.
 */
export function toProcessorConfig(values: Partial<ProcessorValues>): ProcessorConfig {
  const v = withDefaults(processorOptions, values);
  return {
    kafka: {
      brokers: v["kafka.brokers"],
      groupId: v["kafka.groupId"],
      topic: v["kafka.topic"],
      dlqTopic: v["kafka.dlqTopic"],
      alertsTopic: v["kafka.alertsTopic"],
      rulesTopic: v["kafka.rulesTopic"],
      groupProtocol: v["kafka.groupProtocol"],
    },
    redisUrl: v["redis.url"],
    warehouse: v.warehouse,
    rulesFile: v["rules.file"],
    windowMs: v["window.ms"],
    allowedLatenessMs: v["window.latenessMs"],
    dedupShared: v["dedup.shared"],
    dedupTtlMs: v["dedup.ttlMs"],
    caseGapMs: v["cases.gapMs"] ?? v["window.ms"],
    caseSyncIntervalMs: v["cases.syncIntervalMs"],
    partitionStallMs: v["kafka.partitionStallMs"],
    recoverySpanMs: v["recovery.spanMs"] ?? defaultRecoverySpanMs(v["window.ms"], v["window.latenessMs"]),
    piiKey: v["pii.key"],
    dlqKey: v["dlq.key"],
    dlqKeyId: v["dlq.keyId"],
    demo: v.demo,
    http: { host: v["http.host"], port: v["http.port"] },
    maxBatch: v["batch.max"],
    maxInFlight: v["batch.maxInFlight"],
    maxMessageBytes: v.maxMessageBytes,
    maxFutureSkewMs: v["limits.maxFutureSkewMs"],
    maxAgeMs: v["limits.maxAgeMs"],
    maxAmountMinor: v["limits.maxAmount"],
    coordinateDecimals: v["masking.coordinateDecimals"],
    durationMs: v.duration,
  };
}

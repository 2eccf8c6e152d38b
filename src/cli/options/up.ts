/**
 * `paystream up` options: the processor's and collector's own options (picked from their
 * tables, so flags, parsers and defaults are theirs), plus what only `up` has.
 */
import type { UpConfig as UpGraphConfig } from "../../app/up.ts";
import { type CollectorValues, collectorOptions, toCollectorConfig } from "../../collector/config.ts";
import { DefaultPorts } from "../../contracts/defaults.ts";
import { dashboardOptions } from "../../dashboard/config.ts";
import { type ConfigValues, defineOptions, p, pickOptions, withOverrides } from "../../lib/config.ts";
import { isLoopbackHost } from "../../lib/http.ts";
import {
  httpHost,
  httpPort,
  kafkaBrokers,
  type LogLevel,
  logLevel,
  redisUrl,
  runDuration,
} from "../../lib/options.ts";
import { type ProcessorValues, processorOptions, toProcessorConfig } from "../../processor/config.ts";

export const upOptions = defineOptions([
  withOverrides(kafkaBrokers, {
    description: "use this Kafka (host:port[,...]) instead of the embedded log",
    default: undefined,
    optional: true,
  }),
  withOverrides(redisUrl, {
    description: "use this Redis for alerts and dedup instead of the embedded store",
    default: undefined,
    optional: true,
  }),
  ...pickOptions(processorOptions, [
    "warehouse",
    "kafka.topic",
    "kafka.groupId",
    "kafka.rulesTopic",
    "rules.file",
    "window.ms",
    "window.latenessMs",
    "dedup.ttlMs",
    "pii.key",
    "dlq.key",
    "dlq.keyId",
    "maxMessageBytes",
  ]),
  withOverrides(pickOptions(processorOptions, ["demo"])[0]!, {
    description:
      "demo mode: a random PII key (tokens change on every start), and the collector and dashboard controls need no credentials (as on loopback)",
  }),
  ...pickOptions(collectorOptions, [
    "rate",
    "maxRate",
    "seed",
    "accounts",
    "merchants",
    "scenarioRate",
    "faults.duplicate",
    "faults.late",
    "faults.outOfOrder",
    "faults.malformed",
    "lateMaxMs",
    "http.token",
    "http.insecureOpenApi",
    "http.allowedHosts",
    "http.allowedOrigins",
    "http.requestTimeoutMs",
    "http.connectionTimeoutMs",
  ]),
  ...pickOptions(dashboardOptions, ["auth.token", "auth.basic", "auth.openReads", "sse.maxClients"]),
  // On loopback `up` is a demo: its controls are open. Anywhere else they need credentials.
  withOverrides(httpHost, {
    description:
      "address of the dashboard, /status and the collector API; off loopback, --api-token and --auth-token (or --basic-auth) are required unless --demo or --insecure-open-api",
  }),
  withOverrides(httpPort, {
    description: "port of /metrics, /status, /api/* (and the dashboard)",
    default: DefaultPorts.dashboard,
  }),
  {
    key: "collector.port",
    flag: "collector-port",
    env: "PAYSTREAM_COLLECTOR_PORT",
    description: "port of the collector control API (POST /config/rate)",
    parse: p.int(0, 65535),
    default: DefaultPorts.collector,
  },
  {
    key: "statusEvery",
    flag: "status-every",
    env: "PAYSTREAM_STATUS_EVERY",
    description: "interval of the status line (0 = none)",
    parse: p.duration(0),
    default: 5000,
  },
  withOverrides(runDuration, { description: "stop after this long, e.g. 40s or 10m (0 = run until Ctrl-C)" }),
  {
    key: "summaryFile",
    flag: "summary-file",
    env: "PAYSTREAM_SUMMARY_FILE",
    description: "write the final summary as JSON to this file",
    parse: p.string({ min: 1 }),
    optional: true,
  },
  // Quieter than the services: `up` prints its own status line.
  withOverrides(logLevel, { default: "warn" }),
]);

export type UpValues = ConfigValues<typeof upOptions>;

/** What `startUp` takes (the two services' configs and which parts are real), and what `up` itself does. */
export interface UpConfig extends UpGraphConfig {
  /** Neither Kafka nor Redis given. */
  embedded: boolean;
  statusEveryMs: number;
  durationMs: number;
  summaryFile: string | undefined;
  logLevel: LogLevel;
}

/**
 * The processor's and collector's configs for one `up` process. Options `up` does not take
 * (batching, the collector's topics, ...) keep their tables' defaults.
 */
export function toUpConfig(v: UpValues): UpConfig {
  const embedded = !v["kafka.brokers"] && !v["redis.url"];
  // Annotated: a spread of `v` is not checked for excess keys, but a key of the wrong type is.
  const processorValues: Partial<ProcessorValues> = {
    ...v,
    "kafka.brokers": v["kafka.brokers"] ?? [],
    "redis.url": v["redis.url"] ?? "",
    // The demo (fully embedded) generates a throwaway PII key; with real services a key is required.
    demo: v.demo || embedded,
  };
  const collectorValues: Partial<CollectorValues> = {
    ...v,
    "kafka.brokers": v["kafka.brokers"] ?? [],
    // One log: the collector writes where the processor reads.
    topic: v["kafka.topic"],
    "http.port": v["collector.port"],
  };
  const processor = toProcessorConfig(processorValues);
  // `paystream up` on loopback, or with --demo, needs no credentials for its controls.
  const demo = v.demo || isLoopbackHost(v["http.host"]);
  const collected = toCollectorConfig(collectorValues);
  const collector = { ...collected, http: { ...collected.http, demo } };
  return {
    processor,
    collector,
    dashboard: {
      auth: {
        token: v["auth.token"],
        basic: v["auth.basic"],
        openReads: v["auth.openReads"],
        insecureOpenApi: v["http.insecureOpenApi"],
      },
      maxSseClients: v["sse.maxClients"],
    },
    brokers: v["kafka.brokers"],
    redisUrl: v["redis.url"],
    embedded,
    statusEveryMs: v.statusEvery,
    durationMs: v.duration,
    summaryFile: v.summaryFile,
    logLevel: v["log.level"],
  };
}

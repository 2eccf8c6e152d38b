/**
 * Options more than one command takes, declared once. A command's table uses them as they
 * are or adapts one with `withOverrides` (another description, key or default); the flag,
 * env var and parser stay the same everywhere, so `--kafka` means the same thing to every
 * command.
 *
 * Keys keep the spelling each command's config file has always used (the collector's input
 * topic is `topic`, the processor's `kafka.topic`), so existing config files still load.
 */
import { HttpDefaults, ProcessorDefaults } from "../contracts/defaults.ts";
import { CONSUMER_GROUP, Topics } from "../contracts/topics.ts";
import { defineOption, p } from "./config.ts";

export const kafkaBrokers = defineOption({
  key: "kafka.brokers",
  flag: "kafka",
  env: "PAYSTREAM_KAFKA_BROKERS",
  description: "Kafka bootstrap brokers, host:port[,host:port]",
  parse: p.brokers(),
  default: ["127.0.0.1:9092"],
});

export const redisUrl = defineOption({
  key: "redis.url",
  flag: "redis",
  env: "PAYSTREAM_REDIS_URL",
  description: "Redis for alerts and the shared dedup store",
  parse: p.url("redis", "rediss"),
  default: "redis://127.0.0.1:6379",
});

export const warehouseUrl = defineOption({
  key: "warehouse",
  flag: "warehouse",
  env: "PAYSTREAM_WAREHOUSE",
  description: "warehouse: duckdb:<path> | postgres://... | bigquery://<project>/<dataset>",
  parse: p.string({ min: 1 }),
  default: "duckdb:./data/paystream.duckdb",
});

export const inputTopic = defineOption({
  key: "topic",
  flag: "topic",
  env: "PAYSTREAM_TOPIC",
  description: "topic of schema-v1 transactions",
  parse: p.string({ min: 1 }),
  default: Topics.transactions,
});

export const labelsTopic = defineOption({
  key: "labelsTopic",
  flag: "labels-topic",
  env: "PAYSTREAM_LABELS_TOPIC",
  description: "topic of the collector's ground-truth labels",
  parse: p.string({ min: 1 }),
  default: Topics.labels,
});

export const dlqTopic = defineOption({
  key: "dlqTopic",
  flag: "dlq-topic",
  env: "PAYSTREAM_DLQ_TOPIC",
  description: "dead-letter topic: invalid and unwritable records, with the reason in headers",
  parse: p.string({ min: 1 }),
  default: Topics.dlq,
});

export const alertsTopic = defineOption({
  key: "alertsTopic",
  flag: "alerts-topic",
  env: "PAYSTREAM_ALERTS_TOPIC",
  description: "topic every alert is also produced to (keyed by account, alert_id header)",
  parse: p.string({ min: 1 }),
  default: Topics.alerts,
});

export const rulesTopic = defineOption({
  key: "rulesTopic",
  flag: "rules-topic",
  env: "PAYSTREAM_RULES_TOPIC",
  description: "compacted one-partition topic of rule set versions (the rules log every processor follows)",
  parse: p.string({ min: 1 }),
  default: Topics.rules,
});

export const groupId = defineOption({
  key: "group",
  flag: "group",
  env: "PAYSTREAM_GROUP_ID",
  description: "consumer group shared by all processor replicas",
  parse: p.string({ min: 1 }),
  default: CONSUMER_GROUP,
});

export const maxMessageBytes = defineOption({
  key: "maxMessageBytes",
  flag: "max-message-bytes",
  env: "PAYSTREAM_MAX_MESSAGE_BYTES",
  description: "records larger than this go to the DLQ as oversized",
  parse: p.int(256, 10 * 1024 * 1024),
  default: ProcessorDefaults.maxMessageBytes,
});

/**
 * Loopback unless told otherwise: a standalone service is reachable from this machine only
 * until someone decides it should be (the Helm chart sets 0.0.0.0 in pods).
 */
export const httpHost = defineOption({
  key: "http.host",
  flag: "host",
  env: "PAYSTREAM_HTTP_HOST",
  description: "address the HTTP endpoints listen on (0.0.0.0 for every interface, e.g. in a pod)",
  parse: p.string({ min: 1 }),
  default: "127.0.0.1",
});

/** No default: each command listens on its own port (src/contracts/defaults.ts, DefaultPorts). */
export const httpPort = defineOption({
  key: "http.port",
  flag: "port",
  env: "PAYSTREAM_PORT",
  description: "HTTP port",
  parse: p.int(0, 65535),
});

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const logLevel = defineOption({
  key: "log.level",
  flag: "log-level",
  env: "PAYSTREAM_LOG_LEVEL",
  description: `log level: ${LOG_LEVELS.join(", ")}`,
  parse: p.oneOf(...LOG_LEVELS),
  default: "info",
});

/** Bounded runs (tests, benchmarks, demos); 0 runs until a signal. */
export const runDuration = defineOption({
  key: "duration",
  flag: "duration",
  env: "PAYSTREAM_DURATION",
  description: "stop after this long, e.g. 40s or 10m (0 = run until SIGTERM)",
  parse: p.duration(0),
  default: 0,
});

export const piiKey = defineOption({
  key: "pii.key",
  flag: "pii-key",
  env: "PAYSTREAM_PII_KEY",
  description: "secret for PII tokens (>= 32 hex chars or >= 16 bytes of text); required unless --demo",
  parse: p.string({ min: 16 }),
  secret: true,
  optional: true,
});

/** The collector's bearer token; the dashboard sends the same secret under its own key. */
export const apiToken = defineOption({
  key: "http.token",
  flag: "api-token",
  env: "PAYSTREAM_API_TOKEN",
  description:
    "bearer token the collector's write endpoints require (Authorization: Bearer <token>; >= 16 characters, e.g. openssl rand -hex 32); required unless --insecure-open-api",
  parse: p.string({ min: 16 }),
  secret: true,
  optional: true,
});

/** The explicit, logged opt-out of credentials on write endpoints. */
export const insecureOpenApi = defineOption({
  key: "http.insecureOpenApi",
  flag: "insecure-open-api",
  env: "PAYSTREAM_INSECURE_OPEN_API",
  description:
    "start without credentials: write endpoints open to anyone who reaches the port (logged as a warning, shown in /status; not for production)",
  parse: p.bool(),
  default: false,
  boolean: true,
});

/** A comma-separated list (or a config-file array) of non-empty items, each checked by `item`. */
function listOf(what: string, item: (s: string) => string): (raw: unknown) => string[] {
  const parse = (raw: unknown): string[] => {
    const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
      .map((s) => s.trim())
      .filter(Boolean);
    if (list.length === 0) throw new Error(`must list at least one ${what}`);
    return list.map(item);
  };
  return Object.assign(parse, { format: (v: string[]) => v.join(",") });
}

/** A host name or IP address as a Host header carries it (no scheme, path or port). */
export const parseHostList = listOf("host name", (s) => {
  const h = s.toLowerCase();
  if (!/^([a-z0-9-]+\.)*[a-z0-9-]+\.?$/.test(h) && !/^\[?[0-9a-f:.]+\]?$/.test(h)) {
    throw new Error(`"${s}" is not a host name (e.g. dashboard.example.com, without scheme or port)`);
  }
  return h.replace(/^\[|\]$/g, "").replace(/\.$/, "");
});

/** An origin: scheme, host and optional port, nothing else (https://dash.example.com). */
export const parseOriginList = listOf("origin", (s) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`"${s}" is not an origin (e.g. https://dash.example.com)`);
  }
  if (
    (u.protocol !== "http:" && u.protocol !== "https:") ||
    u.origin !== s.replace(/\/$/, "").toLowerCase()
  ) {
    throw new Error(
      `"${s}" is not an origin: scheme://host[:port], nothing after (e.g. https://dash.example.com)`,
    );
  }
  return u.origin;
});

export const allowedHosts = defineOption({
  key: "http.allowedHosts",
  flag: "allowed-hosts",
  env: "PAYSTREAM_ALLOWED_HOSTS",
  description:
    "Host header names answered, comma separated (421 otherwise; against DNS rebinding); loopback names are always answered",
  parse: parseHostList,
  optional: true,
  defaultHelp: "loopback names when --host is loopback, any name otherwise",
});

export const allowedOrigins = defineOption({
  key: "http.allowedOrigins",
  flag: "allowed-origins",
  env: "PAYSTREAM_ALLOWED_ORIGINS",
  description:
    "browser origins allowed to write besides the server's own, comma separated (a write with another Origin gets 403)",
  parse: parseOriginList,
  optional: true,
  defaultHelp: "same origin only",
});

export const httpRequestTimeout = defineOption({
  key: "http.requestTimeoutMs",
  flag: "request-timeout",
  env: "PAYSTREAM_HTTP_REQUEST_TIMEOUT",
  description: "a request's headers and body must arrive within this (408 and closed otherwise)",
  parse: p.duration(1000, 600_000),
  default: HttpDefaults.requestTimeoutMs,
});

export const httpConnectionTimeout = defineOption({
  key: "http.connectionTimeoutMs",
  flag: "connection-timeout",
  env: "PAYSTREAM_HTTP_CONNECTION_TIMEOUT",
  description: "a connection with no traffic for this long is closed",
  parse: p.duration(1000, 600_000),
  default: HttpDefaults.connectionTimeoutMs,
});

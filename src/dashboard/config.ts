/** `paystream dashboard` options: one table for parsing, types, env vars and `--help`. */
import { DefaultPorts, HttpDefaults } from "../contracts/defaults.ts";
import {
  type ConfigValues,
  defineOption,
  defineOptions,
  p,
  withDefaults,
  withOverrides,
} from "../lib/config.ts";
import { type BasicCredential, parseBasicCredential } from "../lib/http.ts";
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
  redisUrl,
  rulesTopic,
} from "../lib/options.ts";

/** "host:port" (a DNS name, not a URL). */
export function parseHostPort(raw: unknown): { host: string; port: number } {
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(String(raw).trim());
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new Error(`"${String(raw)}" is not host:port (e.g. paystream-processor:9464)`);
  return { host: m[1]!, port };
}

/** A comma-separated list of http(s) base URLs (trailing slashes dropped, no duplicates). */
export function parseHttpUrlList(raw: unknown): string[] {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("must list at least one http:// URL");
  const out: string[] = [];
  for (const item of list) {
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      throw new Error(`"${item}" is not a URL (expected http://host:port)`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new Error(`"${item}" must use http:// or https://`);
    }
    const url = item.replace(/\/+$/, "");
    if (out.includes(url)) throw new Error(`"${item}" is listed twice`);
    out.push(url);
  }
  return out;
}

/**
 * The dashboard's own callers' credentials (docs/dashboard.md, "Access"): a bearer token the
 * UI asks for and keeps in the tab's sessionStorage, and/or a Basic login the browser asks
 * for. Never the collector's token, which the dashboard keeps to itself.
 */
export const dashboardToken = defineOption({
  key: "auth.token",
  flag: "auth-token",
  env: "PAYSTREAM_DASHBOARD_TOKEN",
  description:
    "bearer token the dashboard's callers must send (Authorization: Bearer <token>; >= 16 characters); the UI asks for it",
  parse: p.string({ min: 16 }),
  secret: true,
  optional: true,
});

export const dashboardBasicAuth = defineOption({
  key: "auth.basic",
  flag: "basic-auth",
  env: "PAYSTREAM_DASHBOARD_BASIC_AUTH",
  description:
    "Basic login the dashboard's callers may use instead: user:scrypt:<salt base64>:<key base64> (docs/security.md)",
  parse: (raw: unknown): BasicCredential => parseBasicCredential(raw),
  secret: true,
  optional: true,
});

export const dashboardOpenReads = defineOption({
  key: "auth.openReads",
  flag: "open-reads",
  env: "PAYSTREAM_DASHBOARD_OPEN_READS",
  description:
    "serve GET /api/* (masked snapshot, alerts, event stream) without credentials; writes still need them",
  parse: p.bool(),
  default: false,
  boolean: true,
});

export const maxSseClients = defineOption({
  key: "sse.maxClients",
  flag: "max-sse-clients",
  env: "PAYSTREAM_DASHBOARD_MAX_SSE_CLIENTS",
  description: "event streams (/api/events) served at once; 503 beyond",
  parse: p.int(1, 10_000),
  default: HttpDefaults.maxSseClients,
});

export const dashboardOptions = defineOptions([
  withOverrides(redisUrl, {
    description:
      "Redis the processors write alerts and cases to (reads the fraud:alerts stream and fraud:active_accounts; the cases page reads and sets case status there)",
  }),
  withOverrides(kafkaBrokers, {
    description:
      "Kafka bootstrap brokers, host:port[,host:port]: the rules log the rules page publishes to, and the recorded traffic backtests replay",
  }),
  withOverrides(rulesTopic, {
    description: "compacted one-partition topic of rule set versions (the processors' --rules-topic)",
  }),
  withOverrides(inputTopic, { description: "topic of schema-v1 transactions backtests replay" }),
  withOverrides(labelsTopic, {
    description: "topic of the collector's ground-truth labels backtests score recall and precision against",
  }),
  {
    key: "collector.url",
    flag: "collector-url",
    env: "PAYSTREAM_COLLECTOR_URL",
    description:
      "collector control API (GET /config, /stats; rate changes are forwarded to POST /config/rate); unset: no collector, as in production where the traffic simulator is off",
    parse: (raw: unknown) => p.url("http", "https")(raw).replace(/\/+$/, ""),
    optional: true,
  },
  withOverrides(apiToken, {
    key: "collector.token",
    flag: "collector-token",
    description:
      "bearer token the collector requires for rate changes (the collector's --api-token); sent only for callers the dashboard authenticated",
  }),
  {
    key: "processor.urls",
    flag: "processor-urls",
    env: "PAYSTREAM_PROCESSOR_URLS",
    description: "processor metrics endpoints, comma separated; their /status and /metrics are summed",
    parse: Object.assign(parseHttpUrlList, { format: (v: string[]) => v.join(",") }),
    default: [`http://127.0.0.1:${DefaultPorts.processorMetrics}`],
  },
  {
    key: "processor.service",
    flag: "processor-service",
    env: "PAYSTREAM_PROCESSOR_SERVICE",
    description:
      "host:port of a headless Service (Kubernetes): every address its DNS name resolves to is read as a processor, re-resolved each refresh; replaces --processor-urls",
    parse: parseHostPort,
    optional: true,
  },
  {
    key: "refresh",
    flag: "refresh",
    env: "PAYSTREAM_DASHBOARD_REFRESH",
    description: "how often the sources are read and the UI updated",
    parse: p.duration(200, 10_000),
    default: 1000,
  },
  withOverrides(httpHost, { description: "address the dashboard listens on" }),
  withOverrides(httpPort, {
    description: "port of the dashboard (UI, /api/*, /metrics, /healthz, /readyz)",
    default: DefaultPorts.dashboard,
  }),
  dashboardToken,
  dashboardBasicAuth,
  dashboardOpenReads,
  withOverrides(insecureOpenApi, {
    description:
      "start without credentials: the rate control and every read open to anyone who reaches the port (logged as a warning; not for production)",
  }),
  allowedHosts,
  allowedOrigins,
  httpRequestTimeout,
  httpConnectionTimeout,
  maxSseClients,
  logLevel,
]);

/** The dashboard's options as loaded: `loadConfig(dashboardOptions).values`. */
export type DashboardValues = ConfigValues<typeof dashboardOptions>;

export interface DashboardConfig {
  redisUrl: string;
  /** The rules log and the recorded traffic backtests read. */
  kafka: { brokers: string[]; rulesTopic: string; topic: string; labelsTopic: string };
  /** Undefined when no collector runs (production): the dashboard then shows none, not an outage. */
  collectorUrl: string | undefined;
  collectorToken: string | undefined;
  processorUrls: string[];
  /** A headless Service whose addresses are the processors (discovered each refresh). */
  processorService: { host: string; port: number } | undefined;
  refreshMs: number;
  http: {
    host: string;
    port: number;
    allowedHosts: string[] | undefined;
    allowedOrigins: string[] | undefined;
    requestTimeoutMs: number;
    connectionTimeoutMs: number;
  };
  /** The dashboard's own callers: docs/dashboard.md, "Access". */
  auth: {
    token: string | undefined;
    basic: BasicCredential | undefined;
    openReads: boolean;
    insecureOpenApi: boolean;
  };
  maxSseClients: number;
}

/** The server's view of the values; keys absent from `values` take the table's default. */
export function toDashboardConfig(values: Partial<DashboardValues>): DashboardConfig {
  const v = withDefaults(dashboardOptions, values);
  return {
    redisUrl: v["redis.url"],
    kafka: {
      brokers: v["kafka.brokers"],
      rulesTopic: v.rulesTopic,
      topic: v.topic,
      labelsTopic: v.labelsTopic,
    },
    collectorUrl: v["collector.url"],
    collectorToken: v["collector.token"],
    processorUrls: v["processor.urls"],
    processorService: v["processor.service"],
    refreshMs: v.refresh,
    http: {
      host: v["http.host"],
      port: v["http.port"],
      allowedHosts: v["http.allowedHosts"],
      allowedOrigins: v["http.allowedOrigins"],
      requestTimeoutMs: v["http.requestTimeoutMs"],
      connectionTimeoutMs: v["http.connectionTimeoutMs"],
    },
    auth: {
      token: v["auth.token"],
      basic: v["auth.basic"],
      openReads: v["auth.openReads"],
      insecureOpenApi: v["http.insecureOpenApi"],
    },
    maxSseClients: v["sse.maxClients"],
  };
}

/** `paystream dashboard` options: one table for parsing, env vars and `--help`. */
import { type OptionTable, p } from "../lib/config.ts";

/** A comma-separated list of http(s) base URLs (trailing slashes dropped, no duplicates). */
/** "host:port" (a DNS name, not a URL). */
export function parseHostPort(raw: unknown): { host: string; port: number } {
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(String(raw).trim());
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new Error(`"${String(raw)}" is not host:port (e.g. paystream-processor:9464)`);
  return { host: m[1]!, port };
}

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

export const dashboardOptions: OptionTable = [
  {
    key: "redis.url",
    flag: "redis",
    env: "PAYSTREAM_REDIS_URL",
    description:
      "Redis the processors write alerts to (reads the fraud:alerts stream and fraud:active_accounts)",
    parse: p.url("redis", "rediss"),
    default: "redis://127.0.0.1:6379",
  },
  {
    key: "collector.url",
    flag: "collector-url",
    env: "PAYSTREAM_COLLECTOR_URL",
    description:
      "collector control API (GET /config, /stats; rate changes are forwarded to POST /config/rate)",
    parse: (raw) => p.url("http", "https")(raw).replace(/\/+$/, ""),
    default: "http://127.0.0.1:5000",
  },
  {
    key: "collector.token",
    flag: "collector-token",
    env: "PAYSTREAM_API_TOKEN",
    description: "bearer token the collector requires for rate changes (the collector's --api-token)",
    parse: p.string({ min: 16 }),
    secret: true,
    optional: true,
  },
  {
    key: "processor.urls",
    flag: "processor-urls",
    env: "PAYSTREAM_PROCESSOR_URLS",
    description: "processor metrics endpoints, comma separated; their /status and /metrics are summed",
    parse: parseHttpUrlList,
    default: ["http://127.0.0.1:9464"],
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
  {
    key: "http.host",
    flag: "host",
    env: "PAYSTREAM_HTTP_HOST",
    description: "address the dashboard listens on",
    parse: p.string({ min: 1 }),
    default: "0.0.0.0",
  },
  {
    key: "http.port",
    flag: "port",
    env: "PAYSTREAM_PORT",
    description: "port of the dashboard (UI, /api/*, /metrics, /healthz, /readyz)",
    parse: p.int(0, 65535),
    default: 3000,
  },
];

export interface DashboardConfig {
  redisUrl: string;
  collectorUrl: string;
  collectorToken: string | undefined;
  processorUrls: string[];
  /** A headless Service whose addresses are the processors (discovered each refresh). */
  processorService: { host: string; port: number } | undefined;
  refreshMs: number;
  http: { host: string; port: number };
}

export function toDashboardConfig(v: Record<string, unknown>): DashboardConfig {
  return {
    redisUrl: v["redis.url"] as string,
    collectorUrl: v["collector.url"] as string,
    collectorToken: v["collector.token"] as string | undefined,
    processorUrls: v["processor.urls"] as string[],
    processorService: v["processor.service"] as { host: string; port: number } | undefined,
    refreshMs: v.refresh as number,
    http: { host: v["http.host"] as string, port: v["http.port"] as number },
  };
}

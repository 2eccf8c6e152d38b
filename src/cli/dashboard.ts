/**
 * `paystream dashboard`: the live UI and its API on their own, for Kubernetes. Reads the
 * collector's control API, each processor's /status and /metrics, and the alerts the
 * processors write to Redis; forwards rate changes to the collector.
 */
import { connectRedis } from "../adapters/redis/client.ts";
import { dashboardOptions, toDashboardConfig } from "../dashboard/config.ts";
import { mountDashboard } from "../dashboard/server.ts";
import { dnsUpstreams, httpUpstream, redisAlertFeed } from "../dashboard/sources.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createServiceHttp, listen } from "../lib/http.ts";
import { createLogger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import { redactUrl } from "../lib/url.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Serves the live dashboard (React UI, JSON API, Server-Sent Events): throughput, collector rate control, lag, " +
  "outcomes, alerts by rule, the latest alerts (masked cards), p99 latency and health, from the collector's API, " +
  "the processors' /status and /metrics, and the alerts in Redis.";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("dashboard", SUMMARY, dashboardOptions)}\n`);
    return 0;
  }
  const cfg = toDashboardConfig(loadConfig(dashboardOptions, { argv }).values);
  const log = createLogger("dashboard");
  const redisLabel = redactUrl(cfg.redisUrl);
  const redis = await connectRedis({
    url: cfg.redisUrl,
    onError: (err) => log.warn({ err: err.message }, "redis connection error"),
  });
  let uiBuilt = false;
  const http = createServiceHttp({
    registry: createRegistry("dashboard"),
    readiness: [{ name: "ui", check: () => (uiBuilt ? undefined : "building the UI bundle") }],
  });
  const dashboard = mountDashboard(http, {
    sources: {
      collector: httpUpstream(cfg.collectorUrl, { token: cfg.collectorToken }),
      processors: cfg.processorService
        ? dnsUpstreams(cfg.processorService)
        : cfg.processorUrls.map((u) => httpUpstream(u)),
      alerts: redisAlertFeed(redis, cfg.redisUrl),
    },
    intervalMs: cfg.refreshMs,
    log,
  });
  try {
    await dashboard.ready;
    uiBuilt = true;
  } catch (err) {
    redis.destroy();
    throw err;
  }
  const url = await listen(http, cfg.http.host, cfg.http.port, "dashboard");
  process.stdout.write(
    [
      `paystream dashboard on ${url}/`,
      `  collector   ${cfg.collectorUrl}`,
      `  processors  ${cfg.processorService ? `every address of ${cfg.processorService.host}:${cfg.processorService.port} (DNS)` : cfg.processorUrls.join(", ")}`,
      `  alerts      ${redisLabel}`,
      "",
    ].join("\n"),
  );

  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStop = r;
  });
  onShutdownSignals(async () => resolveStop(), log);
  await stopped;
  await http.close();
  redis.destroy();
  return 0;
}

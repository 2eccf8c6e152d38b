/**
 * `paystream dashboard` on its own: the UI and API reading the collector's control API, the
 * processors' /status and /metrics (a fixed list or a headless Service's addresses), the
 * alerts and cases in Redis, and on Kafka the rules log (published to from the rules page)
 * and the recorded traffic backtests replay.
 */
import { KafkaTopicReader } from "../adapters/kafka/reader.ts";
import { ProcessorDefaults } from "../contracts/defaults.ts";
import type { DashboardConfig } from "../dashboard/config.ts";
import { dashboardAccess, mountDashboard } from "../dashboard/server.ts";
import { dnsUpstreams, httpUpstream } from "../dashboard/sources.ts";
import { createServiceHttp, listen } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import { openRulesLog } from "./rules-log.ts";
import { openAlertStores } from "./stores.ts";

export interface RunningDashboard {
  url: string;
  /** Where the alerts come from (password redacted). */
  alertsLabel: string;
  close(): Promise<void>;
}

/** Resolves once the UI bundle is built and the server listens. */
export async function runDashboard(cfg: DashboardConfig, log: Logger): Promise<RunningDashboard> {
  // Missing credentials stop start-up before anything connects. No demo mode standalone:
  // open access is only ever the explicit --insecure-open-api.
  const access = dashboardAccess(cfg.auth, cfg.http, false, log);
  const stores = await openAlertStores(cfg.redisUrl, log);
  let rulesLog: Awaited<ReturnType<typeof openRulesLog>>;
  try {
    // Fails fast, naming the brokers, when Kafka does not answer: the rules page needs it.
    rulesLog = await openRulesLog({
      brokers: cfg.kafka.brokers,
      clientId: `paystream-dashboard-${process.pid}`,
      topic: cfg.kafka.rulesTopic,
    });
  } catch (err) {
    await stores.close();
    throw err;
  }
  let uiBuilt = false;
  const registry = createRegistry("dashboard");
  const http = createServiceHttp({
    registry,
    readiness: [{ name: "ui", check: () => (uiBuilt ? undefined : "building the UI bundle") }],
    limits: {
      requestTimeoutMs: cfg.http.requestTimeoutMs,
      connectionTimeoutMs: cfg.http.connectionTimeoutMs,
    },
    access,
  });
  try {
    const dashboard = mountDashboard(http, {
      sources: {
        collector:
          cfg.collectorUrl === undefined
            ? undefined
            : httpUpstream(cfg.collectorUrl, { token: cfg.collectorToken }),
        processors: cfg.processorService
          ? dnsUpstreams(cfg.processorService)
          : cfg.processorUrls.map((u) => httpUpstream(u)),
        alerts: stores.reader,
      },
      intervalMs: cfg.refreshMs,
      log,
      maxSseClients: cfg.maxSseClients,
      access,
      registry,
      rulesLog,
      caseStore: stores.cases(),
      topicReader: new KafkaTopicReader({
        brokers: cfg.kafka.brokers,
        clientId: `paystream-dashboard-reader-${process.pid}`,
      }),
      backtestTopics: { transactions: cfg.kafka.topic, labels: cfg.kafka.labelsTopic },
      // The processors' default window: the dashboard has no --window of its own to disagree with.
      maxWindowMs: ProcessorDefaults.windowMs,
    });
    await dashboard.ready;
    uiBuilt = true;
    const url = await listen(http, cfg.http.host, cfg.http.port, "dashboard");
    return {
      url,
      alertsLabel: stores.label,
      close: async () => {
        await http.close();
        await rulesLog.close();
        await stores.close();
      },
    };
  } catch (err) {
    await http.close().catch(() => {});
    await rulesLog.close().catch(() => {});
    await stores.close();
    throw err;
  }
}

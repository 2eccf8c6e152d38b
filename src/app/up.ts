/**
 * `paystream up` as a function: collector, log, processor, alert store, warehouse and
 * dashboard in one process, on one adapter graph. Each part is embedded unless its address
 * is given; the processor is built by the same code as `paystream processor`'s
 * (startProcessorOn), and the collector and dashboard read and write through the same ports.
 * Printing and signals are the command's (src/cli/up.ts).
 */
import type { Histogram, Registry } from "prom-client";
import { EmbeddedTopicReader } from "../adapters/embedded/log.ts";
import { KafkaTopicReader } from "../adapters/kafka/reader.ts";
import type { CollectorConfig } from "../collector/config.ts";
import { collectorAccess, startCollector } from "../collector/service.ts";
import { Topics } from "../contracts/topics.ts";
import type { DashboardConfig } from "../dashboard/config.ts";
import { dashboardAccess, mountDashboard } from "../dashboard/server.ts";
import { injectUpstream } from "../dashboard/sources.ts";
import { accessStatus, createServiceHttp, listen } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import { histogramQuantile } from "../lib/prom-text.ts";
import type { ProcessorConfig } from "../processor/config.ts";
import { openGraph } from "./graph.ts";
import { processorTopics, startProcessorOn } from "./processor.ts";
import { openRulesLogOn } from "./rules-log.ts";

export interface UpConfig {
  processor: ProcessorConfig;
  collector: CollectorConfig;
  /** Real Kafka; undefined: the embedded log. */
  brokers: string[] | undefined;
  /** Real Redis; undefined: the embedded alert and dedup store. */
  redisUrl: string | undefined;
  /**
   * The dashboard's own callers' credentials and stream cap. Demo (`collector.http.demo`:
   * loopback or --demo) leaves the controls open when none are given.
   */
  dashboard: Pick<DashboardConfig, "auth" | "maxSseClients">;
}

/** What /status answers, and the final summary. */
export interface UpStatus {
  uptime_s: number;
  /** How the collector API and the dashboard are protected (never a secret). */
  api: { collector: Record<string, unknown>; dashboard: Record<string, unknown> };
  mode: { log: "kafka" | "embedded"; alerts: "redis" | "embedded"; warehouse: string };
  collector: {
    target_rate: number;
    actual_rate: number;
    produced: number;
    by_kind: Record<string, number>;
    labels: Record<string, number>;
  };
  processor: {
    processed: number;
    ok: number;
    duplicates: number;
    dlq: number;
    late: number;
    alerts: number;
    alerts_by_rule: Record<string, number>;
    lag_records: number;
    window_accounts: number;
  };
}

export interface RunningUp {
  /** The HTTP endpoint: dashboard, /status, /metrics. */
  url: string;
  /** The collector's control API. */
  collectorUrl: string;
  /** Milliseconds from the call to everything answering. */
  readyMs: number;
  /** For the banner: "kafka host:port" or "embedded log", the Redis URL (redacted) or "embedded store". */
  labels: { log: string; alerts: string; warehouse: string };
  status(): Promise<UpStatus>;
  /** p99 end-to-end latency (seconds) of alerts and of warehouse rows since the previous call. */
  latencyP99(): Promise<{ alert: number | undefined; row: number | undefined }>;
  /**
   * Orderly stop: the collector first (nothing new), then the processor catches up (at most
   * 10 s) and drains; resolves with the final status, taken before the processor closes.
   */
  stop(): Promise<UpStatus>;
  /**
   * Resolves, with why, when the collector or the processor stops on its own (an error no
   * retry can fix): `up` must not go on serving a pipeline that no longer moves.
   */
  failed: Promise<string>;
}

const E2E = "paystream_e2e_latency_seconds";

async function bucketsOf(registry: Registry, name: string, output: string) {
  const h = registry.getSingleMetric(name) as Histogram | undefined;
  if (!h) return [];
  const data = await h.get();
  return data.values
    .filter((v) => v.metricName === `${name}_bucket` && v.labels.output === output)
    .map((v) => ({
      le: v.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(v.labels.le),
      count: v.value,
    }))
    .sort((a, b) => a.le - b.le);
}

export async function startUp(cfg: UpConfig, log: Logger): Promise<RunningUp> {
  const { processor: pcfg, collector: ccfg } = cfg;
  const started = Date.now();
  // Missing credentials (off loopback, without --demo) stop start-up before anything opens.
  const demo = ccfg.http.demo ?? false;
  const collectorPolicy = collectorAccess(ccfg, log);
  const dashboardPolicy = dashboardAccess(
    cfg.dashboard.auth,
    { host: pcfg.http.host, allowedHosts: ccfg.http.allowedHosts, allowedOrigins: ccfg.http.allowedOrigins },
    demo,
    log,
  );
  const registry = createRegistry("paystream");
  const graph = await openGraph(
    {
      clientId: `paystream-up-${process.pid}`,
      brokers: cfg.brokers,
      redisUrl: cfg.redisUrl,
      warehouse: pcfg.warehouse,
      topics: { ...processorTopics(pcfg), [Topics.labels]: ccfg.labelsTopic },
    },
    log,
  );
  const processor = await startProcessorOn(graph, pcfg, log, { registry, listenHttp: false });
  const collector = await startCollector({ ...ccfg, topic: pcfg.kafka.topic }, graph.log.sink, log, {
    registry,
    access: collectorPolicy,
  });

  // ---- one HTTP endpoint for metrics, status and the dashboard API
  const http = createServiceHttp({
    registry,
    readiness: [
      {
        name: "processor",
        check: () => (processor.processor.health.size ? "dependency failing" : undefined),
      },
      { name: "collector", check: () => collector.collector.failing },
    ],
    limits: {
      ...(ccfg.http.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: ccfg.http.requestTimeoutMs }),
      ...(ccfg.http.connectionTimeoutMs === undefined
        ? {}
        : { connectionTimeoutMs: ccfg.http.connectionTimeoutMs }),
    },
    access: dashboardPolicy,
  });
  const status = async (): Promise<UpStatus> => {
    const lag = await processor.processor.refreshLag().catch(() => new Map<number, bigint>());
    let lagTotal = 0n;
    for (const v of lag.values()) lagTotal += v;
    const t = processor.processor.totals;
    return {
      uptime_s: Math.round((Date.now() - started) / 1000),
      api: { collector: accessStatus(collectorPolicy), dashboard: accessStatus(dashboardPolicy) },
      mode: { log: graph.log.kind, alerts: graph.stores.kind, warehouse: graph.warehouse.name },
      collector: {
        target_rate: collector.collector.rate,
        actual_rate: Math.round(collector.collector.actualRate()),
        produced: collector.collector.totals.produced,
        by_kind: collector.collector.totals.byKind,
        labels: collector.collector.totals.labels,
      },
      processor: {
        processed: t.records,
        ok: t.ok,
        duplicates: t.duplicates,
        dlq: t.invalid,
        late: t.late,
        alerts: t.alerts,
        alerts_by_rule: Object.fromEntries(processor.processor.alertsByRule),
        lag_records: Number(lagTotal),
        window_accounts: processor.processor.windowAccounts(),
      },
    };
  };
  http.get("/status", status);
  // On the log the processor follows: a version published from the page reaches it there.
  const rulesLog = await openRulesLogOn(
    graph.log,
    pcfg.kafka.rulesTopic,
    `paystream-up-dashboard-${process.pid}`,
  );
  mountDashboard(http, {
    sources: {
      collector: injectUpstream(collector.http, "in-process collector", ccfg.http.token),
      processors: [injectUpstream(processor.http, "in-process processor")],
      alerts: graph.stores.reader,
    },
    log,
    maxSseClients: cfg.dashboard.maxSseClients,
    access: dashboardPolicy,
    // The processor's own instances: a status set on the page is the one the processor files
    // next to, and a backtest replays the very log the collector writes to.
    rulesLog,
    caseStore: graph.stores.cases(),
    registry,
    topicReader: graph.log.embedded
      ? new EmbeddedTopicReader(graph.log.embedded)
      : new KafkaTopicReader({
          brokers: [...(graph.log.brokers ?? [])],
          clientId: `paystream-up-reader-${process.pid}`,
        }),
    backtestTopics: { transactions: pcfg.kafka.topic, labels: ccfg.labelsTopic },
    maxWindowMs: pcfg.windowMs,
  });
  const url = await listen(http, pcfg.http.host, pcfg.http.port, "paystream HTTP");

  let prevRow = new Map<number, number>();
  let prevAlert = new Map<number, number>();
  const latencyP99 = async () => {
    const row = await bucketsOf(registry, E2E, "warehouse");
    const alert = await bucketsOf(registry, E2E, "alert_store");
    const out = {
      alert: histogramQuantile(alert, prevAlert, 0.99),
      row: histogramQuantile(row, prevRow, 0.99),
    };
    prevRow = new Map(row.map((b) => [b.le, b.count]));
    prevAlert = new Map(alert.map((b) => [b.le, b.count]));
    return out;
  };

  let stopping: Promise<UpStatus> | undefined;
  const stop = (): Promise<UpStatus> => {
    stopping ??= (async () => {
      await collector.stop();
      const produced = collector.collector.totals.produced;
      const deadline = Date.now() + 10_000;
      while (processor.processor.totals.records < produced && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await processor.processor.drain();
      const summary = await status();
      // Closes the graph too (producer, warehouse, stores): the collector is done with it.
      await processor.stop();
      await http.close();
      await rulesLog.close();
      return summary;
    })();
    return stopping;
  };

  const failed = new Promise<string>((resolve) => {
    void collector.collector.finished.then(() => {
      const f = collector.collector.fatal;
      if (f && !stopping) resolve(`the collector stopped: ${f.message} [${f.code}]`);
    });
    void processor.done.then((code) => {
      if (code !== 0 && !stopping) resolve(`the processor stopped with exit code ${code} (its log says why)`);
    });
  });

  return {
    url,
    collectorUrl: collector.url,
    readyMs: Date.now() - started,
    labels: { log: graph.log.label, alerts: graph.stores.label, warehouse: graph.warehouse.name },
    status,
    latencyP99,
    stop,
    failed,
  };
}

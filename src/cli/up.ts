/**
 * `paystream up` (what `npm start` runs): the whole pipeline in one process. With no
 * addresses it runs on embedded stand-ins — an in-process partitioned log for Kafka, an
 * in-process alert and dedup store for Redis — and DuckDB in ./data. Given --kafka,
 * --redis or --warehouse it uses the real services for those parts; the collector and
 * processor code paths are the same either way, only the adapters behind the ports change.
 */
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Histogram, Registry } from "prom-client";
import { EmbeddedAlertStore } from "../adapters/embedded/alerts.ts";
import { EmbeddedLog, EmbeddedSink, EmbeddedSource } from "../adapters/embedded/log.ts";
import { checkKafka, ensureTopics, type KafkaConnection } from "../adapters/kafka/client.ts";
import { KafkaSink, KafkaSource } from "../adapters/kafka/log.ts";
import { RedisAlertStore } from "../adapters/redis/alerts.ts";
import { connectRedis, type Redis } from "../adapters/redis/client.ts";
import { RedisDedupStore } from "../adapters/redis/dedup.ts";
import { openWarehouse, parseWarehouseUrl } from "../adapters/warehouse/index.ts";
import { collectorOptions, toCollectorConfig } from "../collector/config.ts";
import { startCollector } from "../collector/service.ts";
import type { RecordSink } from "../contracts/ports.ts";
import { TopicLayout, Topics } from "../contracts/topics.ts";
import { InMemorySharedDedupStore } from "../core/dedup.ts";
import { histogramQuantile } from "../dashboard/aggregate.ts";
import { mountDashboard } from "../dashboard/server.ts";
import { embeddedAlertFeed, injectUpstream, redisAlertFeed } from "../dashboard/sources.ts";
import { loadConfig, type OptionSpec, type OptionTable, p, renderHelp } from "../lib/config.ts";
import { createServiceHttp, listen } from "../lib/http.ts";
import { createLogger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import { processorOptions, toProcessorConfig } from "../processor/config.ts";
import { type ProcessorAdapters, startProcessor } from "../processor/service.ts";
import { onShutdownSignals } from "./signals.ts";

function pick(table: OptionTable, keys: string[]): OptionSpec[] {
  return keys.map((k) => {
    const o = table.find((x) => x.key === k);
    if (!o) throw new Error(`option ${k} missing`);
    return o;
  });
}

export const upOptions: OptionTable = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "PAYSTREAM_KAFKA_BROKERS",
    description: "use this Kafka (host:port[,...]) instead of the embedded log",
    parse: p.brokers(),
    optional: true,
  },
  {
    key: "redis.url",
    flag: "redis",
    env: "PAYSTREAM_REDIS_URL",
    description: "use this Redis for alerts and dedup instead of the embedded store",
    parse: p.url("redis", "rediss"),
    optional: true,
  },
  ...pick(processorOptions, [
    "warehouse",
    "kafka.topic",
    "kafka.groupId",
    "rules.file",
    "window.ms",
    "window.latenessMs",
    "dedup.ttlMs",
    "pii.key",
    "demo",
    "maxMessageBytes",
  ]),
  ...pick(collectorOptions, [
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
  ]),
  {
    key: "http.host",
    flag: "host",
    env: "PAYSTREAM_HTTP_HOST",
    description: "address the HTTP endpoints listen on",
    parse: p.string({ min: 1 }),
    default: "127.0.0.1",
  },
  {
    key: "http.port",
    flag: "port",
    env: "PAYSTREAM_PORT",
    description: "port of /metrics, /status, /api/* (and the dashboard)",
    parse: p.int(0, 65535),
    default: 3000,
  },
  {
    key: "collector.port",
    flag: "collector-port",
    env: "PAYSTREAM_COLLECTOR_PORT",
    description: "port of the collector control API (POST /config/rate)",
    parse: p.int(0, 65535),
    default: 5000,
  },
  {
    key: "statusEvery",
    flag: "status-every",
    env: "PAYSTREAM_STATUS_EVERY",
    description: "interval of the status line (0 = none)",
    parse: p.duration(0),
    default: 5000,
  },
  {
    key: "duration",
    flag: "duration",
    env: "PAYSTREAM_DURATION",
    description: "stop after this long (0 = run until Ctrl-C)",
    parse: p.duration(0),
    default: 0,
  },
  {
    key: "summaryFile",
    flag: "summary-file",
    env: "PAYSTREAM_SUMMARY_FILE",
    description: "write the final summary as JSON to this file",
    parse: p.string({ min: 1 }),
    optional: true,
  },
];

const SUMMARY =
  "Runs collector, log, processor, alert store and warehouse in one process. Embedded by default (no Kafka, no Redis); " +
  "--kafka/--redis/--warehouse switch each part to a real service.";

async function bucketsOf(
  registry: Registry,
  name: string,
  output: string,
): Promise<{ le: number; count: number }[]> {
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

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("up", SUMMARY, upOptions)}\n`);
    return 0;
  }
  const { values } = loadConfig(upOptions, { argv });
  const brokers = values["kafka.brokers"] as string[] | undefined;
  const redisUrl = values["redis.url"] as string | undefined;
  const embedded = !brokers && !redisUrl;
  const pcfg = toProcessorConfig({
    ...values,
    "kafka.brokers": brokers ?? [],
    "redis.url": redisUrl ?? "",
    // The demo (fully embedded) generates a throwaway PII key; with real services a key is required.
    demo: (values.demo as boolean) || embedded,
    "http.host": values["http.host"],
    "http.port": values["http.port"],
    "batch.max": 5000,
    "batch.maxInFlight": 16,
    duration: values.duration,
  });
  const ccfg = toCollectorConfig({
    ...values,
    "kafka.brokers": brokers ?? [],
    "http.port": values["collector.port"],
    "batch.size": 2000,
    "batch.lingerMs": 5,
    "batch.maxInFlight": 8,
    compression: "none",
    count: 0,
    labelsFile: undefined,
  });
  const log = createLogger("up", process.env.PAYSTREAM_LOG_LEVEL ?? "warn");
  const wh = parseWarehouseUrl(pcfg.warehouse, process.env);
  if (wh.kind === "duckdb") await mkdir(dirname(wh.path), { recursive: true });

  const started = Date.now();
  const registry = createRegistry("paystream");

  // ---- log: Kafka or embedded
  let sink: RecordSink;
  let source: ProcessorAdapters["source"];
  let embeddedLog: EmbeddedLog | undefined;
  if (brokers) {
    const conn: KafkaConnection = { brokers, clientId: `paystream-up-${process.pid}` };
    await checkKafka(conn);
    await ensureTopics(conn);
    if (pcfg.kafka.topic !== Topics.transactions) {
      const { createAdmin } = await import("../adapters/kafka/client.ts");
      const admin = createAdmin(conn);
      const existing = await admin.listTopics();
      if (!existing.includes(pcfg.kafka.topic)) {
        await admin.createTopics({ topics: [{ topic: pcfg.kafka.topic, partitions: 24, replicas: 1 }] });
      }
      await admin.close();
    }
    sink = new KafkaSink(conn);
    source = new KafkaSource(conn, { topic: pcfg.kafka.topic, groupId: pcfg.kafka.groupId });
  } else {
    embeddedLog = new EmbeddedLog();
    for (const [topic, { partitions }] of Object.entries(TopicLayout))
      embeddedLog.createTopic(topic, partitions);
    embeddedLog.createTopic(pcfg.kafka.topic, 24);
    sink = new EmbeddedSink(embeddedLog);
    source = new EmbeddedSource(embeddedLog, pcfg.kafka.topic);
  }

  // ---- alerts + dedup: Redis or embedded
  let redis: Redis | undefined;
  let alertStore: ProcessorAdapters["alertStore"];
  let dedupStore: ProcessorAdapters["dedupStore"];
  let embeddedAlerts: EmbeddedAlertStore | undefined;
  if (redisUrl) {
    redis = await connectRedis({
      url: redisUrl,
      onError: (err) => log.warn({ err: err.message }, "redis error"),
    });
    alertStore = new RedisAlertStore(redis);
    dedupStore = new RedisDedupStore(redis, pcfg.dedupTtlMs);
  } else {
    embeddedAlerts = new EmbeddedAlertStore();
    alertStore = embeddedAlerts;
    dedupStore = new InMemorySharedDedupStore({ ttlMs: pcfg.dedupTtlMs });
  }
  const warehouse = await openWarehouse(pcfg.warehouse, { log });

  const processor = await startProcessor(
    pcfg,
    log,
    {
      source,
      sink,
      alertStore,
      dedupStore,
      warehouse,
      close: async () => {
        await warehouse.close();
        redis?.destroy();
      },
    },
    { registry, listenHttp: false },
  );
  const collector = await startCollector({ ...ccfg, topic: pcfg.kafka.topic }, sink, log, { registry });

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
  });
  const status = async () => {
    const lag = await processor.processor.refreshLag().catch(() => new Map<number, bigint>());
    let lagTotal = 0n;
    for (const v of lag.values()) lagTotal += v;
    const t = processor.processor.totals;
    return {
      uptime_s: Math.round((Date.now() - started) / 1000),
      mode: {
        log: brokers ? "kafka" : "embedded",
        alerts: redisUrl ? "redis" : "embedded",
        warehouse: warehouse.name,
      },
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
  mountDashboard(http, {
    sources: {
      collector: injectUpstream(collector.http, "in-process collector", ccfg.http.token),
      processors: [injectUpstream(processor.http, "in-process processor")],
      alerts: embeddedAlerts ? embeddedAlertFeed(embeddedAlerts) : redisAlertFeed(redis!, redisUrl!),
    },
    log,
  });
  const url = await listen(http, pcfg.http.host, pcfg.http.port, "paystream HTTP");

  const mode = brokers || redisUrl ? "real services" : "embedded (no Kafka, no Redis needed)";
  process.stdout.write(
    [
      `paystream is running — ${mode}, ready in ${Date.now() - started} ms`,
      `  dashboard         ${url}/`,
      `  status & metrics  ${url}/status   ${url}/metrics`,
      `  collector API     ${collector.url}/config   (change the rate: curl -X POST ${collector.url}/config/rate -H 'content-type: application/json' -d '{"messages_per_second": 5000}')`,
      `  warehouse         ${warehouse.name} ${pcfg.warehouse}`,
      `  log / alerts      ${brokers ? `kafka ${brokers.join(",")}` : "embedded log"} / ${redisUrl ?? "embedded store"}`,
      "  Ctrl-C to stop",
      "",
    ].join("\n"),
  );

  // ---- status line
  const statusEvery = values.statusEvery as number;
  let prevRowBuckets = new Map<number, number>();
  let prevAlertBuckets = new Map<number, number>();
  let prevProcessed = 0;
  let prevAt = Date.now();
  const statusLine = async () => {
    const s = await status();
    const rowBuckets = await bucketsOf(registry, "paystream_e2e_latency_seconds", "warehouse");
    const alertBuckets = await bucketsOf(registry, "paystream_e2e_latency_seconds", "alert_store");
    const p99Row = histogramQuantile(rowBuckets, prevRowBuckets, 0.99);
    const p99Alert = histogramQuantile(alertBuckets, prevAlertBuckets, 0.99);
    prevRowBuckets = new Map(rowBuckets.map((b) => [b.le, b.count]));
    prevAlertBuckets = new Map(alertBuckets.map((b) => [b.le, b.count]));
    const ms = (v: number | undefined) => (v === undefined ? "-" : `${(v * 1000).toFixed(1)} ms`);
    const now = Date.now();
    const rate = ((s.processor.processed - prevProcessed) * 1000) / Math.max(1, now - prevAt);
    prevProcessed = s.processor.processed;
    prevAt = now;
    const rules = Object.entries(s.processor.alerts_by_rule)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const time = new Date().toISOString().slice(11, 19);
    process.stdout.write(
      `[${time}] in ${fmt(s.collector.actual_rate)}/s (target ${fmt(s.collector.target_rate)}) | processed ${fmt(s.processor.processed)} (${fmt(Math.round(rate))}/s) | lag ${fmt(s.processor.lag_records)} | alerts ${fmt(s.processor.alerts)}${rules ? ` (${rules})` : ""} | dups ${fmt(s.processor.duplicates)} | DLQ ${fmt(s.processor.dlq)} | p99 alert ${ms(p99Alert)}, row ${ms(p99Row)}\n`,
    );
  };
  const statusTimer =
    statusEvery > 0 ? setInterval(() => void statusLine().catch(() => {}), statusEvery) : undefined;

  let resolveStop!: () => void;
  const stopRequested = new Promise<void>((r) => {
    resolveStop = r;
  });
  onShutdownSignals(async () => resolveStop(), log);
  const duration = values.duration as number;
  if (duration > 0) setTimeout(resolveStop, duration).unref();
  await stopRequested;

  // ---- orderly stop: collector first (nothing new), then let the processor catch up and drain.
  if (statusTimer) clearInterval(statusTimer);
  await collector.stop();
  const produced = collector.collector.totals.produced;
  const deadline = Date.now() + 10_000;
  while (processor.processor.totals.records < produced && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await processor.processor.drain();
  const summary = await status();
  await processor.stop();
  await sink.close();
  await http.close();

  const s = summary;
  process.stdout.write(
    [
      "",
      `paystream stopped after ${s.uptime_s} s`,
      `  produced   ${fmt(s.collector.produced)}  (${Object.entries(s.collector.by_kind)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(", ")})`,
      `  processed  ${fmt(s.processor.processed)}: ok ${fmt(s.processor.ok)}, duplicates dropped ${fmt(s.processor.duplicates)}, DLQ ${fmt(s.processor.dlq)}, late ${fmt(s.processor.late)}`,
      `  alerts     ${fmt(s.processor.alerts)}  ${JSON.stringify(s.processor.alerts_by_rule)}`,
      `  warehouse  ${pcfg.warehouse}`,
      "",
    ].join("\n"),
  );
  if (values.summaryFile) writeFileSync(values.summaryFile as string, JSON.stringify(s, null, 2));
  return 0;
}

/**
 * The processor as a running service: connects the real adapters (Kafka, Redis, warehouse),
 * serves /metrics /healthz /readyz, reloads rules, and stops gracefully (SIGTERM: stop
 * fetching, make everything in flight durable, commit, leave the group).
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { checkKafka, ensureTopics, type KafkaConnection } from "../adapters/kafka/client.ts";
import { KafkaSink, KafkaSource } from "../adapters/kafka/log.ts";
import { RedisAlertStore } from "../adapters/redis/alerts.ts";
import { connectRedis, type Redis } from "../adapters/redis/client.ts";
import { RedisDedupStore } from "../adapters/redis/dedup.ts";
import { openWarehouse } from "../adapters/warehouse/index.ts";
import type { AlertStore, RecordSink, RecordSource, Warehouse } from "../contracts/ports.ts";
import { Topics } from "../contracts/topics.ts";
import { Deduper, type SharedDedupStore } from "../core/dedup.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import { Masker } from "../core/masking.ts";
import { createServiceHttp, listen } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import type { ProcessorConfig } from "./config.ts";
import { createProcessorMetrics } from "./metrics.ts";
import { Processor } from "./processor.ts";
import { loadRulesFile, watchRules } from "./rules-file.ts";

export interface ProcessorAdapters {
  source: RecordSource;
  sink: RecordSink;
  alertStore: AlertStore;
  dedupStore: SharedDedupStore;
  warehouse: Warehouse;
  close: () => Promise<void>;
}

/** The PII key: hex if it looks like hex (>= 32 hex digits), otherwise the UTF-8 bytes. */
export function resolvePiiKey(cfg: Pick<ProcessorConfig, "piiKey" | "demo">, log: Logger): Buffer {
  if (cfg.piiKey) {
    return /^[0-9a-fA-F]{32,}$/.test(cfg.piiKey) && cfg.piiKey.length % 2 === 0
      ? Buffer.from(cfg.piiKey, "hex")
      : Buffer.from(cfg.piiKey, "utf8");
  }
  if (cfg.demo) {
    log.warn("demo mode: generated a random PII key for this run; tokens will differ after a restart");
    return randomBytes(32);
  }
  throw new PaystreamError(
    ErrorCodes.SECRET_MISSING,
    "no PII masking key: set PAYSTREAM_PII_KEY (or --pii-key) from a secret, or run with --demo to generate a throwaway one",
  );
}

/** Kafka + Redis + the configured warehouse. Fails fast with the address when one is unreachable. */
export async function connectRealAdapters(cfg: ProcessorConfig, log: Logger): Promise<ProcessorAdapters> {
  const conn: KafkaConnection = {
    brokers: cfg.kafka.brokers,
    clientId: `paystream-processor-${process.pid}`,
  };
  await checkKafka(conn);
  await ensureTopics(conn, undefined, undefined, {
    [Topics.transactions]: cfg.kafka.topic,
    [Topics.dlq]: cfg.kafka.dlqTopic,
    [Topics.alerts]: cfg.kafka.alertsTopic,
  });
  const redis: Redis = await connectRedis({
    url: cfg.redisUrl,
    onError: (err) => log.warn({ err: err.message }, "redis connection error"),
  });
  const warehouse = await openWarehouse(cfg.warehouse, { log });
  const source = new KafkaSource(conn, {
    topic: cfg.kafka.topic,
    groupId: cfg.kafka.groupId,
    groupProtocol: cfg.kafka.groupProtocol,
    maxBatch: cfg.maxBatch,
  });
  const sink = new KafkaSink(conn);
  return {
    source,
    sink,
    alertStore: new RedisAlertStore(redis),
    dedupStore: new RedisDedupStore(redis, cfg.dedupTtlMs),
    warehouse,
    close: async () => {
      await sink.close();
      await warehouse.close();
      redis.destroy();
    },
  };
}

export interface RunningProcessor {
  processor: Processor;
  http: FastifyInstance;
  registry: Registry;
  url: string;
  stop: () => Promise<void>;
  /** Resolves when the processor stopped (gracefully or fatally), with the exit code. */
  done: Promise<number>;
}

export async function startProcessor(
  cfg: ProcessorConfig,
  log: Logger,
  adapters: ProcessorAdapters,
  opts: { registry?: Registry; listenHttp?: boolean } = {},
): Promise<RunningProcessor> {
  const key = resolvePiiKey(cfg, log);
  const rules = loadRulesFile(cfg.rulesFile, cfg.windowMs);
  const registry = opts.registry ?? createRegistry("processor");
  const metrics = createProcessorMetrics(registry);
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });

  const processor = new Processor(
    {
      source: adapters.source,
      sink: adapters.sink,
      alertStore: adapters.alertStore,
      warehouse: adapters.warehouse,
      deduper: new Deduper(adapters.dedupStore),
      masker: new Masker(key),
      metrics,
      log: log.child({ component: "processor" }),
      onFatal: () => void stop(1),
    },
    {
      rules,
      window: { windowMs: cfg.windowMs, allowedLatenessMs: cfg.allowedLatenessMs },
      maxMessageBytes: cfg.maxMessageBytes,
      maxInFlight: cfg.maxInFlight,
      recoverySpanMs: cfg.recoverySpanMs,
      dlqTopic: cfg.kafka.dlqTopic,
      alertsTopic: cfg.kafka.alertsTopic,
    },
  );

  const rulesWatch = watchRules({
    path: cfg.rulesFile,
    maxWindowMs: cfg.windowMs,
    onLoad: (r) => {
      processor.setRules(r);
      metrics.rulesReloads.inc({ result: "ok" });
      log.info({ rules: r.compiled.map((c) => c.id) }, "rules reloaded");
    },
    onError: (err) => {
      metrics.rulesReloads.inc({ result: "error" });
      log.error({ err: err.message }, "rules reload rejected; keeping the previous rules");
    },
  });

  let started = false;
  const http = createServiceHttp({
    registry,
    readiness: [
      { name: "consumer", check: () => (started ? undefined : "not yet in the consumer group") },
      {
        name: "dependencies",
        check: () =>
          processor.health.size === 0
            ? undefined
            : [...processor.health.entries()].map(([k, v]) => `${k}: ${v}`).join("; "),
      },
    ],
  });
  http.get("/status", async () => ({
    lag: await processor
      .refreshLag()
      .then((l) => Number([...l.values()].reduce((a, b) => a + b, 0n)))
      .catch(() => null),
    totals: processor.totals,
    alertsByRule: Object.fromEntries(processor.alertsByRule),
    windowAccounts: processor.windowAccounts(),
    rules: processor.rules.compiled.map((c) => c.id),
    health: Object.fromEntries(processor.health),
  }));
  let url = "";
  if (opts.listenHttp !== false) url = await listen(http, cfg.http.host, cfg.http.port, "processor metrics");

  const lagTimer = setInterval(() => {
    processor.refreshLag().catch((err) => log.debug({ err: (err as Error).message }, "lag refresh failed"));
  }, 5000);
  lagTimer.unref();

  let stopping: Promise<void> | undefined;
  const stop = (code = 0): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping: draining in-flight batches and committing offsets");
      clearInterval(lagTimer);
      rulesWatch.close();
      await processor.close();
      await adapters.close();
      await http.close();
      log.info({ totals: processor.totals }, "processor stopped");
      resolveDone(code);
    })();
    return stopping;
  };

  await processor.start();
  started = true;
  log.info(
    { url, rules: rules.compiled.map((c) => c.id), warehouse: adapters.warehouse.name },
    "processor running",
  );
  return { processor, http, registry, url, stop: () => stop(0), done };
}

/**
 * Test harness: a real processor on the real local Kafka and Redis and a DuckDB file, wired
 * to topics unique to the test so runs never see each other's data. Traffic comes from the
 * collector's generator in simulated time (event times advance 1 s per `ratePerSecond`
 * records) so a test covers minutes of event time in seconds of wall time.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createAdmin,
  createConsumer,
  createProducer,
  type KafkaConnection,
  waitForLeaders,
} from "../../src/adapters/kafka/client.ts";
import { KafkaSink, KafkaSource } from "../../src/adapters/kafka/log.ts";
import { RedisAlertStore } from "../../src/adapters/redis/alerts.ts";
import { connectRedis, type Redis } from "../../src/adapters/redis/client.ts";
import { RedisDedupStore } from "../../src/adapters/redis/dedup.ts";
import { type InspectableWarehouse, openWarehouse } from "../../src/adapters/warehouse/index.ts";
import {
  type GeneratedRecord,
  type GeneratorOptions,
  TrafficGenerator,
} from "../../src/collector/generator.ts";
import type { Label } from "../../src/contracts/labels.ts";
import { Deduper } from "../../src/core/dedup.ts";
import type { DlqKey } from "../../src/core/dlq-crypto.ts";
import type { RuleSet } from "../../src/core/rules.ts";
import { createLogger } from "../../src/lib/log.ts";
import { createProcessorMetrics } from "../../src/processor/metrics.ts";
import { Processor, type ProcessorOptions } from "../../src/processor/processor.ts";
import { testMasker, testRegistry } from "./fixtures.ts";
import { services, uniqueName } from "./services.ts";

export const conn: KafkaConnection = { brokers: services.kafka, clientId: "paystream-it" };

export interface TestTopics {
  input: string;
  dlq: string;
  alerts: string;
  /** The collector's ground truth (payments.labels for this test). */
  labels: string;
}

export async function createTestTopics(prefix: string, partitions = 6): Promise<TestTopics> {
  const topics = {
    input: uniqueName(`${prefix}-in`),
    dlq: uniqueName(`${prefix}-dlq`),
    alerts: uniqueName(`${prefix}-alerts`),
    labels: uniqueName(`${prefix}-labels`),
  };
  const admin = createAdmin(conn);
  await admin.createTopics({
    topics: [
      { topic: topics.input, partitions, replicas: 1 },
      { topic: topics.dlq, partitions: 2, replicas: 1 },
      { topic: topics.alerts, partitions: 2, replicas: 1 },
      { topic: topics.labels, partitions: 2, replicas: 1 },
    ],
  });
  await waitForLeaders(admin, Object.values(topics));
  await admin.close();
  return topics;
}

export async function deleteTopics(topics: TestTopics): Promise<void> {
  const admin = createAdmin(conn);
  await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
  await admin.close();
}

/** Generates `seconds` of simulated traffic at `ratePerSecond` and produces it. Returns what was sent. */
export async function produceTraffic(
  topic: string,
  opts: GeneratorOptions & { seconds: number; ratePerSecond: number; startMs?: number },
): Promise<GeneratedRecord[]> {
  const gen = new TrafficGenerator(opts);
  const producer = createProducer(conn, { idempotent: true });
  const all: GeneratedRecord[] = [];
  let now = opts.startMs ?? Date.now() - opts.seconds * 1000;
  const perTick = Math.max(1, Math.round(opts.ratePerSecond / 10));
  for (let tick = 0; tick < opts.seconds * 10; tick++) {
    const batch = gen.fill([], perTick, now);
    all.push(...batch);
    now += 100;
  }
  // The generator keeps incidents open after the last tick: let them finish in quiet time.
  for (let tick = 0; tick < 1200 && gen.counters().activeScenarios > 0; tick++) {
    all.push(...gen.fill([], 1, now));
    now += 100;
  }
  for (let i = 0; i < all.length; i += 2000) {
    await producer.send({
      messages: all.slice(i, i + 2000).map((r) => ({ topic, key: r.key, value: r.value })),
    });
  }
  await producer.close();
  return all;
}

export interface TestProcessor {
  processor: Processor;
  warehouse: InspectableWarehouse;
  redis: Redis;
  dir: string;
  close: () => Promise<void>;
}

export async function startTestProcessor(
  topics: TestTopics,
  rules: RuleSet,
  opts: {
    groupId?: string;
    warehouseUrl?: string;
    dir?: string;
    /** Seals DLQ originals for redrive (none unless given). */
    dlqKey?: DlqKey;
    /** Processor options beyond rules and topics (validation limits...). */
    options?: Partial<ProcessorOptions>;
    /** The shared Redis dedup tier (`--dedup-shared`); off by default, as in production. */
    sharedDedup?: boolean;
  } = {},
): Promise<TestProcessor> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "ps-it-"));
  const redis = await connectRedis({ url: services.redis });
  const log = createLogger("it", "warn");
  const warehouse = await openWarehouse(opts.warehouseUrl ?? `duckdb:${join(dir, "wh.duckdb")}`, { log });
  const source = new KafkaSource(conn, {
    topic: topics.input,
    groupId: opts.groupId ?? uniqueName("it-proc"),
  });
  const sink = new KafkaSink(conn);
  const processor = new Processor(
    {
      source,
      sink,
      alertStore: new RedisAlertStore(redis),
      warehouse,
      // A short horizon: test claims must not pile up in the shared Redis (maxmemory 2 GB).
      ...(opts.sharedDedup ? { deduper: new Deduper(new RedisDedupStore(redis, 900_000)) } : {}),
      masker: testMasker(),
      ...(opts.dlqKey ? { dlqKey: opts.dlqKey } : {}),
      metrics: createProcessorMetrics(testRegistry("it")),
      log,
    },
    { rules, dlqTopic: topics.dlq, alertsTopic: topics.alerts, ...opts.options },
  );
  await processor.start();
  return {
    processor,
    warehouse,
    redis,
    dir,
    close: async () => {
      await processor.close();
      await sink.close();
      await warehouse.close();
      redis.destroy();
    },
  };
}

export { waitFor } from "./fixtures.ts";

export interface ReadRecord {
  key: string | undefined;
  value: string;
  headers: Map<string, string>;
  partition: number;
  offset: bigint;
  /** Kafka timestamp, ms since epoch: the processing time the processor decodes with. */
  timestamp: number;
}

/** Reads a whole topic from the beginning (until `expected` records or the timeout). */
export async function readTopic(topic: string, expected: number, timeoutMs = 20_000): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  if (expected === 0) return out;
  const consumer = createConsumer(conn, uniqueName("it-reader"));
  const stream = await consumer.consume({ topics: [topic], mode: "earliest" });
  const timer = setTimeout(() => void stream.close(), timeoutMs);
  try {
    for await (const m of stream) {
      out.push({
        key: m.key,
        value: m.value.toString(),
        headers: m.headers,
        partition: m.partition,
        offset: m.offset,
        timestamp: Number(m.timestamp),
      });
      if (out.length >= expected) break;
    }
  } finally {
    clearTimeout(timer);
    await stream.close().catch(() => {});
    await consumer.close(true).catch(() => {});
  }
  return out;
}

/** The collector's label keys (src/collector/service.ts): scenario id, Kafka key, or transaction id. */
export function labelKey(l: Label): string {
  return l.type === "scenario" ? l.scenario_id : l.type === "malformed" ? l.key : l.transaction_id;
}

/** Produces the labels of generated records to a labels topic, as the collector does; returns them. */
export async function produceLabels(topic: string, sent: GeneratedRecord[]): Promise<Label[]> {
  const labels = sent.flatMap((r) => (r.label ? [r.label] : []));
  const producer = createProducer(conn);
  for (let i = 0; i < labels.length; i += 1000) {
    await producer.send({
      messages: labels.slice(i, i + 1000).map((l) => ({ topic, key: labelKey(l), value: JSON.stringify(l) })),
    });
  }
  await producer.close();
  return labels;
}

import { checkKafka, createProducer, ensureTopics, type KafkaConnection } from "../adapters/kafka/client.ts";
import { KafkaSink } from "../adapters/kafka/log.ts";
import { collectorOptions, toCollectorConfig } from "../collector/config.ts";
import { startCollector } from "../collector/service.ts";
import { Topics } from "../contracts/topics.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Produces realistic payment traffic to payments.transactions at a target rate (POST /config/rate to change it live), " +
  "with labelled fraud scenarios, duplicates, late, out-of-order and malformed events; ground truth on payments.labels.";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("collector", SUMMARY, collectorOptions)}\n`);
    return 0;
  }
  const cfg = toCollectorConfig(loadConfig(collectorOptions, { argv }).values);
  const log = createLogger("collector");
  const conn: KafkaConnection = { brokers: cfg.brokers, clientId: `paystream-collector-${process.pid}` };
  await checkKafka(conn);
  // Its own topics under their configured names: a produce to a missing topic would only retry.
  await ensureTopics(conn, undefined, undefined, {
    [Topics.transactions]: cfg.topic,
    [Topics.labels]: cfg.labelsTopic,
  });
  const makeProducer = () =>
    createProducer(conn, cfg.compression === "none" ? {} : { compression: cfg.compression });
  const sink = new KafkaSink(conn, undefined, makeProducer);
  const running = await startCollector(cfg, sink, log);
  onShutdownSignals(async () => {
    await running.stop();
  }, log);
  await running.collector.finished;
  const totals = await running.stop();
  await sink.close();
  process.stdout.write(
    `${JSON.stringify({ produced: totals.produced, unsent: totals.unsent, byKind: totals.byKind, labels: totals.labels })}\n`,
  );
  // Records generated but never taken by the broker: the run's ground truth is short of them.
  return totals.unsent > 0 ? 1 : 0;
}

import { ensureTopics } from "../adapters/kafka/client.ts";
import { loadConfig, type OptionTable, p, renderHelp } from "../lib/config.ts";

const table: OptionTable = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "PAYSTREAM_KAFKA_BROKERS",
    description: "Kafka bootstrap brokers, host:port[,host:port]",
    parse: p.brokers(),
    default: ["127.0.0.1:9092"],
  },
  {
    key: "kafka.replicas",
    flag: "replicas",
    env: "PAYSTREAM_TOPIC_REPLICAS",
    description: "replication factor for new topics (3 in production)",
    parse: p.int(1, 5),
    default: 1,
  },
];

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("topics", "Creates payments.* topics if missing.", table)}\n`);
    return 0;
  }
  const { values } = loadConfig(table, { argv });
  const counts = await ensureTopics(
    { brokers: values["kafka.brokers"] as string[], clientId: "paystream-topics" },
    undefined,
    values["kafka.replicas"] as number,
  );
  for (const [topic, partitions] of counts) process.stdout.write(`${topic}\t${partitions} partitions\n`);
  return 0;
}

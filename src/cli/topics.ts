import { createTopics } from "../app/topics.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { topicsOptions } from "./options/topics.ts";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("topics", "Creates payments.* topics if missing.", topicsOptions)}\n`);
    return 0;
  }
  const { values } = loadConfig(topicsOptions, { argv });
  const counts = await createTopics(values["kafka.brokers"], values["kafka.replicas"]);
  for (const [topic, partitions] of counts) process.stdout.write(`${topic}\t${partitions} partitions\n`);
  return 0;
}

import { createTopics } from "../app/topics.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { topicsOptions } from "./options/topics.ts";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(
      `${renderHelp("topics", "Creates payments.* topics if missing (min.insync.replicas 2 from 3 replicas on).", topicsOptions)}\n`,
    );
    return 0;
  }
  const { values } = loadConfig(topicsOptions, { argv });
  const asked = values["kafka.replicas"];
  const { topics, replicas } = await createTopics(values["kafka.brokers"], asked);
  for (const [topic, t] of topics) {
    // An existing topic keeps its replication: raising it is a partition reassignment.
    const note = t.replicas < replicas ? `\t(exists with fewer replicas than ${replicas}: not changed)` : "";
    process.stdout.write(
      `${topic}\t${t.partitions} partitions\t${t.replicas} replica${t.replicas === 1 ? "" : "s"}\tmin.insync.replicas ${t.minInsyncReplicas}\tcleanup.policy ${t.cleanupPolicy}${note}\n`,
    );
  }
  return 0;
}

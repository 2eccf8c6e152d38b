/** `paystream topics` options (kept out of src/cli/topics.ts so the table is declared with the others). */
import { defineOptions, p } from "../../lib/config.ts";
import { kafkaBrokers } from "../../lib/options.ts";

export const topicsOptions = defineOptions([
  kafkaBrokers,
  {
    key: "kafka.replicas",
    flag: "replicas",
    env: "PAYSTREAM_TOPIC_REPLICAS",
    description:
      "replication factor for new topics (default: as the services create them, 3, or every broker of a smaller cluster)",
    parse: p.int(1, 5),
    optional: true,
    defaultHelp: "3, or the cluster's broker count if smaller",
  },
]);

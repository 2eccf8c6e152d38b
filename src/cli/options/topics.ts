/** `paystream topics` options (kept out of src/cli/topics.ts so the table is declared with the others). */
import { defineOptions, p } from "../../lib/config.ts";
import { kafkaBrokers } from "../../lib/options.ts";

export const topicsOptions = defineOptions([
  kafkaBrokers,
  {
    key: "kafka.replicas",
    flag: "replicas",
    env: "PAYSTREAM_TOPIC_REPLICAS",
    description: "replication factor for new topics (3 in production)",
    parse: p.int(1, 5),
    default: 1,
  },
]);

/**
 * `paystream <command>` exactly as bin/paystream runs it (src/cli/main.ts), except that
 * nothing it produces can reach the shared payments.* topics.
 *
 * Other people's pipelines and tests read payments.transactions, payments.labels,
 * payments.alerts and payments.dlq, and a benchmark pushes millions of records; the CLIs
 * name those topics themselves (the processor's DLQ and alerts topics are not options, and
 * how the collector learns its topic has changed before). So before the CLI loads,
 * KafkaSink.send — the one place either service produces through — is wrapped: a record for
 * a topic in BENCH_TOPIC_MAP is re-addressed to the benchmark's topic, any other payments.*
 * topic is refused. Everything else is the product's code path, flags and defaults. The cost
 * is one property lookup per record.
 *
 *   BENCH_TOPIC_MAP='{"payments.transactions":"bench-x-tx",...}' node guarded-main.ts collector --rate 1000
 */
import { KafkaSink } from "../../src/adapters/kafka/log.ts";
import type { OutRecord } from "../../src/contracts/ports.ts";

const map = JSON.parse(process.env.BENCH_TOPIC_MAP ?? "{}") as Record<string, string>;
for (const [from, to] of Object.entries(map)) {
  if (to.startsWith("payments.")) throw new Error(`BENCH_TOPIC_MAP sends ${from} to the shared topic ${to}`);
}
const send = KafkaSink.prototype.send;
KafkaSink.prototype.send = function guardedSend(this: KafkaSink, records: OutRecord[]): Promise<void> {
  for (const r of records) {
    const to = map[r.topic];
    if (to !== undefined) r.topic = to;
    else if (r.topic.startsWith("payments.")) {
      return Promise.reject(new Error(`benchmark guard: refusing a record for the shared topic ${r.topic}`));
    }
  }
  return send.call(this, records);
};

await import("../../src/cli/main.ts");

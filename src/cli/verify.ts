/**
 * `paystream verify`: reconciles one run's ground truth (its input topic and labels) against
 * what the pipeline wrote (warehouse, DLQ, alerts topic, Redis), prints a table and exits
 *   0  clean
 *   1  a missing or duplicate row, a missing DLQ entry, a missing or doubled alert
 *   2  usage or config error, or the verification could not complete (service unreachable,
 *      input topic missing, topics not read to their end within --timeout)
 * See docs/verify.md.
 */

import { CONSUMER_GROUP, Topics } from "../contracts/topics.ts";
import { isPaystreamError } from "../core/errors.ts";
import { loadConfig, type OptionTable, p, renderHelp } from "../lib/config.ts";
import { DEFAULT_CHECKED_RULES, DEFAULT_MAX_EXAMPLES, renderTable } from "../verify/reconcile.ts";
import { type VerifyRun, verify } from "../verify/verify.ts";

const SUMMARY =
  "Reconciles a run: every valid transaction on the input topic must be in the warehouse exactly once, " +
  "every invalid one in the DLQ, and every labelled fraud incident must have exactly one alert (alerts topic, " +
  "Redis, warehouse). Prints a table; exit 0 clean, 1 loss/duplicate/alert problem, 2 usage or could not verify.";

const ruleList: (raw: unknown) => string[] = (raw) => {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("must list at least one rule id");
  for (const r of list) if (!/^[A-Za-z0-9_.-]+$/.test(r)) throw new Error(`"${r}" is not a rule id`);
  return [...new Set(list)];
};

export const verifyOptions = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "PAYSTREAM_KAFKA_BROKERS",
    description: "Kafka bootstrap brokers, host:port[,host:port]",
    parse: p.brokers(),
    default: ["127.0.0.1:9092"],
  },
  {
    key: "topic",
    flag: "topic",
    env: "PAYSTREAM_TOPIC",
    description: "input topic of the run: the record of what was produced",
    parse: p.string({ min: 1 }),
    default: Topics.transactions,
  },
  {
    key: "labelsTopic",
    flag: "labels-topic",
    env: "PAYSTREAM_LABELS_TOPIC",
    description: "ground-truth labels written by the collector",
    parse: p.string({ min: 1 }),
    default: Topics.labels,
  },
  {
    key: "dlqTopic",
    flag: "dlq-topic",
    env: "PAYSTREAM_DLQ_TOPIC",
    description: "dead-letter topic the processor writes invalid records to",
    parse: p.string({ min: 1 }),
    default: Topics.dlq,
  },
  {
    key: "alertsTopic",
    flag: "alerts-topic",
    env: "PAYSTREAM_ALERTS_TOPIC",
    description: "alerts topic the processor writes to",
    parse: p.string({ min: 1 }),
    default: Topics.alerts,
  },
  {
    key: "redis.url",
    flag: "redis",
    env: "PAYSTREAM_REDIS_URL",
    description: "Redis holding the fraud:alert:<id> hashes",
    parse: p.url("redis", "rediss"),
    default: "redis://127.0.0.1:6379",
  },
  {
    key: "warehouse",
    flag: "warehouse",
    env: "PAYSTREAM_WAREHOUSE",
    description: "warehouse: duckdb:<path> | postgres://... | bigquery://<project>/<dataset> (read only)",
    parse: p.string({ min: 1 }),
    default: "duckdb:./data/paystream.duckdb",
  },
  {
    key: "timeout",
    flag: "timeout",
    env: "PAYSTREAM_VERIFY_TIMEOUT",
    description: "give up when a topic is not read to its end offsets within this long",
    parse: p.duration(1000),
    default: 600_000,
  },
  {
    key: "rules",
    flag: "rules",
    env: "PAYSTREAM_VERIFY_RULES",
    description: "comma-separated rule ids whose labelled incidents must have exactly one alert",
    parse: ruleList,
    default: [...DEFAULT_CHECKED_RULES],
  },
  {
    key: "group",
    flag: "group",
    env: "PAYSTREAM_GROUP_ID",
    description: "processor consumer group whose lag is reported (a warning, never a failure)",
    parse: p.string({ min: 1 }),
    default: CONSUMER_GROUP,
  },
  {
    key: "maxMessageBytes",
    flag: "max-message-bytes",
    env: "PAYSTREAM_MAX_MESSAGE_BYTES",
    description: "as the processor's: larger records are expected in the DLQ as oversized",
    parse: p.int(256, 10 * 1024 * 1024),
    default: 16 * 1024,
  },
  {
    key: "examples",
    flag: "examples",
    env: "PAYSTREAM_VERIFY_EXAMPLES",
    description: "ids listed per failing check",
    parse: p.int(0, 100_000),
    default: DEFAULT_MAX_EXAMPLES,
  },
  {
    key: "json",
    flag: "json",
    env: "PAYSTREAM_VERIFY_JSON",
    description: "print the results as JSON instead of a table",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
] as const satisfies OptionTable;

/** The machine-readable result printed by --json. */
export function toJson(run: VerifyRun): string {
  const { report } = run;
  return JSON.stringify(
    {
      clean: report.clean,
      exitCode: report.exitCode,
      verdict: report.verdict,
      durationMs: run.durationMs,
      summary: report.summary,
      checks: report.rows,
      examples: report.examples,
      topics: run.topics,
    },
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    2,
  );
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("verify", SUMMARY, verifyOptions)}\n`);
    return 0;
  }
  try {
    const { values: v, rest } = loadConfig(verifyOptions, { argv });
    if (rest.length > 0) {
      process.stderr.write(`paystream verify: unexpected argument ${JSON.stringify(rest[0])} (see --help)\n`);
      return 2;
    }
    const json = v.json as boolean;
    const result = await verify({
      brokers: v["kafka.brokers"] as string[],
      topic: v.topic as string,
      labelsTopic: v.labelsTopic as string,
      dlqTopic: v.dlqTopic as string,
      alertsTopic: v.alertsTopic as string,
      redisUrl: v["redis.url"] as string,
      warehouseUrl: v.warehouse as string,
      timeoutMs: v.timeout as number,
      rules: v.rules as string[],
      group: v.group as string,
      maxMessageBytes: v.maxMessageBytes as number,
      maxExamples: v.examples as number,
      onProgress: (line) => process.stderr.write(`verify: ${line}\n`),
    });
    process.stdout.write(`${json ? toJson(result) : renderTable(result.report)}\n`);
    return result.report.exitCode;
  } catch (err) {
    // No verdict could be reached: say why, exit 2 (distinct from 1 = "a loss was found").
    const msg = isPaystreamError(err)
      ? `${err.message} [${err.code}]`
      : ((err as Error).stack ?? String(err));
    process.stderr.write(`paystream verify: ${msg}\n`);
    return 2;
  }
}

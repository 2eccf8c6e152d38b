/** `paystream verify` options: one table for parsing, types, env vars and `--help`. */
import { type ConfigValues, defineOptions, p, withOverrides } from "../../lib/config.ts";
import {
  alertsTopic,
  dlqTopic,
  groupId,
  inputTopic,
  kafkaBrokers,
  labelsTopic,
  maxMessageBytes,
  redisUrl,
  warehouseUrl,
} from "../../lib/options.ts";
import { DEFAULT_CHECKED_RULES, DEFAULT_MAX_EXAMPLES } from "../../verify/reconcile.ts";

/** Comma-separated rule ids, deduplicated. */
export function parseRuleList(raw: unknown): string[] {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("must list at least one rule id");
  for (const r of list) if (!/^[A-Za-z0-9_.-]+$/.test(r)) throw new Error(`"${r}" is not a rule id`);
  return [...new Set(list)];
}

export const verifyOptions = defineOptions([
  kafkaBrokers,
  withOverrides(inputTopic, { description: "input topic of the run: the record of what was produced" }),
  withOverrides(labelsTopic, { description: "ground-truth labels written by the collector" }),
  withOverrides(dlqTopic, { description: "dead-letter topic the processor writes invalid records to" }),
  withOverrides(alertsTopic, { description: "alerts topic the processor writes to" }),
  withOverrides(redisUrl, { description: "Redis holding the fraud:alert:<id> hashes" }),
  withOverrides(warehouseUrl, {
    description: "warehouse: duckdb:<path> | postgres://... | bigquery://<project>/<dataset> (read only)",
  }),
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
    parse: Object.assign(parseRuleList, { format: (v: string[]) => v.join(",") }),
    default: [...DEFAULT_CHECKED_RULES],
  },
  withOverrides(groupId, {
    description: "processor consumer group whose lag is reported (a warning, never a failure)",
  }),
  withOverrides(maxMessageBytes, {
    description: "as the processor's: larger records are expected in the DLQ as oversized",
  }),
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
]);

/** `loadConfig(verifyOptions).values`: `v.timeout` is a number of ms, `v.rules` a string[], ... */
export type VerifyValues = ConfigValues<typeof verifyOptions>;

/**
 * `paystream verify`: reconciles one run's ground truth (its input topic and labels) against
 * what the pipeline wrote (warehouse, DLQ, alerts topic, Redis), prints a table and exits
 *   0  clean
 *   1  a missing or duplicate row, a missing DLQ entry, a missing or doubled alert
 *   2  usage or config error, or the verification could not complete (service unreachable,
 *      input topic missing, topics not read to their end within --timeout)
 * See docs/verify.md.
 */
import { type VerifyRun, verify } from "../app/verify.ts";
import { isPaystreamError } from "../core/errors.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { renderTable } from "../verify/reconcile.ts";
import { verifyOptions } from "./options/verify.ts";

const SUMMARY =
  "Reconciles a run: every valid transaction on the input topic must be in the warehouse exactly once, " +
  "every invalid one in the DLQ, and every labelled fraud incident must have exactly one alert (alerts topic, " +
  "Redis, warehouse). Prints a table; exit 0 clean, 1 loss/duplicate/alert problem, 2 usage or could not verify.";

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
    // A usage error (unknown flag, stray argument, bad value) is a ConfigError: exit 2 below.
    const { values: v } = loadConfig(verifyOptions, { argv });
    const result = await verify({
      brokers: v["kafka.brokers"],
      topic: v.topic,
      labelsTopic: v.labelsTopic,
      dlqTopic: v.dlqTopic,
      alertsTopic: v.alertsTopic,
      redisUrl: v["redis.url"],
      warehouseUrl: v.warehouse,
      timeoutMs: v.timeout,
      rules: v.rules,
      group: v.group,
      maxMessageBytes: v.maxMessageBytes,
      maxExamples: v.examples,
      onProgress: (line) => process.stderr.write(`verify: ${line}\n`),
    });
    process.stdout.write(`${v.json ? toJson(result) : renderTable(result.report)}\n`);
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

/**
 * `paystream rules backtest`: what a candidate rule set would have raised on the recorded
 * traffic of the last --last (Kafka retention of the transactions topic), scored against the
 * collector's labels of the same span, next to the current published version. Exit codes:
 *   0  report printed
 *   1  the candidate is invalid (each error printed), or no such version
 *   2  usage or config error, Kafka unreachable
 */
import { type BacktestReport, kafkaTopicReader, publishedVersions, runBacktest } from "../app/backtest.ts";
import { MAX_BACKTEST_RECORDS } from "../core/backtest.ts";
import { ErrorCodes, isPaystreamError } from "../core/errors.ts";
import { parseRules, type RuleSet } from "../core/rules.ts";
import { defineOptions, loadConfig, p, pickOptions, readDocument, renderHelp } from "../lib/config.ts";
import { inputTopic, kafkaBrokers, labelsTopic, rulesTopic } from "../lib/options.ts";
import { processorOptions } from "../processor/config.ts";

const SUMMARY =
  "Replays the transactions appended in the last --last (default 30m) through a candidate rule set " +
  "(--file, --version, or the current version) with the processor's own decode, dedup, window and rule " +
  "code, off the live path, and prints per rule the alerts, accounts affected, and recall/precision " +
  "against the collector's labels when the span has any, next to the current version. Exit 0 report, " +
  "1 invalid candidate or unknown version, 2 usage or Kafka error.";

export const backtestOptions = defineOptions([
  kafkaBrokers,
  rulesTopic,
  inputTopic,
  labelsTopic,
  ...pickOptions(processorOptions, ["window.ms"]),
  {
    key: "file",
    flag: "file",
    env: "PAYSTREAM_BACKTEST_FILE",
    description: "candidate rules file (YAML or JSON), validated first; default: the current version",
    parse: p.string({ min: 1 }),
    optional: true,
  },
  {
    key: "version",
    flag: "version",
    env: "PAYSTREAM_BACKTEST_VERSION",
    description: "candidate: a published version number instead of a file",
    parse: p.int(1, Number.MAX_SAFE_INTEGER),
    optional: true,
  },
  {
    key: "last",
    flag: "last",
    env: "PAYSTREAM_BACKTEST_LAST",
    description: "replay the records appended within this long before now (1m to 24h)",
    parse: p.duration(60_000, 24 * 3_600_000),
    default: 30 * 60_000,
  },
  {
    key: "maxRecords",
    flag: "max-records",
    env: "PAYSTREAM_BACKTEST_MAX_RECORDS",
    description: "replay at most this many records (the rest are counted, the report says truncated)",
    parse: p.int(1, MAX_BACKTEST_RECORDS),
    default: 1_000_000,
  },
  {
    key: "timeout",
    flag: "timeout",
    env: "PAYSTREAM_BACKTEST_TIMEOUT",
    description: "give up when a topic is not read to its end within this long",
    parse: p.duration(1000),
    default: 120_000,
  },
  {
    key: "json",
    flag: "json",
    env: "PAYSTREAM_BACKTEST_JSON",
    description: "print the report as JSON (the dashboard API's BacktestReport)",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
]);

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function pct(v: number | null): string {
  return v === null ? "-" : `${(v * 100).toFixed(1)}%`;
}

/** The per-rule table, candidate next to current. */
export function renderReport(r: BacktestReport): string {
  const lines: string[] = [];
  const s = r.span;
  lines.push(
    `span ${s.from} .. ${s.to}: ${s.records} records (${s.invalid} invalid, ${s.duplicates} resends, ${s.late} late)` +
      `${s.truncated ? " TRUNCATED: raise --max-records or shorten --last" : ""}`,
  );
  lines.push(
    r.labelled ? "labelled: recall/precision against the collector's labels" : "no labels in the span",
  );
  const name = (v: number | null) => (v === null ? "candidate (file)" : `candidate (v${v})`);
  const header = ["rule", "alerts", "accounts", "recall", "precision"];
  const cur = r.current;
  const head = cur ? [...header, "| cur alerts", "accounts", "recall", "precision"] : header;
  const rows: string[][] = [head];
  const ids = new Set([
    ...r.candidate.rules.map((x) => x.rule_id),
    ...(cur?.rules.map((x) => x.rule_id) ?? []),
  ]);
  for (const id of ids) {
    const c = r.candidate.rules.find((x) => x.rule_id === id);
    const k = cur?.rules.find((x) => x.rule_id === id);
    const cells = (x: typeof c) =>
      x ? [String(x.alerts), String(x.accounts), pct(x.recall), pct(x.precision)] : ["-", "-", "-", "-"];
    const label = `${id}${(c ?? k)?.shadow ? " (shadow)" : ""}`;
    rows.push(
      cur ? [label, ...cells(c), ...cells(k).map((v, i) => (i === 0 ? `| ${v}` : v))] : [label, ...cells(c)],
    );
  }
  const total = (x: NonNullable<typeof cur>) => [
    String(x.total_alerts),
    String(x.accounts),
    pct(x.recall),
    pct(x.precision),
  ];
  const t = total(r.candidate);
  rows.push(cur ? ["total", ...t, ...total(cur).map((v, i) => (i === 0 ? `| ${v}` : v))] : ["total", ...t]);
  const widths = head.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length)));
  lines.push(`${name(r.candidate.version)}${cur ? ` vs current (v${cur.version})` : ""}`);
  for (const row of rows)
    lines.push(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  return lines.join("\n");
}

function parseOrErrors(doc: unknown, maxWindowMs: number): RuleSet | string[] {
  try {
    return parseRules(doc, { maxWindowMs });
  } catch (err) {
    return (err as Error).message.split("\n").filter((l) => l.trim() !== "");
  }
}

export async function rulesBacktest(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(renderHelp("rules backtest", SUMMARY, backtestOptions));
    return 0;
  }
  try {
    const { values: v } = loadConfig(backtestOptions, { argv });
    if (v.file !== undefined && v.version !== undefined) {
      process.stderr.write("paystream rules backtest: give --file or --version, not both\n");
      return 2;
    }
    const maxWindowMs = v["window.ms"];
    // The candidate file is checked before anything is read from Kafka.
    let fileSet: RuleSet | undefined;
    if (v.file !== undefined) {
      const parsed = parseOrErrors(readDocument(v.file, "rules file", ErrorCodes.RULES_INVALID), maxWindowMs);
      if (Array.isArray(parsed)) {
        for (const e of parsed) process.stderr.write(`${e}\n`);
        return 1;
      }
      fileSet = parsed;
    }
    const brokers = v["kafka.brokers"];
    const history = await publishedVersions(brokers, v.rulesTopic);
    const latest = history.at(-1);
    const current = latest
      ? { ruleSet: parseRules(latest.document, { maxWindowMs }), version: latest.version }
      : undefined;
    let candidate = fileSet ? { ruleSet: fileSet, version: null } : current;
    if (v.version !== undefined) {
      const found = history.find((h) => h.version === v.version);
      if (!found) {
        process.stderr.write(`paystream rules backtest: no rules version ${v.version}\n`);
        return 1;
      }
      candidate = { ruleSet: parseRules(found.document, { maxWindowMs }), version: found.version };
    }
    if (!candidate) {
      process.stderr.write("paystream rules backtest: no version is published yet; give --file\n");
      return 1;
    }
    const report = await runBacktest({
      reader: kafkaTopicReader(brokers),
      topics: { transactions: v.topic, labels: v.labelsTopic },
      candidate,
      current: current?.version === candidate.version ? undefined : current,
      lastMs: v.last,
      maxRecords: v.maxRecords,
      window: { windowMs: maxWindowMs },
      timeoutMs: v.timeout,
    });
    out(v.json ? JSON.stringify(report, null, 2) : renderReport(report));
    return 0;
  } catch (err) {
    const msg = isPaystreamError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
    process.stderr.write(`paystream rules backtest: ${msg}\n`);
    return 2;
  }
}

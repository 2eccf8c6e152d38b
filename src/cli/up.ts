/**
 * `paystream up` (what `npm start` runs): the whole pipeline in one process. With no
 * addresses it runs on embedded stand-ins — an in-process partitioned log for Kafka, an
 * in-process alert and dedup store for Redis — and DuckDB in ./data. Given --kafka,
 * --redis or --warehouse it uses the real services for those parts; src/app/up.ts builds
 * the graph, this file parses the options, prints and handles signals.
 */
import { writeFileSync } from "node:fs";
import { startUp, type UpStatus } from "../app/up.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { redactUrl } from "../lib/url.ts";
import { toUpConfig, upOptions } from "./options/up.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Runs collector, log, processor, alert store and warehouse in one process. Embedded by default (no Kafka, no Redis); " +
  "--kafka/--redis/--warehouse switch each part to a real service.";

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("up", SUMMARY, upOptions)}\n`);
    return 0;
  }
  const c = toUpConfig(loadConfig(upOptions, { argv }).values);
  const log = createLogger("up", c.logLevel);
  const up = await startUp(c, log);

  const mode = c.embedded ? "embedded (no Kafka, no Redis needed)" : "real services";
  process.stdout.write(
    [
      `paystream is running — ${mode}, ready in ${up.readyMs} ms`,
      `  dashboard         ${up.url}/`,
      `  status & metrics  ${up.url}/status   ${up.url}/metrics`,
      `  collector API     ${up.collectorUrl}/config   (change the rate: curl -X POST ${up.collectorUrl}/config/rate -H 'content-type: application/json' -d '{"messages_per_second": 5000}')`,
      `  warehouse         ${up.labels.warehouse} ${redactUrl(c.processor.warehouse)}`,
      `  log / alerts      ${up.labels.log} / ${up.labels.alerts}`,
      "  Ctrl-C to stop",
      "",
    ].join("\n"),
  );

  // ---- status line
  let prevProcessed = 0;
  let prevAt = Date.now();
  const statusLine = async () => {
    const s = await up.status();
    const p99 = await up.latencyP99();
    const ms = (v: number | undefined) => (v === undefined ? "-" : `${(v * 1000).toFixed(1)} ms`);
    const now = Date.now();
    const rate = ((s.processor.processed - prevProcessed) * 1000) / Math.max(1, now - prevAt);
    prevProcessed = s.processor.processed;
    prevAt = now;
    const rules = Object.entries(s.processor.alerts_by_rule)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const time = new Date().toISOString().slice(11, 19);
    process.stdout.write(
      `[${time}] in ${fmt(s.collector.actual_rate)}/s (target ${fmt(s.collector.target_rate)}) | processed ${fmt(s.processor.processed)} (${fmt(Math.round(rate))}/s) | lag ${fmt(s.processor.lag_records)} | alerts ${fmt(s.processor.alerts)}${rules ? ` (${rules})` : ""} | dups ${fmt(s.processor.duplicates)} | DLQ ${fmt(s.processor.dlq)} | p99 alert ${ms(p99.alert)}, row ${ms(p99.row)}\n`,
    );
  };
  const statusTimer =
    c.statusEveryMs > 0 ? setInterval(() => void statusLine().catch(() => {}), c.statusEveryMs) : undefined;

  let resolveStop!: () => void;
  const stopRequested = new Promise<void>((r) => {
    resolveStop = r;
  });
  onShutdownSignals(async () => resolveStop(), log);
  let failure: string | undefined;
  void up.failed.then((why) => {
    failure = why;
    log.error({ why }, "paystream up is stopping: part of the pipeline stopped");
    resolveStop();
  });
  if (c.durationMs > 0) setTimeout(resolveStop, c.durationMs).unref();
  await stopRequested;

  if (statusTimer) clearInterval(statusTimer);
  const s: UpStatus = await up.stop();
  process.stdout.write(
    [
      "",
      `paystream stopped after ${s.uptime_s} s`,
      `  produced   ${fmt(s.collector.produced)}  (${Object.entries(s.collector.by_kind)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(", ")})`,
      `  processed  ${fmt(s.processor.processed)}: ok ${fmt(s.processor.ok)}, duplicates dropped ${fmt(s.processor.duplicates)}, DLQ ${fmt(s.processor.dlq)}, late ${fmt(s.processor.late)}`,
      `  alerts     ${fmt(s.processor.alerts)}  ${JSON.stringify(s.processor.alerts_by_rule)}`,
      `  warehouse  ${redactUrl(c.processor.warehouse)}`,
      "",
    ].join("\n"),
  );
  if (c.summaryFile) writeFileSync(c.summaryFile, JSON.stringify(s, null, 2));
  if (failure !== undefined) {
    process.stderr.write(`paystream up: ${failure}\n`);
    return 1;
  }
  return 0;
}

/**
 * `paystream dashboard`: the live UI and its API on their own, for Kubernetes. Reads the
 * collector's control API, each processor's /status and /metrics, and the alerts and cases
 * the processors write to Redis; forwards rate changes to the collector; publishes rule
 * versions to the rules log and replays recorded traffic for backtests, on Kafka.
 */
import { runDashboard } from "../app/dashboard.ts";
import { dashboardOptions, toDashboardConfig } from "../dashboard/config.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Serves the live dashboard (React UI, JSON API, Server-Sent Events): throughput, collector rate control, lag, " +
  "outcomes, alerts by rule, the latest alerts (masked cards), p99 latency and health, from the collector's API, " +
  "the processors' /status and /metrics, and the alerts in Redis; the rules page (versions on the Kafka rules log, " +
  "validation, publish, rollback, diff, backtests on recorded traffic) and the cases page (cases in Redis, status changes).";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("dashboard", SUMMARY, dashboardOptions)}\n`);
    return 0;
  }
  const { values } = loadConfig(dashboardOptions, { argv });
  const cfg = toDashboardConfig(values);
  const log = createLogger("dashboard", values["log.level"]);
  const dashboard = await runDashboard(cfg, log);
  process.stdout.write(
    [
      `paystream dashboard on ${dashboard.url}/`,
      `  collector   ${cfg.collectorUrl ?? "none (--collector-url unset)"}`,
      `  processors  ${cfg.processorService ? `every address of ${cfg.processorService.host}:${cfg.processorService.port} (DNS)` : cfg.processorUrls.join(", ")}`,
      `  alerts      ${dashboard.alertsLabel} (cases too)`,
      `  rules       ${cfg.kafka.rulesTopic} on kafka ${cfg.kafka.brokers.join(",")}`,
      `  backtests   replay ${cfg.kafka.topic} (labels: ${cfg.kafka.labelsTopic})`,
      "",
    ].join("\n"),
  );

  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStop = r;
  });
  onShutdownSignals(async () => resolveStop(), log);
  await stopped;
  await dashboard.close();
  return 0;
}

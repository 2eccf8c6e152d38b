import { runCollector } from "../app/collector.ts";
import { collectorOptions, toCollectorConfig } from "../collector/config.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Produces realistic payment traffic to payments.transactions at a target rate (POST /config/rate to change it live), " +
  "with labelled fraud scenarios, duplicates, late, out-of-order and malformed events; ground truth on payments.labels.";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("collector", SUMMARY, collectorOptions)}\n`);
    return 0;
  }
  const { values } = loadConfig(collectorOptions, { argv });
  const cfg = toCollectorConfig(values);
  const log = createLogger("collector", values["log.level"]);
  const { running, close } = await runCollector(cfg, log);
  onShutdownSignals(async () => {
    await running.stop();
  }, log);
  await running.collector.finished;
  const totals = await running.stop();
  await close();
  process.stdout.write(
    `${JSON.stringify({ produced: totals.produced, unsent: totals.unsent, byKind: totals.byKind, labels: totals.labels })}\n`,
  );
  // Records generated but never taken by the broker: the run's ground truth is short of them.
  return totals.unsent > 0 ? 1 : 0;
}

import { runProcessor } from "../app/processor.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { processorOptions, toProcessorConfig } from "../processor/config.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Consumes payments.transactions in a consumer group: validates (DLQ), dedups, runs the fraud rules per event, " +
  "masks PII, writes alerts to Redis + payments.alerts and masked rows to the warehouse; commits only after writes are durable.";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("processor", SUMMARY, processorOptions)}\n`);
    return 0;
  }
  const { values } = loadConfig(processorOptions, { argv });
  const cfg = toProcessorConfig(values);
  const log = createLogger("processor", values["log.level"]);
  const running = await runProcessor(cfg, log);
  onShutdownSignals(() => running.stop(), log);
  if (cfg.durationMs > 0) setTimeout(() => void running.stop(), cfg.durationMs).unref();
  return running.done;
}

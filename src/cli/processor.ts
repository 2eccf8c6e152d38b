import { loadConfig, renderHelp } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { processorOptions, toProcessorConfig } from "../processor/config.ts";
import { connectRealAdapters, startProcessor } from "../processor/service.ts";
import { onShutdownSignals } from "./signals.ts";

const SUMMARY =
  "Consumes payments.transactions in a consumer group: validates (DLQ), dedups, runs the fraud rules per event, " +
  "masks PII, writes alerts to Redis + payments.alerts and masked rows to the warehouse; commits only after writes are durable.";

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${renderHelp("processor", SUMMARY, processorOptions)}\n`);
    return 0;
  }
  const cfg = toProcessorConfig(loadConfig(processorOptions, { argv }).values);
  const log = createLogger("processor");
  const adapters = await connectRealAdapters(cfg, log);
  const running = await startProcessor(cfg, log, adapters);
  onShutdownSignals(() => running.stop(), log);
  if (cfg.durationMs > 0) setTimeout(() => void running.stop(), cfg.durationMs).unref();
  return running.done;
}

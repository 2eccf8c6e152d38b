import type { Logger } from "../lib/log.ts";

/**
 * SIGTERM/SIGINT start a graceful stop once; a second signal exits at once (the operator
 * insists, and Kubernetes sends SIGKILL after the grace period anyway).
 */
export function onShutdownSignals(stop: () => Promise<void>, log: Logger): void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(130);
    }
    signalled = true;
    log.info({ signal }, "shutdown requested");
    void stop();
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

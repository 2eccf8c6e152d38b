/** The command table. A command is listed here only once it does what its summary says. */
type Register = (
  name: string,
  command: { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> },
) => void;

export function registerBuiltins(register: Register): void {
  register("up", {
    summary:
      "run the whole pipeline in one process (embedded by default; --kafka/--redis/--warehouse for real services)",
    load: () => import("./up.ts"),
  });
  register("collector", {
    summary: "produce payment traffic to Kafka at a rate changeable live over HTTP",
    load: () => import("./collector.ts"),
  });
  register("processor", {
    summary: "run a processor replica (consumer group member)",
    load: () => import("./processor.ts"),
  });
  register("verify", {
    summary: "reconcile a run: input topic vs warehouse, DLQ and alerts; exit 1 on any loss or duplicate",
    load: () => import("./verify.ts"),
  });
  register("dashboard", {
    summary: "serve the live dashboard (React UI + API) from the collector, processors and Redis",
    load: () => import("./dashboard.ts"),
  });
  register("dlq", {
    summary: "list and show dead-lettered records (masked), redrive fixed ones to the input topic",
    load: () => import("./dlq.ts"),
  });
  register("rules", {
    summary: "rule set versions on the rules log: list, show, validate, publish, rollback, diff, backtest",
    load: () => import("./rules.ts"),
  });
  register("topics", {
    summary: "create the Kafka topics with their partition counts (idempotent)",
    load: () => import("./topics.ts"),
  });
}

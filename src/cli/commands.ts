/** The command table. A command is listed here only once it does what its summary says. */
type Register = (
  name: string,
  command: { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> },
) => void;

export function registerBuiltins(register: Register): void {
  register("topics", {
    summary: "create the Kafka topics with their partition counts (idempotent)",
    load: () => import("./topics.ts"),
  });
}

/**
 * `paystream <command>`: one binary, one image. Each command lives in its own module and is
 * imported only when chosen, so `paystream collector` never loads DuckDB.
 */
import { join } from "node:path";
import { isPaystreamError } from "../core/errors.ts";
import { missingDependency } from "./missing-deps.ts";

interface Command {
  summary: string;
  load: () => Promise<{ run: (argv: string[]) => Promise<number> }>;
}

const commands: Record<string, Command> = {};

export function registerCommand(name: string, command: Command): void {
  commands[name] = command;
}

function usage(): string {
  const names = Object.keys(commands);
  const width = Math.max(12, ...names.map((n) => n.length + 2));
  return [
    "Usage: paystream <command> [flags]",
    "",
    "Real-time payment pipeline: collector → Kafka → processor (fraud rules, PII masking, dedup) → warehouse + Redis.",
    "",
    "Commands:",
    ...names.map((n) => `  ${n.padEnd(width)}${commands[n]!.summary}`),
    "",
    "Run `paystream <command> --help` for its flags (each also settable by env var or --config file).",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`paystream: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}

let code: number;
try {
  const { registerBuiltins } = await import("./commands.ts");
  registerBuiltins(registerCommand);
  code = await main(process.argv.slice(2));
} catch (err) {
  const missing = missingDependency(err);
  if (missing !== undefined) {
    // Packages are imported with the command (and some only when first used), so a
    // half-installed node_modules shows up here rather than in bin/paystream's check.
    const root = join(import.meta.dirname, "..", "..");
    process.stderr.write(
      `paystream: dependencies are incomplete (cannot load ${missing}): run \`npm ci\` in ${root}\n`,
    );
    code = 1;
  } else if (isPaystreamError(err)) {
    process.stderr.write(`paystream: ${err.message} [${err.code}]\n`);
    code = 1;
  } else {
    process.stderr.write(`paystream: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    code = 70;
  }
}
// Exit explicitly: a failed start may leave clients (consumer loops, timers) that would keep
// the process alive. Wait for stdout/stderr to flush first so piped output is not cut.
process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));

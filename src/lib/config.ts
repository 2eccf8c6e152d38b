/**
 * Configuration: one declarative table of options per command, read once at start-up from
 * (highest wins) command-line flags, environment variables, an optional JSON/YAML file, and
 * defaults. Every value is parsed and validated before anything starts; the first bad value
 * stops start-up with a ConfigError naming the field and where the value came from.
 *
 * The same table renders `--help`, so the help text can never disagree with the parser.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ConfigError, type ErrorCode, ErrorCodes, PaystreamError } from "../core/errors.ts";

export type Parser<T> = (raw: unknown) => T;

export interface OptionSpec<T = unknown> {
  /** Dotted key, also the path in a config file ("kafka.brokers" → {kafka: {brokers}}). */
  key: string;
  /** Long flag without dashes ("kafka"). */
  flag: string;
  env: string;
  description: string;
  parse: Parser<T>;
  /** Absent means the option is required, unless `optional` is set. */
  default?: T;
  optional?: boolean;
  /** Secrets are never defaulted, echoed in errors or printed. */
  secret?: boolean;
  /** Boolean flags take no value on the command line. */
  boolean?: boolean;
}

export type OptionTable = readonly OptionSpec<unknown>[];

/** A typed view over a table: `Values<typeof table>` is not expressible without helpers, so callers cast. */
export type ConfigValues = Record<string, unknown>;

export interface LoadOptions {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON or YAML config file; also read from --config / PAYSTREAM_CONFIG. */
  file?: string;
}

// ----------------------------------------------------------------------------- parsers

function fail(message: string): never {
  throw new Error(message);
}

export const p = {
  string:
    (opts: { min?: number; pattern?: RegExp; hint?: string } = {}): Parser<string> =>
    (raw) => {
      if (typeof raw !== "string" && typeof raw !== "number") fail("must be a string");
      const s = String(raw);
      if (s.length < (opts.min ?? 0)) fail(`must be at least ${opts.min} characters`);
      if (opts.pattern && !opts.pattern.test(s)) fail(`must match ${opts.hint ?? opts.pattern.source}`);
      return s;
    },
  int:
    (min: number, max: number): Parser<number> =>
    (raw) => {
      const n =
        typeof raw === "number"
          ? raw
          : typeof raw === "string" && /^-?\d+$/.test(raw.trim())
            ? Number(raw)
            : NaN;
      if (!Number.isSafeInteger(n)) fail(`must be an integer, got ${JSON.stringify(raw)}`);
      if (n < min || n > max) fail(`must be between ${min} and ${max}, got ${n}`);
      return n;
    },
  number:
    (min: number, max: number): Parser<number> =>
    (raw) => {
      const n =
        typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
      if (!Number.isFinite(n)) fail(`must be a number, got ${JSON.stringify(raw)}`);
      if (n < min || n > max) fail(`must be between ${min} and ${max}, got ${n}`);
      return n;
    },
  bool: (): Parser<boolean> => (raw) => {
    if (typeof raw === "boolean") return raw;
    const s = String(raw).toLowerCase();
    if (["1", "true", "yes", "on"].includes(s)) return true;
    if (["0", "false", "no", "off"].includes(s)) return false;
    return fail(`must be true or false, got ${JSON.stringify(raw)}`);
  },
  oneOf:
    <T extends string>(...values: T[]): Parser<T> =>
    (raw) => {
      if (typeof raw !== "string" || !values.includes(raw as T)) {
        fail(`must be one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
      }
      return raw as T;
    },
  /** Durations: "250ms", "10s", "5m", "1h", or a bare number of milliseconds. */
  duration:
    (min = 0, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
    (raw) => {
      const ms = parseDuration(raw);
      if (ms === undefined) fail(`must be a duration like 500ms, 10s, 5m, got ${JSON.stringify(raw)}`);
      if (ms < min || ms > max) fail(`must be between ${min}ms and ${max}ms`);
      return ms;
    },
  /** host:port list, comma separated. */
  brokers: (): Parser<string[]> => (raw) => {
    const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(",");
    const out = list.map((s) => s.trim()).filter(Boolean);
    if (out.length === 0) fail("must list at least one host:port");
    for (const b of out) if (!/^[^\s:/]+:\d{1,5}$/.test(b)) fail(`"${b}" is not host:port`);
    return out;
  },
  url:
    (...protocols: string[]): Parser<string> =>
    (raw) => {
      let u: URL;
      try {
        u = new URL(String(raw));
      } catch {
        return fail("must be a URL");
      }
      if (protocols.length && !protocols.includes(u.protocol.replace(/:$/, ""))) {
        fail(`must use ${protocols.map((x) => `${x}://`).join(" or ")}`);
      }
      return String(raw);
    },
};

export function parseDuration(raw: unknown): number | undefined {
  if (typeof raw === "number") return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(raw);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? "ms";
  const factor = unit === "h" ? 3_600_000 : unit === "m" ? 60_000 : unit === "s" ? 1000 : 1;
  return Math.round(n * factor);
}

// ----------------------------------------------------------------------------- loading

/** Splits argv into --flag values (last wins) and positionals. Unknown flags are errors. */
export function parseFlags(
  argv: readonly string[],
  table: OptionTable,
): { flags: Map<string, unknown>; rest: string[] } {
  const byFlag = new Map(table.map((o) => [o.flag, o]));
  const flags = new Map<string, unknown>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (name === "config") {
      flags.set("config", eq === -1 ? argv[++i] : arg.slice(eq + 1));
      continue;
    }
    const spec = byFlag.get(name) ?? (name.startsWith("no-") ? byFlag.get(name.slice(3)) : undefined);
    if (!spec) throw new ConfigError(`--${name}`, `unknown flag (see --help)`);
    if (spec.boolean) {
      flags.set(spec.flag, eq === -1 ? !name.startsWith("no-") : arg.slice(eq + 1));
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`--${name}`, "needs a value");
    flags.set(spec.flag, value);
  }
  return { flags, rest };
}

/**
 * Reads a YAML or JSON document (JSON when the name ends in .json; YAML, a superset, otherwise).
 * `what` names the file in errors ("config file", "rules file").
 */
export function readDocument(path: string, what: string, code: ErrorCode): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new PaystreamError(code, `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PaystreamError(code, `${what} ${path} is not valid YAML/JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  const doc = readDocument(path, "config file", ErrorCodes.CONFIG_FILE);
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new PaystreamError(ErrorCodes.CONFIG_FILE, `config file ${path} must hold an object`);
  }
  return doc as Record<string, unknown>;
}

function lookup(doc: Record<string, unknown>, key: string): unknown {
  let cur: unknown = doc;
  for (const part of key.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/**
 * Loads and validates every option of a table. Returns the values keyed by `key` and the
 * positional arguments left over.
 */
export function loadConfig(
  table: OptionTable,
  opts: LoadOptions = {},
): { values: ConfigValues; rest: string[] } {
  const env = opts.env ?? process.env;
  const { flags, rest } = parseFlags(opts.argv ?? [], table);
  const filePath = (flags.get("config") as string | undefined) ?? opts.file ?? env.PAYSTREAM_CONFIG;
  const file = filePath ? readConfigFile(filePath) : {};
  const values: ConfigValues = {};
  for (const spec of table) {
    let raw: unknown;
    let source: string;
    if (flags.has(spec.flag)) {
      raw = flags.get(spec.flag);
      source = `--${spec.flag}`;
    } else if (env[spec.env] !== undefined && env[spec.env] !== "") {
      raw = env[spec.env];
      source = `env ${spec.env}`;
    } else if (lookup(file, spec.key) !== undefined) {
      raw = lookup(file, spec.key);
      source = `config file ${filePath}`;
    } else if (spec.default !== undefined) {
      values[spec.key] = spec.default;
      continue;
    } else if (spec.optional) {
      values[spec.key] = undefined;
      continue;
    } else {
      throw new ConfigError(spec.key, `is required (set --${spec.flag} or ${spec.env})`);
    }
    try {
      values[spec.key] = spec.parse(raw);
    } catch (err) {
      // Secrets: say which field is wrong, never echo the value.
      const msg = spec.secret ? "is not valid" : (err as Error).message;
      throw new ConfigError(spec.key, `${msg} (from ${source})`, { details: { source } });
    }
  }
  return { values, rest };
}

/** Renders `--help` from the same table the parser uses. */
export function renderHelp(command: string, summary: string, table: OptionTable): string {
  const lines = [`Usage: paystream ${command} [flags]`, "", summary, "", "Flags (flag / env var / default):"];
  const width = Math.max(...table.map((o) => o.flag.length + (o.boolean ? 0 : 8))) + 4;
  for (const o of table) {
    const flag = `--${o.flag}${o.boolean ? "" : " <value>"}`;
    const def = o.secret
      ? "secret, no default"
      : o.default !== undefined
        ? `default ${Array.isArray(o.default) ? o.default.join(",") : String(o.default)}`
        : o.optional
          ? "optional"
          : "required";
    lines.push(`  ${flag.padEnd(width)}${o.description}`);
    lines.push(`  ${"".padEnd(width)}env ${o.env}; ${def}`);
  }
  lines.push(
    `  ${"--config <path>".padEnd(width)}JSON or YAML file with the same keys (env PAYSTREAM_CONFIG)`,
  );
  lines.push(`  ${"--help".padEnd(width)}show this help`);
  return lines.join("\n");
}

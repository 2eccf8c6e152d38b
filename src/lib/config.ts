/**
 * Configuration: one declarative table of options per command, read once at start-up from
 * (highest wins) command-line flags, environment variables, an optional JSON/YAML file, and
 * defaults. Every value is parsed and validated before anything starts; the first bad value
 * stops start-up with a ConfigError naming the field and where the value came from.
 *
 * The table is also the type: `loadConfig(table)` returns values keyed by each option's
 * `key`, typed by what its parser returns (`| undefined` only for optional options without a
 * default), so callers never cast. Tables are built with `defineOptions`, which keeps the
 * literal keys and checks each default against its parser's type.
 *
 * The same table renders `--help`, so the help text can never disagree with the parser.
 *
 * Over 500 lines: the parsers, the sources (flags, env, file) and the --help renderer must stay
 * in step, so they live in one file.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { ConfigError, type ErrorCode, ErrorCodes, PaystreamError } from "../core/errors.ts";

export interface Parser<T> {
  (raw: unknown): T;
  /** How a value is shown in `--help` (durations as "60s"); String() otherwise. */
  format?(value: T): string;
  /** Marks duration parsers, so `--help` explains the units once. */
  readonly duration?: true;
}

export interface OptionSpec<T = unknown, K extends string = string> {
  /** Dotted key, also the path in a config file ("kafka.brokers" → {kafka: {brokers}}). */
  readonly key: K;
  /** Long flag without dashes ("kafka"). */
  readonly flag: string;
  readonly env: string;
  readonly description: string;
  readonly parse: Parser<T>;
  /** Absent means the option is required, unless `optional` is set. */
  readonly default?: T;
  /** Shown in `--help` instead of the default, for defaults computed from other options. */
  readonly defaultHelp?: string;
  readonly optional?: boolean;
  /** Secrets are never defaulted, echoed in errors or printed. */
  readonly secret?: boolean;
  /** Boolean flags take no value on the command line (`--demo`, `--no-demo`, `--demo=false`). */
  readonly boolean?: boolean;
}

export type OptionTable = readonly OptionSpec[];

/** What an option's parser returns. */
export type ParsedOf<S extends OptionSpec> = ReturnType<S["parse"]>;

type HasDefault<S> = S extends { readonly default: infer D } ? (undefined extends D ? false : true) : false;

/** The loaded value of one option: undefined only when it is optional and has no default. */
export type ValueOf<S extends OptionSpec> =
  HasDefault<S> extends true
    ? ParsedOf<S>
    : S extends { readonly optional: true }
      ? ParsedOf<S> | undefined
      : ParsedOf<S>;

/**
 * The values of a table, keyed by option key: `ConfigValues<typeof processorOptions>` has
 * `"kafka.brokers": string[]`, `"pii.key": string | undefined`, ... For an untyped
 * `OptionTable` it degrades to `Record<string, unknown>`.
 */
export type ConfigValues<T extends OptionTable = OptionTable> = {
  [S in T[number] as S["key"]]: ValueOf<S>;
};

/**
 * A spec whose default is not a value its parser could return becomes an object with a
 * required `error` property, so the mistake is reported at the table entry in these words.
 * (Defaults may be read-only: `const` type parameters make array literals readonly tuples.)
 */
type CheckedSpec<S> = S extends OptionSpec
  ? S extends { readonly default: infer D }
    ? D extends Readonly<ParsedOf<S>> | undefined
      ? S
      : { error: "the default is not a value of the option's parser"; key: S["key"] }
    : S
  : S;

type CheckedTable<T extends OptionTable> = { readonly [I in keyof T]: CheckedSpec<T[I]> };

/**
 * Declares a command's table. Keeps the literal keys (so the values are typed), checks each
 * default against its parser, and refuses a table that declares a key, flag or env var twice
 * (easy to do when shared options are spread into a command's table) or gives a secret a default.
 */
export function defineOptions<const T extends OptionTable>(table: T & CheckedTable<T>): T {
  for (const field of ["key", "flag", "env"] as const) {
    const seen = new Set<string>();
    for (const o of table) {
      if (seen.has(o[field])) throw new Error(`option table declares ${field} ${o[field]} twice`);
      seen.add(o[field]);
    }
  }
  if (table.some((o) => o.flag === "config" || o.flag === "help")) {
    throw new Error("--config and --help are reserved flags");
  }
  // A defaulted secret would be the same in every deployment that forgot to set it.
  const defaulted = table.find((o) => o.secret && o.default !== undefined);
  if (defaulted) throw new Error(`secret option ${defaulted.key} must not have a default`);
  return table;
}

/** One option, for sharing between tables (see src/lib/options.ts). */
export function defineOption<const S extends OptionSpec>(spec: S & CheckedSpec<S>): S {
  return spec;
}

/**
 * A shared option adapted to one command: another key, flag, env var, description or
 * default. `{ default: undefined, optional: true }` turns a defaulted option into an optional one.
 */
export function withOverrides<
  const S extends OptionSpec,
  const O extends Partial<Omit<OptionSpec<Readonly<ParsedOf<S>>>, "parse">>,
>(base: S, overrides: O): Omit<S, keyof O> & O {
  return { ...base, ...overrides };
}

/**
 * Options of another command's table, by key, in the order given (`paystream up` takes most
 * of the processor's and collector's). Typed: the values of the picked keys keep their types.
 */
export function pickOptions<const T extends OptionTable, const K extends T[number]["key"]>(
  table: T,
  keys: readonly K[],
): Extract<T[number], { readonly key: K }>[] {
  return keys.map((k) => {
    const o = table.find((x): x is Extract<T[number], { readonly key: K }> => x.key === k);
    if (!o) throw new Error(`option ${k} missing`);
    return o;
  });
}

export interface LoadOptions {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON or YAML config file; also read from --config / PAYSTREAM_CONFIG. */
  file?: string;
  /**
   * Accept positional arguments (returned in `rest`). Off by default: a stray word is
   * usually a value given to a boolean flag (`--demo true`) or a typo, and is refused.
   */
  positionals?: boolean;
}

// ----------------------------------------------------------------------------- parsers

function fail(message: string): never {
  throw new Error(message);
}

const SECOND = 1000;
const UNITS: Record<string, number> = {
  ms: 1,
  s: SECOND,
  m: 60 * SECOND,
  h: 3600 * SECOND,
  d: 86_400 * SECOND,
};

/**
 * Milliseconds from "250ms", "1.5s", "10s", "5m", "1h", "1d" or 0. A bare number other
 * than 0 is undefined: it used to mean milliseconds, which nobody expects of `--duration 40`,
 * and reading it as seconds now would silently change every value already deployed.
 */
export function parseDuration(raw: unknown): number | undefined {
  if (raw === 0 || raw === "0") return 0;
  if (typeof raw !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(raw);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

/** The shortest exact spelling: 86400000 → "1d", 90000 → "90s", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  for (const unit of ["d", "h", "m", "s"]) {
    const f = UNITS[unit]!;
    if (ms % f === 0) return `${ms / f}${unit}`;
  }
  return `${ms}ms`;
}

function isBareNumber(raw: unknown): boolean {
  return typeof raw === "number" || (typeof raw === "string" && /^\s*\d+(?:\.\d+)?\s*$/.test(raw));
}

function durationParser(min: number, max: number): Parser<number> {
  const parse = (raw: unknown): number => {
    if (raw !== 0 && raw !== "0" && isBareNumber(raw)) {
      const n = String(raw).trim();
      fail(`${JSON.stringify(n)} has no unit: write ${n}s for seconds (or ${n}ms, ${n}m, ${n}h)`);
    }
    const ms = parseDuration(raw);
    if (ms === undefined) fail(`must be a duration like 500ms, 10s, 5m, 1h, got ${JSON.stringify(raw)}`);
    if (ms < min || ms > max) {
      const upper = max === Number.MAX_SAFE_INTEGER ? "" : ` and ${formatDuration(max)}`;
      fail(
        upper
          ? `must be between ${formatDuration(min)}${upper}, got ${formatDuration(ms)}`
          : `must be at least ${formatDuration(min)}, got ${formatDuration(ms)}`,
      );
    }
    return ms;
  };
  return Object.assign(parse, { format: formatDuration, duration: true as const });
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
    <const T extends string>(...values: T[]): Parser<T> =>
    (raw) => {
      const found = values.find((v) => v === raw);
      if (found === undefined) fail(`must be one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
      return found;
    },
  /**
   * Durations in milliseconds, written with a unit: "500ms", "10s", "5m", "1h", "1d" (or 0).
   * Bounds are in milliseconds.
   */
  duration: (min = 0, max = Number.MAX_SAFE_INTEGER): Parser<number> => durationParser(min, max),
  /** host:port list, comma separated. */
  brokers: (): Parser<string[]> => {
    const parse = (raw: unknown): string[] => {
      const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(",");
      const out = list.map((s) => s.trim()).filter(Boolean);
      if (out.length === 0) fail("must list at least one host:port");
      for (const b of out) if (!/^[^\s:/]+:\d{1,5}$/.test(b)) fail(`"${b}" is not host:port`);
      return out;
    };
    return Object.assign(parse, { format: (v: string[]) => v.join(",") });
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

// ----------------------------------------------------------------------------- did you mean

/** Edit distance counting a swap of neighbours as one edit ("kafak" is one from "kafka"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** Spelling-insensitive form: "max_in_flight", "max-in-flight" and "maxInFlight" compare equal. */
const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");

/** The closest of `candidates` ([spelling compared, suggestion]), when it is close enough to be a typo. */
function closest(name: string, candidates: Iterable<[string, string]>): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const [spelling, suggestion] of candidates) {
    const d = editDistance(norm(name), norm(spelling));
    if (d < bestD) {
      bestD = d;
      best = suggestion;
    }
  }
  return best;
}

const didYouMean = (s: string | undefined) => (s ? ` (did you mean ${s}?)` : "");

// ----------------------------------------------------------------------------- flags

/**
 * Splits argv into --flag values (last wins) and positionals, with node:util parseArgs as
 * the tokenizer (`--flag value`, `--flag=value`, `--no-flag`, `--` ends the flags). It runs
 * non-strict so that every error here names the flag in our own words. Unknown flags are errors.
 */
export function parseFlags(
  argv: readonly string[],
  table: OptionTable,
): { flags: Map<string, unknown>; rest: string[]; config: string | undefined; restHint: string } {
  const byFlag = new Map(table.map((o) => [o.flag, o]));
  const options: Record<string, { type: "string" | "boolean" }> = { config: { type: "string" } };
  for (const o of table) options[o.flag] = { type: o.boolean ? "boolean" : "string" };
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    allowNegative: true,
    tokens: true,
  });
  const flags = new Map<string, unknown>();
  const rest: string[] = [];
  let config: string | undefined;
  /** Why the first positional is there, when a boolean flag right before it explains it. */
  let restHint = "";
  let lastBoolean: string | undefined;
  for (const t of tokens) {
    if (t.kind === "positional") {
      if (rest.length === 0 && lastBoolean) {
        restHint = ` (--${lastBoolean} takes no value: write --${lastBoolean}, --no-${lastBoolean} or --${lastBoolean}=${t.value})`;
      }
      rest.push(t.value);
    }
    lastBoolean = undefined;
    if (t.kind !== "option") continue;
    // parseArgs also strips "no-" from flags that take a value; only booleans can be negated.
    const negatedValueFlag = t.rawName === `--no-${t.name}` && !byFlag.get(t.name)?.boolean;
    const spec = negatedValueFlag ? undefined : byFlag.get(t.name);
    if (negatedValueFlag || (t.name !== "config" && !spec)) {
      const suggestion = closest(
        t.rawName.replace(/^-+/, ""),
        [...byFlag.keys(), "config", "help"].map((f): [string, string] => [f, `--${f}`]),
      );
      throw new ConfigError(t.rawName, `unknown flag${didYouMean(suggestion)} (see --help)`);
    }
    if (spec?.boolean) {
      if (t.inlineValue) flags.set(spec.flag, t.value);
      else {
        flags.set(spec.flag, !t.rawName.startsWith("--no-"));
        lastBoolean = spec.flag;
      }
      continue;
    }
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith("--"))) {
      throw new ConfigError(t.rawName, "needs a value (write --flag=value for a value starting with --)");
    }
    if (spec) flags.set(spec.flag, t.value);
    else config = t.value;
  }
  return { flags, rest, config, restHint };
}

// ----------------------------------------------------------------------------- files

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

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function readConfigFile(path: string): Record<string, unknown> {
  const doc = readDocument(path, "config file", ErrorCodes.CONFIG_FILE);
  if (doc === null || doc === undefined) return {};
  if (!isObject(doc)) {
    throw new PaystreamError(ErrorCodes.CONFIG_FILE, `config file ${path} must hold an object`);
  }
  return doc;
}

/**
 * Refuses any key of a config file that no option of the table reads: a misspelt key would
 * otherwise leave its option at the default without a word. Names the key (dotted path) and
 * the nearest real key.
 */
function checkFileKeys(doc: Record<string, unknown>, table: OptionTable, path: string): void {
  const keys = new Set(table.map((o) => o.key));
  const groups = new Set<string>();
  for (const o of table) {
    const parts = o.key.split(".");
    for (let i = 1; i < parts.length; i++) groups.add(parts.slice(0, i).join("."));
  }
  // A typo is compared against keys, their groups, and flags (people write the flag they know).
  const candidates: [string, string][] = [
    ...table.map((o): [string, string] => [o.key, o.key]),
    ...[...groups].map((g): [string, string] => [g, g]),
    ...table.map((o): [string, string] => [o.flag, o.key]),
  ];
  const source = `config file ${path}`;
  const walk = (obj: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(obj)) {
      const full = prefix ? `${prefix}.${name}` : name;
      if (name.includes(".")) {
        // lookup() reads nested objects only; a flat "kafka.brokers" would be silently unread.
        const nested = `${name.split(".").join(": { ")}: ...${" }".repeat(name.split(".").length - 1)}`;
        throw new ConfigError(full, `in ${source}: write the key nested (${nested})`, {
          details: { source },
        });
      }
      if (keys.has(full)) continue;
      if (groups.has(full)) {
        if (isObject(value)) {
          walk(value, full);
          continue;
        }
        const under = table.filter((o) => o.key.startsWith(`${full}.`)).map((o) => o.key);
        throw new ConfigError(full, `in ${source} holds keys (${under.join(", ")}), not a value`, {
          details: { source },
        });
      }
      throw new ConfigError(full, `unknown key in ${source}${didYouMean(closest(full, candidates))}`, {
        details: { source },
      });
    }
  };
  walk(doc, "");
}

function lookup(doc: Record<string, unknown>, key: string): unknown {
  let cur: unknown = doc;
  for (const part of key.split(".")) {
    if (!isObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

// ----------------------------------------------------------------------------- loading

/**
 * Loads and validates every option of a table. Returns the values keyed by `key`, typed by
 * the table, and the positional arguments (empty unless `positionals` is set).
 */
export function loadConfig<const T extends OptionTable>(
  table: T,
  opts: LoadOptions = {},
): { values: ConfigValues<T>; rest: string[] } {
  const env = opts.env ?? process.env;
  const { flags, rest, config, restHint } = parseFlags(opts.argv ?? [], table);
  if (rest.length > 0 && !opts.positionals) {
    throw new ConfigError(
      JSON.stringify(rest[0]),
      `unexpected argument${restHint || ": flags start with -- (see --help)"}`,
    );
  }
  const filePath = config ?? opts.file ?? env.PAYSTREAM_CONFIG;
  const file = filePath ? readConfigFile(filePath) : {};
  if (filePath) checkFileKeys(file, table, filePath);
  const values: Record<string, unknown> = {};
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
      // A copy: a caller that changes its list must not change the table's default.
      values[spec.key] = structuredClone(spec.default);
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
  // The loop above set exactly the table's keys, each from its own parser or default.
  return { values: values as ConfigValues<T>, rest };
}

/**
 * Values for a table from values already parsed (e.g. picked from another command's table):
 * keys absent or undefined take the table's default, so defaults stay declared once.
 * A required option without a value is a ConfigError.
 */
export function withDefaults<const T extends OptionTable>(
  table: T,
  given: Partial<ConfigValues<T>> | Readonly<Record<string, unknown>>,
): ConfigValues<T> {
  const src = given as Readonly<Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const spec of table) {
    const v = src[spec.key] !== undefined ? src[spec.key] : structuredClone(spec.default);
    if (v === undefined && !spec.optional) {
      throw new ConfigError(spec.key, `is required (set --${spec.flag} or ${spec.env})`);
    }
    out[spec.key] = v;
  }
  return out as ConfigValues<T>;
}

// ----------------------------------------------------------------------------- help

function showDefault(o: OptionSpec): string {
  if (o.secret) return "secret, no default";
  if (o.defaultHelp) return `default ${o.defaultHelp}`;
  if (o.default !== undefined) {
    const shown = o.parse.format
      ? o.parse.format(o.default)
      : Array.isArray(o.default)
        ? o.default.join(",")
        : String(o.default);
    return `default ${shown}`;
  }
  return o.optional ? "optional" : "required";
}

/** Renders `--help` from the same table the parser uses. */
export function renderHelp(command: string, summary: string, table: OptionTable): string {
  const lines = [
    `Usage: paystream ${command} [flags]`,
    "",
    summary,
    "",
    "Flags (flag / env var / config-file key / default):",
  ];
  const width = Math.max(16, ...table.map((o) => o.flag.length + (o.boolean ? 0 : 8))) + 4;
  for (const o of table) {
    const flag = `--${o.flag}${o.boolean ? "" : " <value>"}`;
    lines.push(`  ${flag.padEnd(width)}${o.description}`);
    lines.push(`  ${"".padEnd(width)}env ${o.env}; key ${o.key}; ${showDefault(o)}`);
  }
  lines.push(
    `  ${"--config <path>".padEnd(width)}JSON or YAML file with the keys above, nested (kafka: {brokers: ...});`,
    `  ${"".padEnd(width)}env PAYSTREAM_CONFIG; a key no option reads is refused`,
  );
  lines.push(`  ${"--help".padEnd(width)}show this help`);
  lines.push("", "Precedence: flag, then env var, then config file, then default.");
  if (table.some((o) => o.parse.duration)) {
    lines.push(
      "Durations take a unit: 500ms, 10s, 5m, 1h, 1d (0 needs none). A bare number such as 40 is refused.",
    );
  }
  if (table.some((o) => o.boolean)) {
    lines.push("Boolean flags take no value: --flag or --no-flag (--flag=false also works).");
  }
  return lines.join("\n");
}

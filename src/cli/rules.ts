/**
 * `paystream rules <list|show|validate|publish|rollback|diff|backtest>`: the versions on the
 * rules log (docs/rules.md, "Versions"). Exit codes:
 *   0  done (publish of a document identical to the current version included)
 *   1  validate/publish: the document is invalid (each error printed); show/rollback/diff: no such version
 *   2  usage or config error, Kafka unreachable
 */
import { userInfo } from "node:os";
import { openRulesLog } from "../app/rules-log.ts";
import { ruleVersionToJson } from "../contracts/rules-log.ts";
import { ErrorCodes, isPaystreamError } from "../core/errors.ts";
import { diffRuleDocuments, documentDigest } from "../core/rule-versions.ts";
import { parseRules } from "../core/rules.ts";
import { defineOptions, loadConfig, p, pickOptions, readDocument, renderHelp } from "../lib/config.ts";
import { kafkaBrokers, rulesTopic } from "../lib/options.ts";
import { processorOptions } from "../processor/config.ts";

const json = {
  key: "json",
  flag: "json",
  env: "PAYSTREAM_RULES_JSON",
  description: "print JSON instead of text",
  parse: p.bool(),
  default: false,
  boolean: true,
} as const;
const comment = {
  key: "comment",
  flag: "comment",
  env: "PAYSTREAM_RULES_COMMENT",
  description: "why this version exists, recorded with it (at most 500 characters)",
  parse: (raw: unknown) => {
    const c = String(raw).trim();
    if (c.length === 0 || c.length > 500) throw new Error("must be 1 to 500 characters");
    return c;
  },
  optional: true,
} as const;
// The processors' window: validation here refuses what the processors would refuse.
const window = pickOptions(processorOptions, ["window.ms"]);
const logOptions = [kafkaBrokers, rulesTopic] as const;

const listOptions = defineOptions([...logOptions, json]);
const showOptions = defineOptions([...logOptions]);
const validateOptions = defineOptions([...window, json]);
const publishOptions = defineOptions([...logOptions, ...window, comment]);
const rollbackOptions = defineOptions([...logOptions, ...window, comment]);
const diffOptions = defineOptions([...logOptions, json]);

const SUMMARIES = {
  list: "Lists the versions on the rules log, newest first: version, when, author, source, digest, comment. The first line is the version every processor applies.",
  show: "Prints one version as JSON (`paystream rules show 7`), the current one without a number: its document, digest, author, source and comment.",
  validate:
    "Validates a rules file (YAML or JSON) as the processors would, with the processors' window (--window): prints the rule ids, or every error naming the rule and field and exits 1. Reads no log.",
  publish:
    "Validates a rules file and publishes it as the next version (source cli, author cli:<your user name>); every processor applies it within a second. An invalid document is refused with its errors (exit 1) and nothing is published; one identical to the current version publishes nothing.",
  rollback:
    "Publishes the document of an earlier version again as a new version (`paystream rules rollback 3`); versions are never reused, so history keeps what was rolled back and when.",
  diff: "Shows what changed between two versions per rule (`paystream rules diff 3 5`): rules added, removed, and changed fields with their old and new values.",
  backtest:
    "Replays recorded traffic through a candidate rule set and reports what it would have raised next to the current version (`paystream rules backtest --help`).",
} as const;

function usage(): string {
  return [
    "Usage: paystream rules <list|show|validate|publish|rollback|diff|backtest> [flags]",
    "",
    "Rule set versions on the rules log (payments.rules): every processor replica applies the newest one.",
    "",
    "  list                              versions, newest first",
    "  show      [N]                     one version as JSON (default: the current one)",
    "  validate  <file>                  check a rules file; prints each error",
    "  publish   <file> [--comment C]    validate, then publish as the next version",
    "  rollback  <N> [--comment C]       publish version N's document again as a new version",
    "  diff      <A> <B>                 per-rule changes from version A to version B",
    "  backtest  [flags]                 what a rule set would have raised on recorded traffic",
    "",
    "Run `paystream rules <subcommand> --help` for every flag.",
  ].join("\n");
}

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

function versionNumber(raw: string | undefined, what: string): number {
  if (raw === undefined || !/^\d{1,9}$/.test(raw) || Number(raw) < 1)
    throw usageError(`${what} must be a version number (1, 2, ...), got ${JSON.stringify(raw ?? "")}`);
  return Number(raw);
}

class UsageError extends Error {}
function usageError(message: string): UsageError {
  return new UsageError(message);
}

function checkDocument(document: unknown, maxWindowMs: number): string[] {
  try {
    parseRules(document, { maxWindowMs });
    return [];
  } catch (err) {
    return (err as Error).message.split("\n").filter((l) => l.trim() !== "");
  }
}

function author(): string {
  let name = process.env["USER"] ?? "";
  try {
    name = userInfo().username || name;
  } catch {
    // no passwd entry (some containers): the environment's name, or unknown
  }
  return `cli:${name || "unknown"}`;
}

async function withLog<T>(
  v: { "kafka.brokers": string[]; rulesTopic: string },
  fn: (log: Awaited<ReturnType<typeof openRulesLog>>) => Promise<T>,
): Promise<T> {
  const log = await openRulesLog({
    brokers: v["kafka.brokers"],
    clientId: `paystream-rules-${process.pid}`,
    topic: v.rulesTopic,
  });
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

async function list(argv: string[]): Promise<number> {
  const { values: v } = loadConfig(listOptions, { argv });
  const history = await withLog(v, (log) => log.history());
  const newest = [...history].reverse();
  if (v.json) {
    out(JSON.stringify({ versions: newest.map(ruleVersionToJson) }, null, 2));
    return 0;
  }
  if (newest.length === 0) {
    out(`no versions on ${v.rulesTopic} yet (a processor publishes its rules file when it starts)`);
    return 0;
  }
  const rows = newest.map((r, i) => [
    `${r.version}${i === 0 ? "*" : ""}`,
    new Date(r.publishedAtMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
    r.author,
    r.rollbackOf !== undefined ? `rollback of ${r.rollbackOf}` : r.source,
    r.sha256.slice(0, 12),
    (r.comment ?? "").replace(/\s+/g, " "),
  ]);
  const header = ["VERSION", "PUBLISHED", "AUTHOR", "SOURCE", "SHA256", "COMMENT"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  out([line(header), ...rows.map(line)].join("\n"));
  out(`\n${newest.length} version(s); * = current`);
  return 0;
}

async function show(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(showOptions, { argv, positionals: true });
  if (rest.length > 1) throw usageError("give at most one version number");
  const wanted = rest[0] === undefined ? undefined : versionNumber(rest[0], "the version");
  const history = await withLog(v, (log) => log.history());
  const found = wanted === undefined ? history.at(-1) : history.find((x) => x.version === wanted);
  if (!found) {
    process.stderr.write(
      `paystream rules show: ${wanted === undefined ? "no versions" : `no version ${wanted}`} on ${v.rulesTopic}\n`,
    );
    return 1;
  }
  out(JSON.stringify(ruleVersionToJson(found), null, 2));
  return 0;
}

function readRules(path: string | undefined): unknown {
  if (path === undefined) throw usageError("give the rules file (YAML or JSON)");
  return readDocument(path, "rules file", ErrorCodes.RULES_INVALID);
}

async function validate(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(validateOptions, { argv, positionals: true });
  if (rest.length !== 1) throw usageError("give exactly one rules file");
  const doc = readRules(rest[0]);
  const errors = checkDocument(doc, v["window.ms"]);
  if (v.json) {
    out(
      JSON.stringify(
        errors.length
          ? { ok: false, errors }
          : { ok: true, rules: parseRules(doc, { maxWindowMs: v["window.ms"] }).rules.map((r) => r.id) },
      ),
    );
  } else if (errors.length) {
    for (const e of errors) process.stderr.write(`${e}\n`);
  } else {
    const set = parseRules(doc, { maxWindowMs: v["window.ms"] });
    out(`valid: ${set.rules.length} rule(s): ${set.rules.map((r) => r.id).join(", ")}`);
  }
  return errors.length ? 1 : 0;
}

async function publish(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(publishOptions, { argv, positionals: true });
  if (rest.length !== 1) throw usageError("give exactly one rules file");
  const doc = readRules(rest[0]);
  const errors = checkDocument(doc, v["window.ms"]);
  if (errors.length) {
    for (const e of errors) process.stderr.write(`${e}\n`);
    process.stderr.write("paystream rules publish: refused; nothing was published\n");
    return 1;
  }
  return withLog(v, async (log) => {
    const current = (await log.history()).at(-1);
    if (current && current.sha256 === documentDigest(doc)) {
      out(`unchanged: the document is version ${current.version} already; nothing published`);
      return 0;
    }
    const published = await log.publish({
      document: doc,
      author: author(),
      source: "cli",
      ...(v.comment ? { comment: v.comment } : {}),
    });
    out(`published version ${published.version} (sha256 ${published.sha256.slice(0, 12)})`);
    return 0;
  });
}

async function rollback(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(rollbackOptions, { argv, positionals: true });
  if (rest.length !== 1) throw usageError("give exactly one version number");
  const wanted = versionNumber(rest[0], "the version");
  return withLog(v, async (log) => {
    const target = (await log.history()).find((x) => x.version === wanted);
    if (!target) {
      process.stderr.write(`paystream rules rollback: no version ${wanted} on ${v.rulesTopic}\n`);
      return 1;
    }
    const errors = checkDocument(target.document, v["window.ms"]);
    if (errors.length) {
      for (const e of errors) process.stderr.write(`${e}\n`);
      process.stderr.write(
        `paystream rules rollback: version ${wanted} is not valid here; nothing was published\n`,
      );
      return 1;
    }
    const published = await log.publish({
      document: target.document,
      author: author(),
      source: "rollback",
      rollbackOf: wanted,
      ...(v.comment ? { comment: v.comment } : {}),
    });
    out(`published version ${published.version}: the document of version ${wanted}`);
    return 0;
  });
}

function show1(x: unknown): string {
  return x === undefined ? "(absent)" : JSON.stringify(x);
}

async function diff(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(diffOptions, { argv, positionals: true });
  if (rest.length !== 2) throw usageError("give two version numbers: diff <from> <to>");
  const from = versionNumber(rest[0], "<from>");
  const to = versionNumber(rest[1], "<to>");
  const history = await withLog(v, (log) => log.history());
  const a = history.find((x) => x.version === from);
  const b = history.find((x) => x.version === to);
  if (!a || !b) {
    process.stderr.write(`paystream rules diff: no version ${!a ? from : to} on ${v.rulesTopic}\n`);
    return 1;
  }
  const changes = diffRuleDocuments(a.document, b.document);
  if (v.json) {
    out(
      JSON.stringify({
        from,
        to,
        changes: changes.map((c) => ({
          rule_id: c.ruleId,
          kind: c.kind,
          fields: c.fields.map((f) => ({ field: f.field, from: f.from ?? null, to: f.to ?? null })),
        })),
      }),
    );
    return 0;
  }
  if (changes.length === 0) out(`versions ${from} and ${to} have the same rules`);
  for (const c of changes) {
    const sign = c.kind === "added" ? "+" : c.kind === "removed" ? "-" : "~";
    out(`${sign} ${c.ruleId} (${c.kind})`);
    if (c.kind === "changed")
      for (const f of c.fields) out(`    ${f.field}: ${show1(f.from)} -> ${show1(f.to)}`);
  }
  return 0;
}

/** Loaded only when chosen: the replay pulls in the whole pipeline. */
async function backtest(argv: string[]): Promise<number> {
  const { rulesBacktest } = await import("./rules-backtest.ts");
  return rulesBacktest(argv);
}

const SUBCOMMANDS = {
  list: { table: listOptions, run: list },
  show: { table: showOptions, run: show },
  validate: { table: validateOptions, run: validate },
  publish: { table: publishOptions, run: publish },
  rollback: { table: rollbackOptions, run: rollback },
  diff: { table: diffOptions, run: diff },
} as const;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    out(usage());
    return sub === undefined ? 2 : 0;
  }
  // backtest owns its flags and its --help.
  if (sub === "backtest") return backtest(rest);
  if (!Object.hasOwn(SUBCOMMANDS, sub)) {
    process.stderr.write(`paystream rules: unknown subcommand "${sub}"\n\n${usage()}\n`);
    return 2;
  }
  const name = sub as keyof typeof SUBCOMMANDS;
  const command = SUBCOMMANDS[name];
  if (rest.includes("--help")) {
    out(renderHelp(`rules ${name}`, SUMMARIES[name], command.table));
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`paystream rules ${name}: ${err.message}\n`);
      return 2;
    }
    if (isPaystreamError(err) && err.code === ErrorCodes.RULES_INVALID) {
      process.stderr.write(`paystream rules ${name}: ${err.message}\n`);
      return 1;
    }
    const msg = isPaystreamError(err)
      ? `${err.message} [${err.code}]`
      : ((err as Error).stack ?? String(err));
    process.stderr.write(`paystream rules ${name}: ${msg}\n`);
    return 2;
  }
}

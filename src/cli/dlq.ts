/**
 * `paystream dlq <list|show|redrive>`: inspect the dead-letter topic (masked entries only)
 * and redrive entries once what refused them is fixed. docs/dlq.md. Exit codes:
 *   0  done (list; show found the entry; redrive redrove every selected entry)
 *   1  show: no such entry; redrive: some selected entry was not redriven (each says why)
 *   2  usage or config error, no key for redrive, Kafka unreachable, DLQ topic missing
 */
import { dlqKeyring, listDlq, redriveDlq, showDlq } from "../app/dlq.ts";
import { isPaystreamError } from "../core/errors.ts";
import { decodeOptionsFrom } from "../core/schema.ts";
import { loadConfig, renderHelp } from "../lib/config.ts";
import { type DlqEntry, entryView } from "../processor/dlq-entries.ts";
import { allRedriven, type RedriveReport } from "../processor/dlq-redrive.ts";
import { dlqListOptions, dlqRedriveOptions, dlqShowOptions } from "./options/dlq.ts";

const SUMMARIES = {
  list:
    "Lists DLQ entries, newest last: address (partition:offset in the DLQ topic), when, reason, source record, " +
    "transaction id, whether a sealed original travels with it. Values are the masked projections the processor " +
    "wrote; nothing is decrypted.",
  show:
    "Shows one DLQ entry by its address, `paystream dlq show <partition>:<offset>` (as `list` prints it): headers " +
    "and masked projection as JSON. Nothing is decrypted.",
  redrive:
    "Redrives DLQ entries selected by --reason and/or --offsets (and --since/--until): opens each sealed original " +
    "with the DLQ key, validates it again as the processor does (same limits, processing time now) and produces " +
    "those that pass to their source topic with their original key. Reports per entry: redriven, still_invalid " +
    "(reason), no_raw_copy, wrong_key_id, auth_failed, dedup_pending. Safe to repeat: the processor drops a second " +
    "copy of a transaction_id as a duplicate. Exit 0 when every selected entry was redriven, 1 otherwise.",
} as const;

function usage(): string {
  return [
    "Usage: paystream dlq <list|show|redrive> [flags]",
    "",
    "Inspect and redrive the dead-letter topic (docs/dlq.md). Entries are shown masked; originals are",
    "only ever opened by `redrive`, with the DLQ key (PAYSTREAM_DLQ_KEY).",
    "",
    "  list      [--reason R] [--since 10m|ISO] [--until 10m|ISO] [--limit N]",
    "  show      <partition>:<offset>",
    "  redrive   --reason R | --offsets p:o,... [--since ...] [--until ...] [--dry-run]",
    "",
    "Run `paystream dlq <subcommand> --help` for every flag.",
  ].join("\n");
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}

function cut(s: string, n: number): string {
  const one = s.replace(/\s+/g, " ");
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

export function renderEntries(entries: DlqEntry[]): string {
  return table(
    ["ENTRY", "DEAD-LETTERED", "REASON", "SOURCE", "TRANSACTION", "RAW", "DETAIL"],
    entries.map((e) => [
      e.id,
      iso(e.timeMs),
      e.reason || "-",
      e.source ? `${e.source.topic} ${e.source.partition}:${e.source.offset}` : "-",
      e.transactionId ?? "-",
      e.raw ? `sealed ${e.raw.keyId}` : "none",
      cut(e.detail, 60),
    ]),
  );
}

export function renderRedrive(report: RedriveReport, dryRun: boolean): string {
  const counts = new Map<string, number>();
  for (const r of report.results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const rows = report.results.map((r) => [
    r.entry,
    r.status,
    r.nowReason ? `${r.reason} -> ${r.nowReason}` : r.reason || "-",
    r.transactionId ?? "-",
    cut(r.topic ? `to ${r.topic}` : (r.detail ?? ""), 80),
  ]);
  const summary = [...counts].map(([s, n]) => `${s} ${n}`).join(", ") || "no entry selected";
  return [
    ...(rows.length ? [table(["ENTRY", "OUTCOME", "REASON", "TRANSACTION", "DETAIL"], rows), ""] : []),
    `${dryRun ? "dry run: " : ""}${summary}; ${report.produced} record(s) produced; ${report.scanned} DLQ records read`,
  ].join("\n");
}

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x), 2);
}

async function list(argv: string[]): Promise<number> {
  const { values: v } = loadConfig(dlqListOptions, { argv });
  const res = await listDlq(
    { brokers: v["kafka.brokers"], dlqTopic: v["kafka.dlqTopic"], timeoutMs: v.timeout },
    { reasons: v.reason ? new Set(v.reason) : undefined, sinceMs: v.since, untilMs: v.until },
    v.limit,
  );
  if (v.json) {
    process.stdout.write(
      `${json({ scanned: res.scanned, matched: res.matched, entries: res.entries.map(entryView) })}\n`,
    );
  } else {
    const shown = res.entries.length < res.matched ? ` (newest ${res.entries.length} shown; --limit)` : "";
    process.stdout.write(
      `${res.entries.length ? `${renderEntries(res.entries)}\n\n` : ""}${res.matched} matching of ${res.scanned} DLQ records${shown}\n`,
    );
  }
  return 0;
}

async function show(argv: string[]): Promise<number> {
  const { values: v, rest } = loadConfig(dlqShowOptions, { argv, positionals: true });
  if (rest.length !== 1) {
    process.stderr.write(
      "paystream dlq show: give exactly one entry address, partition:offset (see `dlq list`)\n",
    );
    return 2;
  }
  const e = await showDlq(
    { brokers: v["kafka.brokers"], dlqTopic: v["kafka.dlqTopic"], timeoutMs: v.timeout },
    rest[0]!,
  );
  if (!e) {
    process.stderr.write(`paystream dlq show: no entry ${rest[0]} in ${v["kafka.dlqTopic"]}\n`);
    return 1;
  }
  process.stdout.write(`${json(entryView(e))}\n`);
  return 0;
}

async function redriveCommand(argv: string[]): Promise<number> {
  const { values: v } = loadConfig(dlqRedriveOptions, { argv });
  if (!v.reason && !v.offsets) {
    process.stderr.write(
      "paystream dlq redrive: select entries with --reason and/or --offsets (a redrive of everything is not a default)\n",
    );
    return 2;
  }
  const keys = { key: v["dlq.key"], keyId: v["dlq.keyId"], previous: v["dlq.previousKeys"] };
  // No key: say so before reading anything.
  dlqKeyring(keys);
  const report = await redriveDlq({
    brokers: v["kafka.brokers"],
    dlqTopic: v["kafka.dlqTopic"],
    timeoutMs: v.timeout,
    keys,
    filter: {
      reasons: v.reason ? new Set(v.reason) : undefined,
      ids: v.offsets ? new Set(v.offsets) : undefined,
      sinceMs: v.since,
      untilMs: v.until,
    },
    limit: v.limit,
    dryRun: v.dryRun,
    decode: decodeOptionsFrom({
      maxMessageBytes: v.maxMessageBytes,
      maxAmountMinor: v["limits.maxAmount"],
      maxFutureSkewMs: v["limits.maxFutureSkewMs"],
      maxAgeMs: v["limits.maxAgeMs"],
    }),
    // How long the processor drops a copy of an id it has seen: Redis's TTL with the shared
    // tier; otherwise as long as the original can sit in its account's window.
    dedupTtlMs: v["dedup.shared"] ? v["dedup.ttlMs"] : v["window.ms"] + v["window.latenessMs"],
  });
  process.stdout.write(`${v.json ? json(report) : renderRedrive(report, v.dryRun)}\n`);
  return allRedriven(report) ? 0 : 1;
}

const SUBCOMMANDS = {
  list: { table: dlqListOptions, run: list },
  show: { table: dlqShowOptions, run: show },
  redrive: { table: dlqRedriveOptions, run: redriveCommand },
} as const;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(`${usage()}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(SUBCOMMANDS, sub)) {
    process.stderr.write(`paystream dlq: unknown subcommand "${sub}"\n\n${usage()}\n`);
    return 2;
  }
  const name = sub as keyof typeof SUBCOMMANDS;
  const command = SUBCOMMANDS[name];
  if (rest.includes("--help")) {
    process.stdout.write(`${renderHelp(`dlq ${name}`, SUMMARIES[name], command.table)}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    const msg = isPaystreamError(err)
      ? `${err.message} [${err.code}]`
      : ((err as Error).stack ?? String(err));
    process.stderr.write(`paystream dlq ${name}: ${msg}\n`);
    return 2;
  }
}

/**
 * `paystream dlq <list|show|redrive>` options: one table per subcommand. What the processor
 * also has (brokers, DLQ topic, the DLQ key, the validation limits, the dedup horizon) is
 * picked from the processor's table, so the flags and env vars are the same and the command
 * run next to a processor (same environment) validates exactly as it does.
 */
import { defineOptions, p, parseDuration, pickOptions, withOverrides } from "../../lib/config.ts";
import { processorOptions } from "../../processor/config.ts";
import { KNOWN_REASONS } from "../../processor/dlq-redrive.ts";

/** An instant: a duration ago ("10m", "2h") or an ISO 8601 date-time with a zone. */
export function parseInstant(raw: unknown, now: number = Date.now()): number {
  const s = String(raw).trim();
  const ago = parseDuration(s);
  if (ago !== undefined) return now - ago;
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(s)) {
    const t = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s);
    if (Number.isFinite(t)) return t;
  }
  throw new Error(
    `must be a duration ago (10m, 2h, 1d) or an ISO date-time with a zone, got ${JSON.stringify(s)}`,
  );
}

function parseReasons(raw: unknown): string[] {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("must list at least one reason");
  for (const r of list) {
    if (!KNOWN_REASONS.includes(r))
      throw new Error(`"${r}" is not a DLQ reason (${KNOWN_REASONS.join(", ")})`);
  }
  return [...new Set(list)];
}

/** "p:o,p:o": DLQ entry addresses as `list` prints them. */
export function parseOffsets(raw: unknown): string[] {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("must list at least one partition:offset");
  for (const o of list) {
    if (!/^\d{1,9}:\d{1,19}$/.test(o)) throw new Error(`"${o}" is not partition:offset (e.g. 3:1207)`);
  }
  return [...new Set(list)];
}

/** Keys rotated out, "[id=]<64 hex>" comma separated. Never echoed (secret). */
export function parsePreviousKeys(raw: unknown): string[] {
  const list = String(raw)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of list) {
    if (!/^([A-Za-z0-9._-]{1,64}=)?[0-9a-fA-F]{64}$/.test(k))
      throw new Error("each key must be [id=]<64 hex digits>");
  }
  return list;
}

const common = [
  withOverrides(pickOptions(processorOptions, ["kafka.brokers"])[0]!, {
    description: "Kafka bootstrap brokers holding the DLQ topic",
  }),
  withOverrides(pickOptions(processorOptions, ["kafka.dlqTopic"])[0]!, {
    description: "the DLQ topic the processor writes to",
  }),
  {
    key: "timeout",
    flag: "timeout",
    env: "PAYSTREAM_DLQ_TIMEOUT",
    description: "give up when the DLQ topic is not read to its end offsets within this long",
    parse: p.duration(1000),
    default: 120_000,
  },
  {
    key: "json",
    flag: "json",
    env: "PAYSTREAM_DLQ_JSON",
    description: "print JSON instead of a table",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
] as const;

const reason = {
  key: "reason",
  flag: "reason",
  env: "PAYSTREAM_DLQ_REASON",
  description: "only entries refused for these reasons (comma separated)",
  parse: parseReasons,
  optional: true,
} as const;

const since = {
  key: "since",
  flag: "since",
  env: "PAYSTREAM_DLQ_SINCE",
  description: "only entries dead-lettered at or after: a duration ago (10m, 2h) or an ISO date-time",
  parse: (raw: unknown) => parseInstant(raw),
  optional: true,
} as const;

const until = {
  key: "until",
  flag: "until",
  env: "PAYSTREAM_DLQ_UNTIL",
  description: "only entries dead-lettered before: a duration ago or an ISO date-time",
  parse: (raw: unknown) => parseInstant(raw),
  optional: true,
} as const;

export const dlqListOptions = defineOptions([
  ...common,
  reason,
  since,
  until,
  {
    key: "limit",
    flag: "limit",
    env: "PAYSTREAM_DLQ_LIMIT",
    description: "show the newest N matching entries",
    parse: p.int(1, 100_000),
    default: 50,
  },
]);

export const dlqShowOptions = defineOptions([...common]);

export const dlqRedriveOptions = defineOptions([
  ...common,
  reason,
  {
    key: "offsets",
    flag: "offsets",
    env: "PAYSTREAM_DLQ_OFFSETS",
    description:
      "only these entries: partition:offset in the DLQ topic, comma separated (as `list` prints them)",
    parse: parseOffsets,
    optional: true,
  },
  since,
  until,
  {
    key: "limit",
    flag: "limit",
    env: "PAYSTREAM_DLQ_LIMIT",
    description: "redrive at most the newest N selected entries",
    parse: p.int(1, 1_000_000),
    default: 1000,
  },
  {
    key: "dryRun",
    flag: "dry-run",
    env: "PAYSTREAM_DLQ_DRY_RUN",
    description: "decrypt and validate, report what would be redriven, produce nothing",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
  ...pickOptions(processorOptions, ["dlq.key", "dlq.keyId"]),
  {
    key: "dlq.previousKeys",
    flag: "dlq-previous-keys",
    env: "PAYSTREAM_DLQ_PREVIOUS_KEYS",
    description:
      "keys rotated out, still needed for older entries: [id=]<64 hex digits>, comma separated (id defaults to the key's hash)",
    parse: Object.assign(parsePreviousKeys, { format: () => "(secret)" }),
    secret: true,
    optional: true,
  },
  ...pickOptions(processorOptions, [
    "maxMessageBytes",
    "limits.maxFutureSkewMs",
    "limits.maxAgeMs",
    "limits.maxAmount",
    "dedup.shared",
    "dedup.ttlMs",
    "window.ms",
    "window.latenessMs",
  ]),
]);

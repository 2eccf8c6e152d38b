/**
 * Reading the DLQ back (what `paystream dlq list|show|redrive` see): each DLQ record as an
 * entry — where it sits, when and why it was refused, where it came from, its masked
 * projection and whether a sealed original travels with it — through the TopicReader port,
 * filtered by reason, time and address. Nothing here can open a sealed original.
 *
 * An entry's address is its own place in the DLQ topic, "<partition>:<offset>": unlike the
 * source coordinates it is unique (a replay dead-letters the same source record again).
 *
 * DLQ records written before the projection existed (their value is the original text with
 * only card numbers cut) are shown through the text projection with every token replaced by
 * "redacted" (this side has no PII key), so no entry is ever printed with raw PII.
 */
import type { MaskedCard } from "../contracts/alert.ts";
import { DLQ_VALUE_VERSION, DlqHeaders, type DlqProjection, DlqRawHeaders } from "../contracts/dlq.ts";
import type { LogRecord, TopicReader } from "../contracts/ports.ts";
import { type DlqMasker, projectText } from "../core/dlq-projection.ts";
import { scrubTruncated } from "../core/pii-scrub.ts";

export interface DlqSource {
  topic: string;
  partition: number;
  offset: string;
  /** Kafka timestamp of the refused record (ms). */
  timestampMs: number | undefined;
}

export interface DlqEntry {
  /** "<partition>:<offset>" in the DLQ topic. */
  id: string;
  partition: number;
  offset: bigint;
  /** When it was dead-lettered: the DLQ record's timestamp (ms). */
  timeMs: number;
  reason: string;
  detail: string;
  source: DlqSource | undefined;
  transactionId: string | undefined;
  alertId: string | undefined;
  projection: DlqProjection;
  /** Written before the projection existed: shown re-scrubbed, never redrivable. */
  legacy: boolean;
  /** The sealed original (raw_enc) and the id of the key that sealed it. */
  raw: { keyId: string; envelope: string } | undefined;
}

/** A masker without a key: tokens become "redacted", cards keep their BIN only. */
export const REDACTING_MASKER: DlqMasker = {
  token: () => "redacted",
  maskCard: (pan: string): MaskedCard => ({ bin: pan.slice(0, 6), last4: "", token: "redacted" }),
};

/** "p:o" with both parts decimal, or undefined. */
export function parseEntryId(text: string): { partition: number; offset: bigint } | undefined {
  const m = /^\s*(\d{1,9}):(\d{1,19})\s*$/.exec(text);
  if (!m) return undefined;
  return { partition: Number(m[1]), offset: BigInt(m[2]!) };
}

export function entryId(partition: number, offset: bigint): string {
  return `${partition}:${offset}`;
}

function isProjection(v: unknown): v is DlqProjection {
  if (v === null || typeof v !== "object") return false;
  const p = v as Partial<DlqProjection>;
  return (
    p.dlq_value === DLQ_VALUE_VERSION &&
    (p.format === "object" || p.format === "text" || p.format === "alert") &&
    Array.isArray(p.masked_fields)
  );
}

function intOrUndefined(s: string | undefined): number | undefined {
  return s !== undefined && /^\d{1,16}$/.test(s) ? Number(s) : undefined;
}

/** A DLQ record as an entry. Never throws on what the record holds. */
export function toEntry(r: LogRecord): DlqEntry {
  const h = r.headers;
  let projection: DlqProjection | undefined;
  try {
    const v: unknown = JSON.parse(r.value.toString("utf8"));
    if (isProjection(v)) projection = v;
  } catch {
    // Not a projection: a record from before it existed (below).
  }
  const legacy = projection === undefined;
  if (projection === undefined) {
    const { cards: _c, ...text } = projectText(r.value, REDACTING_MASKER);
    projection = { ...text, raw_encrypted: false, raw_omitted: "no_key" };
  }
  const topic = h.get(DlqHeaders.sourceTopic);
  const partition = intOrUndefined(h.get(DlqHeaders.sourcePartition));
  const offset = h.get(DlqHeaders.sourceOffset);
  const source =
    topic !== undefined && partition !== undefined && offset !== undefined && /^\d+$/.test(offset)
      ? { topic, partition, offset, timestampMs: intOrUndefined(h.get(DlqHeaders.sourceTimestamp)) }
      : undefined;
  const envelope = h.get(DlqRawHeaders.rawEnc);
  const keyId = h.get(DlqRawHeaders.rawKeyId);
  // Headers are re-scrubbed on the way out: an old writer may have put more in them.
  const clean = (s: string | undefined, max: number) =>
    s === undefined ? undefined : scrubTruncated(s, max).text;
  return {
    id: entryId(r.partition, r.offset),
    partition: r.partition,
    offset: r.offset,
    timeMs: Number(r.timestamp),
    reason: h.get(DlqHeaders.reason) ?? "",
    detail: clean(h.get(DlqHeaders.detail), 500) ?? "",
    source,
    transactionId: clean(h.get(DlqHeaders.transactionId), 128) ?? projection.transaction_id,
    alertId: clean(h.get(DlqHeaders.alertId), 128),
    projection,
    legacy,
    raw: !legacy && envelope !== undefined && keyId !== undefined ? { keyId, envelope } : undefined,
  };
}

export interface EntryFilter {
  reasons?: ReadonlySet<string> | undefined;
  /** Dead-lettered at or after (ms). */
  sinceMs?: number | undefined;
  /** Dead-lettered before (ms). */
  untilMs?: number | undefined;
  /** Entry addresses ("p:o"). */
  ids?: ReadonlySet<string> | undefined;
}

function headerPass(r: LogRecord, f: EntryFilter): boolean {
  if (f.ids && !f.ids.has(entryId(r.partition, r.offset))) return false;
  const t = Number(r.timestamp);
  if (f.sinceMs !== undefined && t < f.sinceMs) return false;
  if (f.untilMs !== undefined && t >= f.untilMs) return false;
  if (f.reasons && !f.reasons.has(r.headers.get(DlqHeaders.reason) ?? "")) return false;
  return true;
}

export interface ReadEntriesResult {
  exists: boolean;
  /** DLQ records read. */
  scanned: number;
  /** Records that passed the filter (more than `entries` when the limit cut). */
  matched: number;
  /** The newest `limit` matching entries, oldest first. */
  entries: DlqEntry[];
}

/**
 * Reads the DLQ topic to its end offsets and returns the newest `limit` entries passing the
 * filter, oldest first. Only entries that pass are parsed, and at most 2 x limit are held.
 */
export async function readEntries(
  reader: TopicReader,
  topic: string,
  filter: EntryFilter,
  opts: { limit: number; timeoutMs: number },
): Promise<ReadEntriesResult> {
  let kept: DlqEntry[] = [];
  let matched = 0;
  const byTime = (a: DlqEntry, b: DlqEntry) =>
    a.timeMs - b.timeMs ||
    a.partition - b.partition ||
    (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0);
  const res = await reader.readToEnd(
    topic,
    (r) => {
      if (!headerPass(r, filter)) return;
      matched++;
      kept.push(toEntry(r));
      if (kept.length >= 2 * opts.limit) kept = kept.sort(byTime).slice(-opts.limit);
    },
    { timeoutMs: opts.timeoutMs },
  );
  kept.sort(byTime);
  return { exists: res.exists, scanned: res.records, matched, entries: kept.slice(-opts.limit) };
}

/** An entry as `list --json` and `show` print it: everything but the sealed bytes. */
export function entryView(e: DlqEntry): Record<string, unknown> {
  return {
    entry: e.id,
    time: new Date(e.timeMs).toISOString(),
    reason: e.reason,
    detail: e.detail,
    source: e.source
      ? {
          topic: e.source.topic,
          partition: e.source.partition,
          offset: e.source.offset,
          time: e.source.timestampMs === undefined ? undefined : new Date(e.source.timestampMs).toISOString(),
        }
      : null,
    transaction_id: e.transactionId ?? null,
    ...(e.alertId ? { alert_id: e.alertId } : {}),
    raw: e.raw ? { encrypted: true, key_id: e.raw.keyId } : { encrypted: false },
    ...(e.legacy ? { legacy: true } : {}),
    value: e.projection,
  };
}

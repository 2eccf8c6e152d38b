/**
 * Redrive: DLQ entries back to the topic they were refused from, once what refused them is
 * fixed (docs/dlq.md). Per selected entry: open the sealed original with the key its
 * raw_key_id names, validate it again with the decoder the processor runs (same options,
 * processing time now), and produce the ones that now pass to their source topic with their
 * original key. Every entry gets an outcome; nothing is produced on a dry run.
 *
 * Idempotent for the pipeline: a redriven record is a new record with the same
 * transaction_id, so a second redrive of the same entry is dropped by the processor's dedup
 * (a resend), and the warehouse is keyed by transaction_id beyond the dedup horizon.
 *
 * Rows the warehouse refused (warehouse_rejected) passed validation and were claimed by
 * dedup when first processed: a copy produced within the dedup horizon (--dedup-ttl, 24 h)
 * would be dropped as a duplicate, so such entries are held back until it has passed.
 */
import { DlqRawHeaders, DlqReasons } from "../contracts/dlq.ts";
import type { OutRecord, RecordSink, TopicReader } from "../contracts/ports.ts";
import type { DlqKeyring } from "../core/dlq-crypto.ts";
import { scrubDetail } from "../core/dlq-projection.ts";
import { type DecodeOptions, decodeTransaction } from "../core/schema.ts";
import { WAREHOUSE_REJECTED } from "./dead-letter.ts";
import { type DlqEntry, type EntryFilter, REDACTING_MASKER, readEntries } from "./dlq-entries.ts";

export type RedriveStatus =
  /** Produced back to its source topic (would be, on a dry run). */
  | "redriven"
  | "would_redrive"
  /** Opened, but the decoder still refuses it: `reason` says why. */
  | "still_invalid"
  /** No sealed original: written without a DLQ key, too large, an alert, or before redrive existed. */
  | "no_raw_copy"
  /** Sealed with a key that is not configured (rotated out?): `detail` names its id. */
  | "wrong_key_id"
  /** The sealed original does not authenticate for this entry: tampered, moved, or another key under the id. */
  | "auth_failed"
  | "malformed"
  /** warehouse_rejected, within the dedup horizon: a copy now would be dropped as a duplicate. */
  | "dedup_pending"
  /** An --offsets address with no DLQ record. */
  | "not_found";

export interface RedriveResult {
  entry: string;
  status: RedriveStatus;
  /** The DLQ reason the entry was refused for. */
  reason: string;
  transactionId?: string | undefined;
  /** Where it went (or would go). */
  topic?: string;
  /** still_invalid: the decoder's reason and detail now. */
  nowReason?: string;
  detail?: string;
}

export interface RedriveReport {
  dlqTopic: string;
  scanned: number;
  results: RedriveResult[];
  /** Records produced (0 on a dry run). */
  produced: number;
}

export interface RedriveDeps {
  reader: TopicReader;
  sink: RecordSink;
  keyring: DlqKeyring;
  now?: () => number;
}

export interface RedriveOptions {
  dlqTopic: string;
  /** Which entries: by reason, by address, by time (all given filters apply). */
  filter: EntryFilter;
  /** Most entries considered (the newest). */
  limit: number;
  dryRun: boolean;
  /** The processor's decode options (decodeOptionsFrom of its config). */
  decode: DecodeOptions;
  /** The processor's --dedup-ttl. */
  dedupTtlMs: number;
  timeoutMs: number;
}

/** What to do with one entry: a record to produce, or why not. */
export function redriveEntry(
  e: DlqEntry,
  keyring: DlqKeyring,
  decode: DecodeOptions,
  nowMs: number,
  dedupTtlMs: number,
  dlqTopic: string,
): { result: RedriveResult; record?: OutRecord } {
  const base = { entry: e.id, reason: e.reason, transactionId: e.transactionId };
  if (!e.raw || !e.source) return { result: { ...base, status: "no_raw_copy", detail: noRawWhy(e) } };
  if (e.reason === WAREHOUSE_REJECTED && e.timeMs + dedupTtlMs > nowMs) {
    return {
      result: {
        ...base,
        status: "dedup_pending",
        detail: `the processor's dedup holds this transaction_id until about ${new Date(e.timeMs + dedupTtlMs).toISOString()}; a copy produced before is dropped as a duplicate`,
      },
    };
  }
  const opened = keyring.open(e.raw.envelope, e.raw.keyId, {
    sourceTopic: e.source.topic,
    sourcePartition: e.source.partition,
    sourceOffset: e.source.offset,
  });
  if (!opened.ok) return { result: { ...base, status: opened.failure, detail: opened.detail } };
  const raw = opened.record;
  const decoded = decodeTransaction(raw.value, decode, nowMs);
  if (!decoded.ok) {
    return {
      result: {
        ...base,
        status: "still_invalid",
        nowReason: decoded.reason,
        // The decoder's detail may quote the original (JSON.parse does): printed masked.
        detail: scrubDetail(decoded.reason, decoded.detail, REDACTING_MASKER).text,
      },
    };
  }
  return {
    result: { ...base, status: "redriven", transactionId: decoded.tx.transaction_id, topic: e.source.topic },
    record: {
      topic: e.source.topic,
      ...(raw.key === undefined ? {} : { key: raw.key }),
      value: raw.value,
      headers: { [DlqRawHeaders.redrivenFrom]: `${dlqTopic}/${e.id}` },
    },
  };
}

function noRawWhy(e: DlqEntry): string {
  if (e.legacy) return "written before DLQ records kept a sealed original";
  if (!e.source) return "the entry has no usable source headers";
  switch (e.projection.raw_omitted) {
    case "too_large":
      return "the original was larger than the sealed-copy limit";
    case "not_redrivable":
      return "an alert: alerts are raised again by re-processing, not redriven";
    default:
      return "the processor had no DLQ key when it wrote this entry";
  }
}

/** Selects entries, decides each, and produces the redrivable ones (unless dryRun). */
export async function redrive(deps: RedriveDeps, opts: RedriveOptions): Promise<RedriveReport> {
  const now = (deps.now ?? Date.now)();
  const read = await readEntries(deps.reader, opts.dlqTopic, opts.filter, {
    limit: opts.limit,
    timeoutMs: opts.timeoutMs,
  });
  const results: RedriveResult[] = [];
  const records: OutRecord[] = [];
  for (const e of read.entries) {
    const { result, record } = redriveEntry(
      e,
      deps.keyring,
      opts.decode,
      now,
      opts.dedupTtlMs,
      opts.dlqTopic,
    );
    if (record && opts.dryRun) result.status = "would_redrive";
    else if (record) records.push(record);
    results.push(result);
  }
  for (const id of opts.filter.ids ?? []) {
    if (!read.entries.some((e) => e.id === id)) results.push({ entry: id, status: "not_found", reason: "" });
  }
  if (records.length > 0) await deps.sink.send(records);
  return { dlqTopic: opts.dlqTopic, scanned: read.scanned, results, produced: records.length };
}

/** Every selected entry redriven (or, on a dry run, redrivable). */
export function allRedriven(report: RedriveReport): boolean {
  return report.results.every((r) => r.status === "redriven" || r.status === "would_redrive");
}

/** Reasons a DLQ entry can have: the decoder's and warehouse_rejected (for --reason). */
export const KNOWN_REASONS: readonly string[] = [...Object.values(DlqReasons), WAREHOUSE_REJECTED];

/**
 * The dead-letter contract: why a record was refused (a stable reason, also a metric label)
 * and the headers every DLQ record carries.
 */

/** Machine-readable reasons a record is rejected. Stable: they are DLQ fields and metric labels. */
export const DlqReasons = {
  oversized: "oversized",
  badJson: "bad_json",
  notObject: "not_object",
  unsupportedSchemaVersion: "unsupported_schema_version",
  schemaViolation: "schema_violation",
  luhnInvalid: "luhn_invalid",
  /** A Luhn-valid number no issuer can have: BIN 000000 (all zeros included). */
  invalidCard: "invalid_card",
  nonPositiveAmount: "non_positive_amount",
  badAmount: "bad_amount",
  /** Well-formed but above the configured maximum (or beyond exact integer cents). */
  amountOutOfRange: "amount_out_of_range",
  /** Not RFC 3339 with an offset, or not a real calendar instant in 1970-9999 (Feb 30, hour 24...). */
  badEventTime: "bad_event_time",
  /** More than the allowed skew ahead of processing time: it would move its partition's watermark. */
  eventTimeInFuture: "event_time_in_future",
  /** Older than the configured maximum age: useless for detection, most likely replayed. */
  eventTimeTooOld: "event_time_too_old",
} as const;
export type DlqReason = (typeof DlqReasons)[keyof typeof DlqReasons];

/** Headers of every DLQ record: where the record came from and why it was refused. */
export const DlqHeaders = {
  reason: "reason",
  detail: "detail",
  sourceTopic: "source_topic",
  sourcePartition: "source_partition",
  sourceOffset: "source_offset",
  sourceTimestamp: "source_timestamp",
  pansRedacted: "pans_redacted",
  transactionId: "transaction_id",
  alertId: "alert_id",
} as const;

/**
 * Headers a DLQ record may carry besides DlqHeaders, for redrive (docs/processor.md, "DLQ").
 * `raw_enc` is the sealed original (DlqRawEnvelope below), `raw_key_id` names the key that
 * sealed it, so a key can be rotated and old entries still opened with the old key.
 * `redriven_from` is set by `paystream dlq redrive` on the records it produces back to the
 * input topic: "<dlq topic>/<partition>:<offset>" of the entry it came from.
 */
export const DlqRawHeaders = {
  rawEnc: "raw_enc",
  rawKeyId: "raw_key_id",
  redrivenFrom: "redriven_from",
} as const;

/**
 * The value of every DLQ record: a masked projection of the refused record, JSON. No raw
 * PII: card numbers are BIN + last 4 + token, names, emails, IPs and devices are tokens
 * (the Masker's, so they join with the warehouse's), lat/lon are coarsened, and every other
 * string has card-like digit runs, emails and IP addresses cut.
 *
 * - format "object": the record parsed as a JSON object; `masked` is that object with the
 *   fields above replaced (card_number becomes {bin, last4, token}).
 * - format "text": it did not parse as an object (bad_json, not_object, oversized, or
 *   nested/large beyond the projection's bounds); `masked` is its UTF-8 text with the known
 *   fields' values replaced where they can be read, then cards, emails and IPs cut,
 *   truncated to DLQ_TEXT_MAX_CHARS.
 * - format "alert": an alert the warehouse refused; `masked` is the alert JSON (it holds
 *   only a masked card).
 */
export interface DlqProjection {
  /** Version of this shape. */
  dlq_value: typeof DLQ_VALUE_VERSION;
  format: "object" | "text" | "alert";
  masked: Record<string, unknown> | string;
  /** Paths of the known PII fields masked ("card_number", "payer.email"), in document order. */
  masked_fields: string[];
  /** Card-like runs, emails and IP addresses cut from the other content. */
  redactions: number;
  /** The text was cut to DLQ_TEXT_MAX_CHARS (format "text" only). */
  truncated: boolean;
  /** Size of the original record value in bytes. */
  original_bytes: number;
  /** The original key and bytes travel sealed in the raw_enc header (DlqRawEnvelope). */
  raw_encrypted: boolean;
  /** Why there is no sealed original: no DLQ key configured, or larger than DLQ_RAW_MAX_BYTES. */
  raw_omitted?: "no_key" | "too_large" | "not_redrivable";
  /** The record's transaction_id when it could be read (scrubbed like any string). */
  transaction_id?: string;
}

export const DLQ_VALUE_VERSION = 1;
/** Longest text a "text" projection keeps. */
export const DLQ_TEXT_MAX_CHARS = 4096;
/**
 * Largest original sealed into raw_enc. The header is base64 (4/3 of the size) and a DLQ
 * record must stay under the broker's max.message.bytes (1 MiB by default) with its
 * projection, or the DLQ write would fail and stop the processor.
 */
export const DLQ_RAW_MAX_BYTES = 256 * 1024;

/**
 * The raw_enc header: base64 of
 *
 *   version (1 byte, 0x01) | IV (12 bytes, random) | GCM tag (16 bytes) | ciphertext
 *
 * AES-256-GCM. The plaintext is the original record: key length (4 bytes big-endian,
 * 0xFFFFFFFF for a record without key) | key (UTF-8) | value bytes. The additional
 * authenticated data is the UTF-8 JSON array
 *
 *   ["paystream.dlq.raw", 1, <key id>, <source topic>, <source partition>, "<source offset>"]
 *
 * so a sealed original opens only as the entry it was written for: moved to another
 * record's headers, or relabelled with another key id, it fails authentication.
 */
export const DlqRawEnvelope = {
  version: 1,
  ivBytes: 12,
  tagBytes: 16,
  keyBytes: 32,
  aadLabel: "paystream.dlq.raw",
} as const;

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
  nonPositiveAmount: "non_positive_amount",
  badAmount: "bad_amount",
  badEventTime: "bad_event_time",
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

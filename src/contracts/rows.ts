/** Warehouse rows: what the processor writes and every warehouse stores. */

/** A transaction as stored in the warehouse: no raw card, name, email, IP or device. */
export interface MaskedTransaction {
  transaction_id: string;
  account_id: string;
  schema_version: number;
  card_bin: string;
  card_last4: string;
  card_token: string;
  name_token: string;
  email_token: string;
  ip_token: string;
  device_token: string;
  /** Decimal string, exact ("12.30"). */
  amount: string;
  amount_minor: number;
  currency: string;
  merchant_id: string;
  merchant_category: string;
  country: string;
  city: string;
  /**
   * Latitude and longitude rounded to the processor's --coordinate-decimals (2 by default,
   * ~1 km): a precise home location next to account_id identifies a person. Rules run on
   * the full-precision transaction, never on the row.
   */
  lat: number;
  lon: number;
  /** As received (RFC 3339 with offset). */
  event_time: string;
  event_time_ms: number;
}

/** Where and how a row was processed: what the processor adds to a masked transaction. */
export interface RowPlacement {
  kafka_partition: number;
  /** Decimal string: offsets are int64. */
  kafka_offset: string;
  processed_at_ms: number;
  /** Arrived behind the watermark (see docs/processor.md). */
  is_late: boolean;
}

/** A warehouse `transactions` row: the masked transaction plus where and how it was processed. */
export interface TransactionRow extends MaskedTransaction, RowPlacement {}

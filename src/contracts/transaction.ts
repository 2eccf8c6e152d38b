/**
 * Transaction schema v1: the wire contract between the collector (or any real payment
 * source) and the processor. JSON on the wire, one object per Kafka record, key = account_id.
 * The decoder and its hot-path checks live in core/schema.ts.
 */

export const SCHEMA_MAJOR = 1;
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024;

/** What travels on the wire. `amount` may be a decimal string ("12.34") or a number. */
export interface TransactionWireV1 {
  schema_version: number;
  transaction_id: string;
  account_id: string;
  card_number: string;
  cardholder_name: string;
  email: string;
  ip_address: string;
  device_id: string;
  amount: string | number;
  currency: string;
  merchant_id: string;
  merchant_category: string;
  country: string;
  city: string;
  lat: number;
  lon: number;
  event_time: string;
}

/** A validated transaction with the derived fields the processor works on. */
export interface Transaction extends TransactionWireV1 {
  /** Amount in minor units (cents): integer, so window sums never drift. */
  amountMinor: number;
  /** event_time as epoch milliseconds. */
  eventTimeMs: number;
}

export const transactionJsonSchemaV1 = {
  $id: "https://paystream.dev/schemas/transaction/v1.json",
  title: "Payment transaction, schema v1",
  type: "object",
  required: [
    "schema_version",
    "transaction_id",
    "account_id",
    "card_number",
    "cardholder_name",
    "email",
    "ip_address",
    "device_id",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "country",
    "city",
    "lat",
    "lon",
    "event_time",
  ],
  properties: {
    schema_version: { type: "integer" },
    transaction_id: { type: "string", minLength: 1, maxLength: 64 },
    account_id: { type: "string", minLength: 1, maxLength: 64 },
    card_number: { type: "string", pattern: "^[0-9]{12,19}$" },
    cardholder_name: { type: "string", maxLength: 200 },
    email: { type: "string", maxLength: 254 },
    ip_address: { type: "string", maxLength: 45 },
    device_id: { type: "string", maxLength: 128 },
    amount: { type: ["string", "number"] },
    currency: { type: "string", pattern: "^[A-Z]{3}$" },
    merchant_id: { type: "string", minLength: 1, maxLength: 64 },
    merchant_category: { type: "string", pattern: "^[0-9]{4}$" },
    country: { type: "string", pattern: "^[A-Z]{2}$" },
    city: { type: "string", maxLength: 100 },
    lat: { type: "number", minimum: -90, maximum: 90 },
    lon: { type: "number", minimum: -180, maximum: 180 },
    event_time: { type: "string", minLength: 20, maxLength: 40 },
  },
} as const;

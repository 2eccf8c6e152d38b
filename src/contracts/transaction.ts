/**
 * Transaction schema v1: the wire contract between the collector (or any real payment
 * source) and the processor. JSON on the wire, one object per Kafka record, key = account_id.
 * The decoder and its hot-path checks live in core/schema.ts.
 */

export const SCHEMA_MAJOR = 1;
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024;

/**
 * Bounds on values (docs/processor.md, "Validation"). One record must not be able to change
 * what other records detect, nor to overflow an exact integer sum, so these are checked on
 * every record before it reaches a window.
 *
 * Future skew: how far ahead of processing time an event_time may be. Producers' clocks
 * drift by seconds, not minutes; anything further ahead would drag its partition's
 * watermark forward and make every honest record behind it late.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60_000;
/**
 * Maximum age: 7 days covers store-and-forward (offline terminals, in-flight sales) and an
 * upstream outage over a long weekend. Anything older is thousands of times older than the
 * window + lateness (so it could never alert), beyond the dedup horizon (24 h by default,
 * so a resend of it would not even be recognised), and more likely replayed than real.
 */
export const DEFAULT_MAX_EVENT_AGE_MS = 7 * 24 * 3_600_000;
/**
 * Largest amount, in minor units: 1,000,000,000.00. Window sums must stay exact integers in
 * a double: a full window (2048 events by default) of maximum amounts is 2.05e14, 44 times
 * below 2^53, leaving room for the running sums a busy window accumulates; a billion major
 * units is beyond any single card payment in the currencies paystream bills in. Configurable:
 * a deployment billing in very high-nominal currencies (VND, IRR) may raise it, up to 4e12
 * (MAX_AMOUNT_MINOR_LIMIT in core/schema.ts) before a full window's sum can lose exactness.
 */
export const DEFAULT_MAX_AMOUNT_MINOR = 100_000_000_000;

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
  /** Amount in minor units (cents): a safe integer in [1, maxAmountMinor], so window sums never drift. */
  amountMinor: number;
  /**
   * event_time as epoch milliseconds: a real calendar instant from 1970 to 9999 and, when the
   * decoder was given processing time, within [now - maxAgeMs, now + maxFutureSkewMs].
   */
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

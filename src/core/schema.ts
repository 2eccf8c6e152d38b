/**
 * Transaction schema v1: the wire contract between the collector (or any real payment
 * source) and the processor. JSON on the wire, one object per Kafka record, key = account_id.
 *
 * The validator sits on the hot path (every record), so it is compiled once with Ajv and
 * the checks JSON Schema cannot express (Luhn, exact cents, a real timestamp) are written
 * as tight loops that allocate nothing.
 */
import { Ajv } from "ajv";
import { type DlqReason, DlqReasons } from "../contracts/dlq.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  SCHEMA_MAJOR,
  type Transaction,
  type TransactionWireV1,
  transactionJsonSchemaV1,
} from "../contracts/transaction.ts";

export type DecodeResult = { ok: true; tx: Transaction } | { ok: false; reason: DlqReason; detail: string };

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validateShape = ajv.compile<TransactionWireV1>(transactionJsonSchemaV1);

/** Luhn check over an ASCII digit string, no allocation. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** Computes the Luhn check digit to append to `partial` (used by generators and tests). */
export function luhnCheckDigit(partial: string): number {
  let sum = 0;
  let double = true;
  for (let i = partial.length - 1; i >= 0; i--) {
    let d = partial.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return (10 - (sum % 10)) % 10;
}

/**
 * Parses an amount into integer minor units (cents). Accepts "12", "12.3", "12.34" and
 * numbers with at most two decimals; anything else returns NaN. No float arithmetic on the
 * string path, so "0.29" is exactly 29.
 */
export function parseAmountMinor(amount: string | number): number {
  if (typeof amount === "number") {
    if (!Number.isFinite(amount)) return Number.NaN;
    const cents = Math.round(amount * 100);
    // Reject values that need more than two decimals (e.g. 1.005) instead of rounding money.
    if (Math.abs(cents - amount * 100) > 1e-6 * Math.max(1, Math.abs(amount))) return Number.NaN;
    return cents;
  }
  const n = amount.length;
  if (n === 0 || n > 20) return Number.NaN;
  let i = 0;
  let negative = false;
  if (amount.charCodeAt(0) === 45 /* - */) {
    negative = true;
    i = 1;
  }
  let whole = 0;
  let wholeDigits = 0;
  for (; i < n; i++) {
    const c = amount.charCodeAt(i);
    if (c === 46 /* . */) break;
    if (c < 48 || c > 57) return Number.NaN;
    whole = whole * 10 + (c - 48);
    wholeDigits++;
  }
  if (wholeDigits === 0) return Number.NaN;
  let frac = 0;
  if (i < n) {
    const fracDigits = n - i - 1;
    if (fracDigits < 1 || fracDigits > 2) return Number.NaN;
    for (let j = i + 1; j < n; j++) {
      const c = amount.charCodeAt(j);
      if (c < 48 || c > 57) return Number.NaN;
      frac = frac * 10 + (c - 48);
    }
    if (fracDigits === 1) frac *= 10;
  }
  const cents = whole * 100 + frac;
  if (!Number.isSafeInteger(cents)) return Number.NaN;
  return negative ? -cents : cents;
}

/** Formats minor units back to a decimal string ("1234" -> "12.34"). */
export function formatMinor(minor: number): string {
  const sign = minor < 0 ? "-" : "";
  const abs = Math.abs(minor);
  const cents = abs % 100;
  return `${sign}${(abs - cents) / 100}.${cents < 10 ? "0" : ""}${cents}`;
}

// RFC 3339 with an explicit offset (Z or ±hh:mm). Date.parse alone accepts too much.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function describeAjvError(): string {
  const e = validateShape.errors?.[0];
  if (!e) return "schema violation";
  if (e.keyword === "required")
    return `missing field ${(e.params as { missingProperty: string }).missingProperty}`;
  const field = e.instancePath.replace(/^\//, "") || "(root)";
  return `${field} ${e.message ?? "is invalid"}`;
}

/** The UTF-8 text of bytes without copying them first (Buffer.from(uint8Array) would copy). */
function utf8(value: Uint8Array): string {
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
}

/**
 * Decodes and validates one record value. Never throws: every failure becomes a
 * machine-readable reason plus a human detail, destined for the DLQ.
 */
export function decodeTransaction(
  value: Uint8Array | string,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): DecodeResult {
  const size = typeof value === "string" ? Buffer.byteLength(value) : value.byteLength;
  if (size > maxBytes) {
    return { ok: false, reason: DlqReasons.oversized, detail: `message is ${size} bytes, limit ${maxBytes}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof value === "string" ? value : utf8(value));
  } catch (err) {
    return { ok: false, reason: DlqReasons.badJson, detail: (err as Error).message };
  }
  return validateTransaction(parsed);
}

/** Validates an already-parsed value (the collector uses this to self-check its output). */
export function validateTransaction(parsed: unknown): DecodeResult {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: DlqReasons.notObject, detail: "message is not a JSON object" };
  }
  const version = (parsed as { schema_version?: unknown }).schema_version;
  if (typeof version === "number" && Math.trunc(version) !== SCHEMA_MAJOR) {
    return {
      ok: false,
      reason: DlqReasons.unsupportedSchemaVersion,
      detail: `schema_version ${version} is not supported (expected ${SCHEMA_MAJOR})`,
    };
  }
  if (!validateShape(parsed)) {
    return { ok: false, reason: DlqReasons.schemaViolation, detail: describeAjvError() };
  }
  const wire = parsed;
  if (!luhnValid(wire.card_number)) {
    return { ok: false, reason: DlqReasons.luhnInvalid, detail: "card_number fails the Luhn check" };
  }
  const amountMinor = parseAmountMinor(wire.amount);
  if (Number.isNaN(amountMinor)) {
    return {
      ok: false,
      reason: DlqReasons.badAmount,
      detail: "amount is not a decimal with at most 2 places",
    };
  }
  if (amountMinor <= 0) {
    return { ok: false, reason: DlqReasons.nonPositiveAmount, detail: "amount must be greater than 0" };
  }
  const eventTimeMs = RFC3339.test(wire.event_time) ? Date.parse(wire.event_time) : Number.NaN;
  if (Number.isNaN(eventTimeMs)) {
    return {
      ok: false,
      reason: DlqReasons.badEventTime,
      detail: "event_time is not RFC 3339 with an offset",
    };
  }
  const tx = wire as Transaction;
  tx.amountMinor = amountMinor;
  tx.eventTimeMs = eventTimeMs;
  return { ok: true, tx };
}

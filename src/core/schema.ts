/**
 * Transaction schema v1: the wire contract between the collector (or any real payment
 * source) and the processor. JSON on the wire, one object per Kafka record, key = account_id.
 *
 * The validator sits on the hot path (every record), so it is compiled once with Ajv and
 * the checks JSON Schema cannot express (Luhn, exact cents, a real calendar instant, bounds
 * relative to processing time) are written as tight loops that allocate nothing.
 *
 * Every value that reaches a window is bounded (docs/processor.md, "Validation"): one record
 * must not be able to change what other records detect (a far-future event_time would drag
 * its partition's watermark forward) nor overflow an exact integer sum.
 */
import { Ajv } from "ajv";
import { type DlqReason, DlqReasons } from "../contracts/dlq.ts";
import {
  DEFAULT_MAX_AMOUNT_MINOR,
  DEFAULT_MAX_EVENT_AGE_MS,
  DEFAULT_MAX_FUTURE_SKEW_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  SCHEMA_MAJOR,
  type Transaction,
  type TransactionWireV1,
  transactionJsonSchemaV1,
} from "../contracts/transaction.ts";
import { ConfigError } from "./errors.ts";

export type DecodeResult = { ok: true; tx: Transaction } | { ok: false; reason: DlqReason; detail: string };

/**
 * Limits of decodeTransaction / validateTransaction. Build it once (decodeOptionsFrom) and
 * pass processing time per record as the separate nowMs argument: nothing is allocated per
 * record.
 */
export interface DecodeOptions {
  /** Records larger than this are refused as `oversized`. Default 16 KiB. */
  maxMessageBytes?: number;
  /** Largest amount in minor units; above it `amount_out_of_range`. Default 1e11 (1,000,000,000.00). */
  maxAmountMinor?: number;
  /** How far event_time may be ahead of nowMs; beyond it `event_time_in_future`. Default 5 min. */
  maxFutureSkewMs?: number;
  /** How far event_time may be behind nowMs; beyond it `event_time_too_old`. Default 7 days; Infinity disables. */
  maxAgeMs?: number;
  /**
   * Processing time (epoch ms) the event_time bounds are measured from. Without it only the
   * static checks apply (tools that decode outside the processor); the processor always
   * gives it, per record, as decodeTransaction's third argument.
   */
  nowMs?: number;
}

/**
 * Upper limit of maxAmountMinor: a full window of 2048 events (the window store's default
 * cap) at this amount still sums below 2^53, so window sums stay exact; and it is far below
 * 2^51, up to which a two-decimal number converts to cents exactly (see amountMinorOf).
 */
export const MAX_AMOUNT_MINOR_LIMIT = 4e12;

const NO_OPTIONS: DecodeOptions = Object.freeze({});

/**
 * Validated, complete decode options from a config (the processor's, or any object with
 * these optional fields; missing ones take the defaults). Throws ConfigError on a value
 * that would disable a check by accident (negative, NaN, a fractional byte count).
 */
export function decodeOptionsFrom(config: {
  maxMessageBytes?: number | undefined;
  maxAmountMinor?: number | undefined;
  maxFutureSkewMs?: number | undefined;
  maxAgeMs?: number | undefined;
}): Readonly<Required<Omit<DecodeOptions, "nowMs">>> {
  const maxMessageBytes = config.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes <= 0)
    throw new ConfigError("maxMessageBytes", "must be a positive integer");
  const maxAmountMinor = config.maxAmountMinor ?? DEFAULT_MAX_AMOUNT_MINOR;
  if (!Number.isSafeInteger(maxAmountMinor) || maxAmountMinor <= 0 || maxAmountMinor > MAX_AMOUNT_MINOR_LIMIT)
    throw new ConfigError("maxAmountMinor", `must be an integer from 1 to ${MAX_AMOUNT_MINOR_LIMIT}`);
  const maxFutureSkewMs = config.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  if (!(maxFutureSkewMs >= 0)) throw new ConfigError("maxFutureSkewMs", "must be a non-negative duration");
  const maxAgeMs = config.maxAgeMs ?? DEFAULT_MAX_EVENT_AGE_MS;
  if (!(maxAgeMs > 0)) throw new ConfigError("maxAgeMs", "must be a positive duration (Infinity disables)");
  return Object.freeze({ maxMessageBytes, maxAmountMinor, maxFutureSkewMs, maxAgeMs });
}

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

/** Largest whole part whose cents are still a safe integer. */
const MAX_WHOLE = Math.floor(Number.MAX_SAFE_INTEGER / 100);

/**
 * An amount in integer minor units (cents): a safe integer; NaN when it is not a decimal
 * with at most two places; +-Infinity when it is well-formed but too large for exact cents
 * (1e308, "100000000000000000000") - so the caller can tell bad_amount from
 * amount_out_of_range. Accepts "12", "12.3", "12.34", "-5.00" and numbers with at most two
 * decimals. No float arithmetic on the string path, so "0.29" is exactly 29.
 */
function amountMinorOf(amount: string | number): number {
  if (typeof amount === "number") {
    if (Number.isNaN(amount)) return Number.NaN;
    // JSON has no Infinity literal, but "1e309" parses to it.
    if (!(Math.abs(amount) <= MAX_WHOLE))
      return amount > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    const cents = Math.round(amount * 100);
    // Exact, not a tolerance: a number written with at most two decimals is the double
    // nearest cents/100, and that division gives back the same double (for cents < 2^51,
    // far above MAX_AMOUNT_MINOR_LIMIT). 1.005 or 0.1 + 0.2 do not: money is never rounded.
    return cents / 100 === amount && Number.isSafeInteger(cents) ? cents : Number.NaN;
  }
  const n = amount.length;
  if (n === 0) return Number.NaN;
  let i = 0;
  let negative = false;
  if (amount.charCodeAt(0) === 45 /* - */) {
    negative = true;
    i = 1;
  }
  // No length cap: the message size bounds the loop, and a long run of digits is out of
  // range (below), not malformed. Beyond 2^53 `whole` is inexact, which no longer matters.
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
  if (!Number.isSafeInteger(cents)) return negative ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  return negative ? -cents : cents;
}

/**
 * Parses an amount into integer minor units (cents): always a safe integer, or NaN when it
 * is malformed or too large for exact cents. See amountMinorOf for the accepted forms.
 */
export function parseAmountMinor(amount: string | number): number {
  const cents = amountMinorOf(amount);
  return Number.isFinite(cents) ? cents : Number.NaN;
}

/** Formats minor units back to a decimal string ("1234" -> "12.34"). */
export function formatMinor(minor: number): string {
  const sign = minor < 0 ? "-" : "";
  const abs = Math.abs(minor);
  const cents = abs % 100;
  return `${sign}${(abs - cents) / 100}.${cents < 10 ? "0" : ""}${cents}`;
}

/** The digit at i, or NaN (which then fails every range check it flows into). */
function digitAt(s: string, i: number): number {
  const d = s.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : Number.NaN;
}

function twoDigits(s: string, i: number): number {
  return digitAt(s, i) * 10 + digitAt(s, i + 1);
}

/** Days since 1970-01-01 of a proleptic Gregorian date, year >= 0 (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Epoch milliseconds of an RFC 3339 date-time with an explicit offset
 * (`YYYY-MM-DDTHH:MM:SS[.fraction]Z|+hh:mm|-hh:mm`, 1-9 fraction digits, truncated to the
 * millisecond like Date.parse), or NaN. Unlike Date.parse it checks every field exactly:
 * Feb 30, hour 24, second 60 (no leap seconds: event time is epoch milliseconds), month 13,
 * offset +24:00 are all NaN, and so is any instant before 1970 (year 0000 included). One
 * pass over the characters, no allocation.
 */
export function parseEventTime(s: string): number {
  const n = s.length;
  if (
    n < 20 ||
    s.charCodeAt(4) !== 45 /* - */ ||
    s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 /* T */ ||
    s.charCodeAt(13) !== 58 /* : */ ||
    s.charCodeAt(16) !== 58
  ) {
    return Number.NaN;
  }
  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2);
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  const hour = twoDigits(s, 11);
  const minute = twoDigits(s, 14);
  const second = twoDigits(s, 17);
  // NaN fails every comparison, so one non-digit anywhere lands here.
  if (
    !(year >= 1970) ||
    !(month >= 1 && month <= 12) ||
    !(day >= 1 && day <= daysInMonth(year, month)) ||
    !(hour <= 23 && minute <= 59 && second <= 59)
  ) {
    return Number.NaN;
  }
  let i = 19;
  let ms = 0;
  if (s.charCodeAt(i) === 46 /* . */) {
    const start = ++i;
    for (; i < n && i - start < 9; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      if (i - start < 3) ms = ms * 10 + d;
    }
    const digits = i - start;
    if (digits === 0) return Number.NaN;
    if (digits === 1) ms *= 100;
    else if (digits === 2) ms *= 10;
  }
  let offsetMinutes = 0;
  const sign = s.charCodeAt(i);
  if (sign === 90 /* Z */) {
    if (i + 1 !== n) return Number.NaN;
  } else if (sign === 43 /* + */ || sign === 45 /* - */) {
    if (i + 6 !== n || s.charCodeAt(i + 3) !== 58) return Number.NaN;
    const oh = twoDigits(s, i + 1);
    const om = twoDigits(s, i + 4);
    if (!(oh <= 23 && om <= 59)) return Number.NaN;
    offsetMinutes = sign === 43 ? oh * 60 + om : -(oh * 60 + om);
  } else {
    return Number.NaN;
  }
  const t =
    daysFromCivil(year, month, day) * 86_400_000 +
    ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 +
    ms;
  // 1970-01-01T00:30:00+01:00 is still 1969 as an instant.
  return t >= 0 ? t : Number.NaN;
}

/** A card number no issuer can have: BIN 000000 (the all-zero number passes Luhn). */
function binAllZero(digits: string): boolean {
  for (let i = 0; i < 6; i++) if (digits.charCodeAt(i) !== 48) return false;
  return true;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function describeAjvError(): string {
  const e = validateShape.errors?.[0];
  if (!e) return "schema violation";
  if (e.keyword === "required")
    return `missing field ${(e.params as { missingProperty: string }).missingProperty}`;
  const field = e.instancePath.replace(/^\//, "") || "(root)";
  return `${field} ${e.message ?? "is invalid"}`;
}

/** V8's JSON.parse messages that carry a position and no input text ("... in JSON at position 31 (line 1 column 32)"). */
const JSON_POSITION_ONLY = /^[^"\d]* at position \d+(?: \(line \d+ column \d+\))?$/;
/** V8's "Unexpected token 'x', ..."<input excerpt>"... is not valid JSON" (the excerpt is up to 10 characters either side). */
const JSON_TOKEN_EXCERPT =
  /^Unexpected token '[\s\S]{1,2}', (\.\.\.)?"([\s\S]*)"(\.\.\.)? is not valid JSON$/;
/** Characters V8 quotes either side of an unexpected token; an input under 2 x 10 + 1 characters is quoted whole. */
const V8_JSON_CONTEXT = 10;

/**
 * The bad_json detail: what is wrong and where, never input text. V8's messages quote up to
 * 10 characters either side of an unexpected token (the whole input under 21 characters),
 * which for a record cut or corrupted inside card_number is up to 9 digits past the BIN. The
 * position is kept (recomputed from the excerpt's place when V8 gives an excerpt instead);
 * anything else V8 may say is reduced to the input's length.
 */
function badJsonDetail(message: string, text: string): string {
  if (message === "Unexpected end of JSON input" || JSON_POSITION_ONLY.test(message)) return message;
  const m = JSON_TOKEN_EXCERPT.exec(message);
  if (m) {
    const [, before, excerpt = "", after] = m;
    // V8 cuts the excerpt at [pos - 10, pos + 10): its start or its end pins the position;
    // in the middle of a long input its first occurrence does.
    let pos = -1;
    if (!before && after) pos = excerpt.length - V8_JSON_CONTEXT;
    else if (before && !after) pos = text.length - excerpt.length + V8_JSON_CONTEXT;
    else if (before && after) {
      const at = text.indexOf(excerpt);
      if (at >= 0) pos = at + V8_JSON_CONTEXT;
    }
    if (pos >= 0) return `Unexpected token in JSON at position ${pos} (input text omitted)`;
    return `Unexpected token in JSON (input of ${text.length} characters; text omitted)`;
  }
  return `not valid JSON (input of ${text.length} characters; text omitted)`;
}

/** The UTF-8 text of bytes without copying them first (Buffer.from(uint8Array) would copy). */
function utf8(value: Uint8Array): string {
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
}

/**
 * Decodes and validates one record value. Never throws: every failure becomes a
 * machine-readable reason plus a human detail, destined for the DLQ.
 *
 * `options` is a DecodeOptions built once (a bare number is the legacy maxMessageBytes);
 * `nowMs`, the processing time of this record, overrides options.nowMs so a caller passes
 * it per record without allocating.
 */
export function decodeTransaction(
  value: Uint8Array | string,
  options: DecodeOptions | number = NO_OPTIONS,
  nowMs?: number,
): DecodeResult {
  let opts = NO_OPTIONS;
  let maxBytes: number;
  if (typeof options === "number") {
    maxBytes = options;
  } else {
    opts = options;
    maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }
  const size = typeof value === "string" ? Buffer.byteLength(value) : value.byteLength;
  if (size > maxBytes) {
    return { ok: false, reason: DlqReasons.oversized, detail: `message is ${size} bytes, limit ${maxBytes}` };
  }
  let parsed: unknown;
  const text = typeof value === "string" ? value : utf8(value);
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: DlqReasons.badJson, detail: badJsonDetail((err as Error).message, text) };
  }
  return validateTransaction(parsed, opts, nowMs);
}

/**
 * Validates an already-parsed value (generators and tests check their output with it).
 * Same options and nowMs as decodeTransaction (maxMessageBytes does not apply).
 */
export function validateTransaction(
  parsed: unknown,
  options: DecodeOptions = NO_OPTIONS,
  nowMs: number | undefined = options.nowMs,
): DecodeResult {
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
    // "amount": 1e309 parses to Infinity, which JSON Schema does not call a number; it is a
    // well-formed amount too large, like 1e308. Checked only on this failure path.
    const amount = (parsed as { amount?: unknown }).amount;
    if (amount === Number.POSITIVE_INFINITY) {
      const max = options.maxAmountMinor ?? DEFAULT_MAX_AMOUNT_MINOR;
      return {
        ok: false,
        reason: DlqReasons.amountOutOfRange,
        detail: `amount exceeds the maximum ${formatMinor(max)}`,
      };
    }
    if (amount === Number.NEGATIVE_INFINITY) {
      return { ok: false, reason: DlqReasons.nonPositiveAmount, detail: "amount must be greater than 0" };
    }
    return { ok: false, reason: DlqReasons.schemaViolation, detail: describeAjvError() };
  }
  const wire = parsed;
  if (!luhnValid(wire.card_number)) {
    return { ok: false, reason: DlqReasons.luhnInvalid, detail: "card_number fails the Luhn check" };
  }
  if (binAllZero(wire.card_number)) {
    return { ok: false, reason: DlqReasons.invalidCard, detail: "card_number has BIN 000000" };
  }
  const amountMinor = amountMinorOf(wire.amount);
  if (Number.isNaN(amountMinor)) {
    return {
      ok: false,
      reason: DlqReasons.badAmount,
      detail: "amount is not a decimal with at most 2 places",
    };
  }
  // -0, "-0.00" and -1e308 included.
  if (!(amountMinor > 0)) {
    return { ok: false, reason: DlqReasons.nonPositiveAmount, detail: "amount must be greater than 0" };
  }
  const maxAmountMinor = options.maxAmountMinor ?? DEFAULT_MAX_AMOUNT_MINOR;
  if (amountMinor > maxAmountMinor) {
    // The amount itself is not echoed: formatting 1e308 is what once wrote "NaN.NaN".
    return {
      ok: false,
      reason: DlqReasons.amountOutOfRange,
      detail: `amount exceeds the maximum ${formatMinor(maxAmountMinor)}`,
    };
  }
  const eventTimeMs = parseEventTime(wire.event_time);
  if (Number.isNaN(eventTimeMs)) {
    return {
      ok: false,
      reason: DlqReasons.badEventTime,
      detail: "event_time is not an RFC 3339 date-time with an offset on a real date from 1970 to 9999",
    };
  }
  if (nowMs !== undefined) {
    const skew = options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
    if (eventTimeMs > nowMs + skew) {
      return {
        ok: false,
        reason: DlqReasons.eventTimeInFuture,
        detail: `event_time is ${seconds(eventTimeMs - nowMs)} ahead of processing time (limit ${seconds(skew)})`,
      };
    }
    const maxAge = options.maxAgeMs ?? DEFAULT_MAX_EVENT_AGE_MS;
    if (eventTimeMs < nowMs - maxAge) {
      return {
        ok: false,
        reason: DlqReasons.eventTimeTooOld,
        detail: `event_time is ${seconds(nowMs - eventTimeMs)} behind processing time (limit ${seconds(maxAge)})`,
      };
    }
  }
  const tx = wire as Transaction;
  tx.amountMinor = amountMinor;
  tx.eventTimeMs = eventTimeMs;
  return { ok: true, tx };
}

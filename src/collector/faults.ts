/**
 * The faults the collector injects on purpose, so the pipeline's defences are exercised
 * all the time: duplicates (a valid record sent again), late and out-of-order event times,
 * and malformed records, each of which must end in the DLQ with a known reason.
 */
import { type DlqReason, DlqReasons } from "../contracts/dlq.ts";
import type { DuplicateLabel } from "../contracts/labels.ts";
import { DEFAULT_MAX_AMOUNT_MINOR, transactionJsonSchemaV1 } from "../contracts/transaction.ts";
import { ConfigError } from "../core/errors.ts";
import { formatMinor, luhnCheckDigit } from "../core/schema.ts";
import { checkRate } from "./checks.ts";
import type { GeneratedRecord } from "./generator.ts";
import type { Rng } from "./random.ts";

/** Fractions of emitted records (scenario records excluded from the denominator). */
export interface FaultRates {
  duplicate: number;
  late: number;
  outOfOrder: number;
  malformed: number;
}

export const DEFAULT_FAULT_RATES: Readonly<FaultRates> = {
  duplicate: 0.005,
  late: 0.002,
  outOfOrder: 0.005,
  malformed: 0.001,
};

export const DEFAULT_LATE_MAX_MS = 30_000;

/** Out-of-order events sit this close behind nowMs so they are never behind the 10 s watermark. */
export const OOO_MAX_AGE_MS = 7_000;
export const OOO_MIN_BACK_MS = 100;
export const OOO_MAX_BACK_MS = 3_000;

export function mergeFaultRates(base: FaultRates, update: Partial<FaultRates>): FaultRates {
  const out = { ...base };
  for (const k of ["duplicate", "late", "outOfOrder", "malformed"] as const) {
    const v = update[k];
    if (v !== undefined) out[k] = checkRate(`faultRates.${k}`, v, 1);
  }
  if (out.duplicate + out.late + out.outOfOrder + out.malformed > 1) {
    throw new ConfigError("faultRates", "the four rates must add up to at most 1");
  }
  return out;
}

// ----------------------------------------------------------------------------- duplicates

const RING_SIZE = 1024;
const RING_INTERVAL_MS = 5;

/**
 * What a duplicate resends: either the previous valid record or one from a ring sampled at
 * most every RING_INTERVAL_MS, which spans a few seconds whatever the rate while holding few
 * records (a ring of every record would keep thousands of strings alive through GC).
 */
export class ResendRing {
  #prevValue = "";
  #prevKey = "";
  #prevTxId = "";
  #prevSentAt = 0;
  readonly #value: string[] = new Array<string>(RING_SIZE).fill("");
  readonly #key: string[] = new Array<string>(RING_SIZE).fill("");
  readonly #txId: string[] = new Array<string>(RING_SIZE).fill("");
  readonly #sentAt = new Float64Array(RING_SIZE);
  #head = 0;
  #count = 0;
  #lastMs = Number.NEGATIVE_INFINITY;

  /** Nothing valid was sent yet: there is nothing to duplicate. */
  get empty(): boolean {
    return this.#prevValue === "";
  }

  remember(key: string, value: string, txId: string, now: number): void {
    this.#prevKey = key;
    this.#prevValue = value;
    this.#prevTxId = txId;
    this.#prevSentAt = now;
    if (now - this.#lastMs >= RING_INTERVAL_MS) {
      const h = this.#head;
      this.#value[h] = value;
      this.#key[h] = key;
      this.#txId[h] = txId;
      this.#sentAt[h] = now;
      this.#head = (h + 1) % RING_SIZE;
      if (this.#count < RING_SIZE) this.#count++;
      this.#lastMs = now;
    }
  }

  /** A duplicate of a remembered record, byte for byte. Call only when not empty. */
  resend(rng: Rng): GeneratedRecord {
    if (this.#count === 0 || rng.chance(0.5)) {
      return duplicateOf(this.#prevKey, this.#prevValue, this.#prevTxId, this.#prevSentAt);
    }
    const i = (this.#head + RING_SIZE - 1 - rng.below(this.#count)) % RING_SIZE;
    return duplicateOf(this.#key[i]!, this.#value[i]!, this.#txId[i]!, this.#sentAt[i]!);
  }
}

function duplicateOf(key: string, value: string, transactionId: string, sentAt: number): GeneratedRecord {
  const label: DuplicateLabel = {
    type: "duplicate",
    transaction_id: transactionId,
    original_sent_at: sentAt,
  };
  return { key, value, transactionId, kind: "duplicate", label };
}

// ----------------------------------------------------------------------------- malformed

type Malformation =
  | "truncated"
  | "not_object"
  | "missing_field"
  | "wrong_type"
  | "luhn"
  | "zero_card"
  | "negative"
  | "zero"
  | "bad_amount"
  | "huge_amount"
  | "bad_event_time"
  | "future"
  | "too_old"
  | "schema_v2"
  | "oversized";

/** Malformations and their weights (percent of malformed records; docs/collector.md has the table). */
const MALFORMATION_TABLE: readonly (readonly [Malformation, number])[] = [
  ["truncated", 12],
  ["not_object", 4],
  ["missing_field", 9],
  ["wrong_type", 10],
  ["luhn", 10],
  ["zero_card", 5],
  ["negative", 6],
  ["zero", 5],
  ["bad_amount", 6],
  ["huge_amount", 6],
  ["bad_event_time", 8],
  ["future", 5],
  ["too_old", 5],
  ["schema_v2", 4],
  ["oversized", 5],
];
const MALFORMATIONS = MALFORMATION_TABLE.map(([m]) => m);
const MALFORMATION_WEIGHTS = MALFORMATION_TABLE.map(([, w]) => w);

/**
 * How far ahead of nowMs a "future" event_time is: a terminal whose clock is on the wrong
 * time zone, 12 times the processor's default 5 min skew, so it is refused under any sane limit.
 */
export const MALFORMED_FUTURE_MS = 3_600_000;
/**
 * How far behind nowMs a "too old" event_time is: a store-and-forward batch uploaded a day
 * after the processor's default 7-day maximum age.
 */
export const MALFORMED_AGE_MS = 8 * 24 * 3_600_000;

/**
 * Turns a valid transaction into one the processor must dead-letter, and says with which
 * reason: one malformation drawn by weight, each mapped to the DLQ reason decodeTransaction
 * gives it with the processor's default limits (DEFAULT_MAX_AMOUNT_MINOR, 5 min future skew,
 * 7 days maximum age) and nowMs as processing time. Decoded with no processing time, the
 * future and too-old records are valid: those two reasons are relative to when the record
 * is processed.
 */
export class Malformer {
  readonly #maxMessageBytes: number;
  /** Reused filler for oversized records; grown, never shrunk. */
  #padding = "";

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** [value, reason, detail] for a random malformation of `valid`, emitted at nowMs. */
  corrupt(rng: Rng, valid: string, nowMs: number): [string, DlqReason, string] {
    const how = MALFORMATIONS[rng.weighted(MALFORMATION_WEIGHTS)]!;
    const tx = JSON.parse(valid) as Record<string, unknown>;
    const amount = tx.amount as string;
    const again = (): string => JSON.stringify(tx);
    switch (how) {
      case "truncated": {
        // Any proper prefix of an object is invalid JSON: the closing brace is the last byte.
        const cut = rng.int(1, valid.length - 2);
        return [valid.slice(0, cut), DlqReasons.badJson, `truncated to ${cut} of ${valid.length} characters`];
      }
      case "not_object":
        return rng.chance(0.5)
          ? [`[${valid}]`, DlqReasons.notObject, "transaction wrapped in a JSON array"]
          : [JSON.stringify(valid), DlqReasons.notObject, "transaction double-encoded as a JSON string"];
      case "missing_field": {
        const field = rng.pick(transactionJsonSchemaV1.required);
        delete tx[field];
        return [again(), DlqReasons.schemaViolation, `required field ${field} missing`];
      }
      case "wrong_type": {
        const field = rng.pick([
          "amount",
          "lat",
          "event_time",
          "merchant_category",
          "schema_version",
          "card_number",
        ]);
        const v = tx[field];
        tx[field] =
          field === "amount"
            ? true
            : field === "lat"
              ? String(v)
              : field === "event_time"
                ? Date.parse(v as string)
                : field === "schema_version"
                  ? "1"
                  : field === "card_number"
                    ? null
                    : Number(v);
        return [
          again(),
          DlqReasons.schemaViolation,
          `${field} has type ${tx[field] === null ? "null" : typeof tx[field]}`,
        ];
      }
      case "luhn": {
        const pan = tx.card_number as string;
        const last = (pan.charCodeAt(pan.length - 1) - 48 + rng.int(1, 9)) % 10;
        tx.card_number = pan.slice(0, -1) + last;
        return [again(), DlqReasons.luhnInvalid, "card_number check digit altered"];
      }
      case "zero_card": {
        // Both pass Luhn, so only the BIN check refuses them: a terminal that zero-fills the
        // PAN when the read fails, or a placeholder BIN in front of real digits (check digit
        // recomputed).
        const pan = tx.card_number as string;
        const partial = `000000${pan.slice(6, -1)}`;
        const zeroed = rng.chance(0.5) ? "0".repeat(pan.length) : partial + luhnCheckDigit(partial);
        tx.card_number = zeroed;
        return [
          again(),
          DlqReasons.invalidCard,
          zeroed === "0".repeat(pan.length) ? "card_number all zeros" : "card_number BIN 000000",
        ];
      }
      case "negative":
        tx.amount = `-${amount}`;
        return [again(), DlqReasons.nonPositiveAmount, `amount -${amount}`];
      case "zero":
        tx.amount = rng.chance(0.5) ? "0.00" : 0;
        return [again(), DlqReasons.nonPositiveAmount, `amount ${JSON.stringify(tx.amount)}`];
      case "bad_amount": {
        const bad = rng.pick([`${amount}${rng.int(1, 9)}`, amount.replace(".", ","), `USD ${amount}`]);
        tx.amount = bad;
        return [again(), DlqReasons.badAmount, `amount ${JSON.stringify(bad)}`];
      }
      case "huge_amount": {
        // 1e308 as a JSON number (an overflowed float from an upstream system), or a string
        // just over the default maximum (a cent to 1 000.00 over).
        const huge = rng.chance(0.5) ? 1e308 : formatMinor(DEFAULT_MAX_AMOUNT_MINOR + rng.int(1, 100_000));
        tx.amount = huge;
        return [again(), DlqReasons.amountOutOfRange, `amount ${JSON.stringify(huge)}`];
      }
      case "bad_event_time": {
        const t = tx.event_time as string;
        const bad = rng.pick([
          t.slice(0, -1),
          t.replace("T", " "),
          `${t.slice(0, 5)}13${t.slice(7)}`,
          // Feb 30: Date.parse would roll it over to March 1 or 2; the decoder refuses it.
          `${t.slice(0, 5)}02-30${t.slice(10)}`,
          // A database's zero date, written out instead of null.
          "0000-00-00T00:00:00Z",
        ]);
        tx.event_time = bad;
        return [again(), DlqReasons.badEventTime, `event_time ${JSON.stringify(bad)}`];
      }
      case "future":
        tx.event_time = new Date(nowMs + MALFORMED_FUTURE_MS).toISOString();
        return [again(), DlqReasons.eventTimeInFuture, "event_time 1 h ahead of the time it was sent"];
      case "too_old":
        tx.event_time = new Date(nowMs - MALFORMED_AGE_MS).toISOString();
        return [again(), DlqReasons.eventTimeTooOld, "event_time 8 days before the time it was sent"];
      case "schema_v2":
        tx.schema_version = 2;
        return [again(), DlqReasons.unsupportedSchemaVersion, "schema_version 2"];
      case "oversized": {
        const padLength = this.#maxMessageBytes - valid.length + rng.int(1, 2_048);
        if (this.#padding.length < padLength) this.#padding = "x".repeat(padLength + 4_096);
        const value = `${valid.slice(0, -1)},"memo":"${this.#padding.slice(0, padLength)}"}`;
        return [
          value,
          DlqReasons.oversized,
          `${Buffer.byteLength(value)} bytes, limit ${this.#maxMessageBytes}`,
        ];
      }
    }
  }
}

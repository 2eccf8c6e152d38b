/**
 * What the input topic holds and what the warehouse stored of it. InputTally files every
 * input record under U (first sighting of a valid transaction_id), D (a resend of an id
 * already seen) or M (invalid, by source offset and reason), decoding exactly as the
 * processor does; RowCountTally folds the warehouse's row counts per id into present,
 * missing and duplicated, and excuses the ids the warehouse refused (they are in the DLQ).
 */
import { type DecodeOptions, decodeOptionsFrom, decodeTransaction } from "../core/schema.ts";
import { bump, DEFAULT_MAX_EXAMPLES, pushExample, sourceKey } from "./tally.ts";

/** The offsets of one partition as verify saw them: [start, end) was read. */
export interface PartitionRange {
  partition: number;
  /** Log start offset when the read began (records below it were deleted by retention). */
  start: bigint;
  /** End offset listed before reading: every record below it was read. */
  end: bigint;
}

// ----------------------------------------------------------------------------- input (U, D, M)

/**
 * The processor's decode limits. Each one not given takes the processor's default (16 KiB,
 * 1,000,000,000.00, 5 min ahead, 7 days behind: src/contracts/transaction.ts), so verify
 * judges as a processor run with its defaults does.
 */
export interface InputLimits {
  maxMessageBytes?: number | undefined;
  maxAmountMinor?: number | undefined;
  maxFutureSkewMs?: number | undefined;
  maxAgeMs?: number | undefined;
}

export class InputTally {
  /** The limits decoding applies, every default filled in. */
  readonly limits: Readonly<Required<Omit<DecodeOptions, "nowMs">>>;
  /** Records read (valid + invalid). */
  records = 0;
  /** U: unique valid transaction_ids, in first-seen order. */
  readonly unique = new Set<string>();
  /** D: extra copies per resent transaction_id. */
  readonly resends = new Map<string, number>();
  /** Records that repeated an id already seen (sum of `resends`). */
  resendRecords = 0;
  /** M: invalid records, "partition:offset" → reason. */
  readonly invalid = new Map<string, string>();
  readonly invalidByReason = new Map<string, number>();
  /** What was read, per partition (set by the reader). */
  ranges: PartitionRange[] = [];

  /** A bare number is the size limit (the processor's --max-message-bytes), other limits default. */
  constructor(limits: InputLimits | number = {}) {
    // Validated like the processor's, so a limit that would disable a check is refused.
    this.limits = decodeOptionsFrom(typeof limits === "number" ? { maxMessageBytes: limits } : limits);
  }

  /**
   * Decodes one input record as the processor does and files it under U, D or M. The
   * processing time is the record's Kafka timestamp, as the processor's is (it takes its own
   * clock only when that is earlier, i.e. for a timestamp from the future), so records
   * dated too far ahead of or behind it are M (event_time_in_future, event_time_too_old),
   * expected in the DLQ, not missing rows. Returns the transaction_id when it joined U
   * (first sighting), else undefined.
   */
  add(partition: number, offset: bigint, value: Uint8Array, timestampMs: number): string | undefined {
    const res = decodeTransaction(value, this.limits, timestampMs);
    if (res.ok) return this.addValid(res.tx.transaction_id) ? res.tx.transaction_id : undefined;
    this.addInvalid(partition, offset, res.reason);
    return undefined;
  }

  /** True when the id is new to U; false for a resend. */
  addValid(transactionId: string): boolean {
    this.records++;
    const before = this.unique.size;
    this.unique.add(transactionId);
    if (this.unique.size > before) return true;
    bump(this.resends, transactionId);
    this.resendRecords++;
    return false;
  }

  addInvalid(partition: number, offset: bigint, reason: string): void {
    this.records++;
    this.invalid.set(sourceKey(partition, offset), reason);
    bump(this.invalidByReason, reason);
  }

  /** Where in this read (partition, offset) falls: before the log start, inside, or after the end. */
  locate(partition: number, offset: bigint): "inside" | "before" | "after" | "unknown" {
    const r = this.ranges.find((x) => x.partition === partition);
    if (!r) return "unknown";
    if (offset < r.start) return "before";
    if (offset >= r.end) return "after";
    return "inside";
  }
}

// ----------------------------------------------------------------------------- warehouse rows

export interface RowCountResult {
  expected: number;
  present: number;
  missing: number;
  /** ids not stored because the warehouse refused them; dead-lettered (see settle). */
  refused: number;
  /** ids stored more than once (only possible where the key is not enforced). */
  duplicated: number;
  /** rows beyond the first, summed over duplicated ids. */
  extraRows: number;
  missingExamples: string[];
  duplicateExamples: { id: string; rows: number }[];
}

/** Folds per-chunk row counts (from Warehouse.countByKey) into present / missing / duplicated. */
export class RowCountTally {
  readonly #max: number;
  readonly result: RowCountResult = {
    expected: 0,
    present: 0,
    missing: 0,
    refused: 0,
    duplicated: 0,
    extraRows: 0,
    missingExamples: [],
    duplicateExamples: [],
  };

  constructor(maxExamples: number = DEFAULT_MAX_EXAMPLES) {
    this.#max = maxExamples;
  }

  /** Every missing id (a clean run has none), so ones the warehouse refused can be excused. */
  readonly #missing: string[] = [];

  addChunk(ids: readonly string[], counts: ReadonlyMap<string, number>): void {
    const r = this.result;
    for (const id of ids) {
      r.expected++;
      const n = counts.get(id) ?? 0;
      if (n === 0) {
        r.missing++;
        this.#missing.push(id);
        pushExample(r.missingExamples, id, this.#max);
        continue;
      }
      r.present++;
      if (n > 1) {
        r.duplicated++;
        r.extraRows += n - 1;
        pushExample(r.duplicateExamples, { id, rows: n }, this.#max);
      }
    }
  }

  /**
   * Settles the missing ids: those the processor dead-lettered because the warehouse refused
   * them are not lost (they are in the DLQ, with the reason, for an operator to act on) and
   * are counted apart; the rest are missing. Call once, after the last chunk.
   */
  settle(refusedByWarehouse: ReadonlySet<string>): void {
    if (refusedByWarehouse.size === 0) return;
    const r = this.result;
    r.missingExamples = [];
    for (const id of this.#missing) {
      if (refusedByWarehouse.has(id)) {
        r.missing--;
        r.refused++;
      } else pushExample(r.missingExamples, id, this.#max);
    }
  }
}

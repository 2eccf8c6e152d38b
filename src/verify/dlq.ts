/**
 * The dead-letter side of verify: every invalid input record (M) must be in the DLQ with its
 * reason, and nothing valid may be there. DLQ records are matched to input records by their
 * source_partition / source_offset headers; records the warehouse refused are set apart and
 * judged with the rows they stand for.
 */
import type { InputTally } from "./rows.ts";
import { bump, DEFAULT_MAX_EXAMPLES, pushExample, sourceKey } from "./tally.ts";

interface DlqEntry {
  reasons: Set<string>;
  copies: number;
}

/** DLQ records whose source_topic is the input topic, by (source_partition, source_offset). */
export class DlqTally {
  readonly inputTopic: string;
  records = 0;
  /** DLQ records of other input topics (other runs or pipelines): ignored. */
  otherTopics = 0;
  /** Records of the input topic without usable source_partition / source_offset headers. */
  unattributed = 0;
  readonly entries = new Map<string, DlqEntry>();
  /** transaction_ids of valid rows the warehouse refused for good (reason warehouse_rejected). */
  readonly refusedTransactions = new Set<string>();
  /** alert_ids of alerts the warehouse refused for good. */
  readonly refusedAlerts = new Set<string>();

  constructor(inputTopic: string) {
    this.inputTopic = inputTopic;
  }

  /** One DLQ record's headers (as the processor writes them, see docs/processor.md). */
  add(headers: ReadonlyMap<string, string>): void {
    this.records++;
    if (headers.get("source_topic") !== this.inputTopic) {
      this.otherTopics++;
      return;
    }
    const p = headers.get("source_partition");
    const o = headers.get("source_offset");
    if (p === undefined || o === undefined || !/^\d+$/.test(p) || !/^\d+$/.test(o)) {
      this.unattributed++;
      return;
    }
    const reason = headers.get("reason") ?? "";
    if (reason === "warehouse_rejected") {
      // A valid record the warehouse would not take: judged with the rows, not with M.
      const tx = headers.get("transaction_id");
      const alert = headers.get("alert_id");
      if (tx) this.refusedTransactions.add(tx);
      else if (alert) this.refusedAlerts.add(alert);
      else this.unattributed++;
      return;
    }
    const key = sourceKey(p, BigInt(o));
    const e = this.entries.get(key);
    if (e) {
      e.copies++;
      e.reasons.add(reason);
    } else {
      this.entries.set(key, { reasons: new Set([reason]), copies: 1 });
    }
  }
}

export interface DlqResult {
  /** Per reason: invalid input records (M), and how many of them are in the DLQ with that reason. */
  byReason: { reason: string; expected: number; found: number }[];
  /** Invalid input records with no DLQ entry at all. */
  missing: number;
  /** Invalid input records whose DLQ entry gives another reason. */
  wrongReason: number;
  /** DLQ entries naming an input record that is valid (or not a record verify read). */
  unexpected: number;
  /** DLQ records beyond the first for the same source record (a replay re-sent them). */
  resends: number;
  /** DLQ entries for offsets past the end snapshot (produced after verify listed the offsets). */
  afterSnapshot: number;
  /** DLQ entries for offsets below the log start (their input record was deleted by retention). */
  beforeStart: number;
  otherTopics: number;
  unattributed: number;
  missingExamples: string[];
  wrongReasonExamples: string[];
  unexpectedExamples: string[];
}

export function reconcileDlq(
  input: InputTally,
  dlq: DlqTally,
  maxExamples = DEFAULT_MAX_EXAMPLES,
): DlqResult {
  const found = new Map<string, number>();
  const r: DlqResult = {
    byReason: [],
    missing: 0,
    wrongReason: 0,
    unexpected: 0,
    resends: 0,
    afterSnapshot: 0,
    beforeStart: 0,
    otherTopics: dlq.otherTopics,
    unattributed: dlq.unattributed,
    missingExamples: [],
    wrongReasonExamples: [],
    unexpectedExamples: [],
  };
  for (const [key, reason] of input.invalid) {
    const e = dlq.entries.get(key);
    if (!e) {
      r.missing++;
      pushExample(r.missingExamples, `${key} ${reason}`, maxExamples);
    } else if (e.reasons.has(reason)) {
      bump(found, reason);
    } else {
      r.wrongReason++;
      pushExample(
        r.wrongReasonExamples,
        `${key} expected ${reason}, DLQ says ${[...e.reasons].join("|")}`,
        maxExamples,
      );
    }
  }
  for (const [key, e] of dlq.entries) {
    r.resends += e.copies - 1;
    if (input.invalid.has(key)) continue;
    const [p, o] = key.split(":") as [string, string];
    const where = input.locate(Number(p), BigInt(o));
    if (where === "after") r.afterSnapshot++;
    else if (where === "before") r.beforeStart++;
    else {
      r.unexpected++;
      pushExample(r.unexpectedExamples, `${key} ${[...e.reasons].join("|")}`, maxExamples);
    }
  }
  const reasons = new Set([...input.invalidByReason.keys(), ...found.keys()]);
  for (const reason of [...reasons].sort()) {
    r.byReason.push({
      reason,
      expected: input.invalidByReason.get(reason) ?? 0,
      found: found.get(reason) ?? 0,
    });
  }
  return r;
}

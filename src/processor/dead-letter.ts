/**
 * Dead-lettering: the DLQ record of a refused input record, and warehouse writes that route
 * the rows the warehouse refuses for good to the DLQ instead of stopping the partition.
 * Value shape and header names are the DLQ contract (src/contracts/dlq.ts); docs/processor.md, "DLQ".
 */
import type { Alert } from "../contracts/alert.ts";
import { alertToJson } from "../contracts/alert.ts";
import {
  DLQ_RAW_MAX_BYTES,
  DLQ_VALUE_VERSION,
  DlqHeaders,
  type DlqProjection,
  DlqRawHeaders,
  DlqReasons,
} from "../contracts/dlq.ts";
import type { InRecord, OutRecord } from "../contracts/ports.ts";
import type { DlqKey } from "../core/dlq-crypto.ts";
import { type DlqMasker, projectRecord, scrubDetail } from "../core/dlq-projection.ts";
import { ErrorCodes, isPaystreamError } from "../core/errors.ts";
import { scrubText } from "../core/pii-scrub.ts";
import type { Logger } from "../lib/log.ts";
import type { ProcessorMetrics } from "./metrics.ts";

/** The DLQ reason of a valid row (or alert) the warehouse refuses for good. */
export const WAREHOUSE_REJECTED = "warehouse_rejected";

/**
 * Builds DLQ records: the masked projection as the value (core/dlq-projection.ts), the
 * original key and bytes sealed with the DLQ key in the raw_enc header when a key is
 * configured (core/dlq-crypto.ts), and where the record came from and why in the headers.
 * Without a key no copy of the original is kept anywhere.
 */
export class DeadLetters {
  readonly topic: string;
  readonly #masker: DlqMasker;
  readonly #key: DlqKey | undefined;

  constructor(topic: string, masker: DlqMasker, key: DlqKey | undefined) {
    this.topic = topic;
    this.#masker = masker;
    this.#key = key;
  }

  /** Whether originals are kept (sealed) for redrive. */
  get keepsRaw(): boolean {
    return this.#key !== undefined;
  }

  /** The DLQ record of `r`, refused for `reason`. */
  record(r: InRecord, reason: string, detail: string): OutRecord {
    const p = projectRecord(r.value, this.#masker, { asText: reason === DlqReasons.oversized });
    const { cards, ...projected } = p;
    const headers = this.#headers(r, reason, detail, cards);
    let raw: Pick<DlqProjection, "raw_encrypted" | "raw_omitted">;
    if (!this.#key) raw = { raw_encrypted: false, raw_omitted: "no_key" };
    else if (r.value.byteLength > DLQ_RAW_MAX_BYTES) raw = { raw_encrypted: false, raw_omitted: "too_large" };
    else {
      headers[DlqRawHeaders.rawEnc] = this.#key.seal(
        { key: r.key, value: r.value },
        { sourceTopic: r.topic, sourcePartition: r.partition, sourceOffset: r.offset },
      );
      headers[DlqRawHeaders.rawKeyId] = this.#key.id;
      raw = { raw_encrypted: true };
    }
    const value: DlqProjection = { ...projected, ...raw };
    return { topic: this.topic, ...this.#keyOf(r), value: JSON.stringify(value), headers };
  }

  /**
   * The DLQ record of an alert the warehouse refused: the alert's own JSON (it holds only a
   * masked card), not the transaction that raised it. Alerts are raised again by
   * re-processing, never redriven, so no original is sealed.
   */
  alert(r: InRecord, alert: Alert, detail: string): OutRecord {
    const json = alertToJson(alert);
    const value: DlqProjection = {
      dlq_value: DLQ_VALUE_VERSION,
      format: "alert",
      masked: JSON.parse(json) as Record<string, unknown>,
      masked_fields: [],
      redactions: 0,
      truncated: false,
      original_bytes: Buffer.byteLength(json),
      raw_encrypted: false,
      raw_omitted: "not_redrivable",
    };
    const headers = this.#headers(r, WAREHOUSE_REJECTED, detail, 0);
    headers[DlqHeaders.alertId] = alert.alertId;
    return { topic: this.topic, ...this.#keyOf(r), value: JSON.stringify(value), headers };
  }

  /** The Kafka key (an account id) scrubbed like any other text: a producer controls it. */
  #keyOf(r: InRecord): { key?: string } {
    return r.key === undefined ? {} : { key: scrubText(r.key).text };
  }

  #headers(r: InRecord, reason: string, detail: string, cards: number): Record<string, string> {
    const why = scrubDetail(reason, detail, this.#masker);
    return {
      [DlqHeaders.reason]: reason,
      [DlqHeaders.detail]: why.text,
      [DlqHeaders.sourceTopic]: r.topic,
      [DlqHeaders.sourcePartition]: String(r.partition),
      [DlqHeaders.sourceOffset]: r.offset.toString(),
      [DlqHeaders.sourceTimestamp]: String(r.timestamp),
      [DlqHeaders.pansRedacted]: String(cards + why.cards),
    };
  }
}

/** Which items a warehouse write holds: the key of each in the refusal's details, and in the DLQ header. */
export type Refusable = "transactionIds" | "alertIds";

export interface DeadLetterDeps {
  letters: DeadLetters;
  /** Produces DLQ records, retried until durable. */
  send: (records: OutRecord[]) => Promise<void>;
  metrics: ProcessorMetrics;
  log: Logger;
  /** Called with the number of items dead-lettered (the processor's totals). */
  onDeadLettered: (count: number) => void;
}

/**
 * Writes items to the warehouse; items the warehouse refuses for good (PS_WAREHOUSE_REJECTED)
 * go to the DLQ with the reason and the rest is written again, so one bad row neither stops
 * the partition nor loops forever. The sink names the refused items when it can; when it
 * cannot (a constraint it does not know, e.g. one an operator added), the batch is split in
 * halves until the refused items stand alone: log2(batch) extra writes, only on rejection.
 * records[i] is the input record items[i] came from.
 */
export async function writeOrDeadLetter<T>(
  deps: DeadLetterDeps,
  items: T[],
  records: InRecord[],
  kind: Refusable,
  keyOf: (item: T) => string,
  write: (items: T[]) => Promise<void>,
): Promise<void> {
  while (items.length > 0) {
    try {
      await write(items);
      return;
    } catch (err) {
      if (!isPaystreamError(err) || err.code !== ErrorCodes.WAREHOUSE_REJECTED) throw err;
      const named = err.details[kind];
      const refused = new Set(Array.isArray(named) ? (named as string[]) : []);
      if (items.length === 1) refused.add(keyOf(items[0]!));
      else if (!items.some((it) => refused.has(keyOf(it)))) {
        const half = items.length >>> 1;
        await writeOrDeadLetter(deps, items.slice(0, half), records.slice(0, half), kind, keyOf, write);
        await writeOrDeadLetter(deps, items.slice(half), records.slice(half), kind, keyOf, write);
        return;
      }
      const keep: T[] = [];
      const keepRecords: InRecord[] = [];
      const dead: OutRecord[] = [];
      for (let i = 0; i < items.length; i++) {
        const key = keyOf(items[i]!);
        if (!refused.has(key)) {
          keep.push(items[i]!);
          keepRecords.push(records[i]!);
          continue;
        }
        if (kind === "alertIds") {
          dead.push(deps.letters.alert(records[i]!, items[i] as Alert, err.message));
        } else {
          const dlq = deps.letters.record(records[i]!, WAREHOUSE_REJECTED, err.message);
          dlq.headers![DlqHeaders.transactionId] = scrubText(key).text;
          dead.push(dlq);
        }
      }
      await deps.send(dead);
      deps.metrics.dlq.inc({ reason: WAREHOUSE_REJECTED }, dead.length);
      deps.onDeadLettered(dead.length);
      deps.log.warn(
        { refused: dead.length, [kind]: [...refused].slice(0, 10), err: err.message },
        "warehouse refused rows: dead-lettered, writing the rest",
      );
      items = keep;
      records = keepRecords;
    }
  }
}

/**
 * `paystream dlq` on real services: the DLQ topic read through the TopicReader port (Kafka's,
 * a throw-away reader group, so no processor offset moves) and, for redrive, a KafkaSink
 * producing back to the input topics. Tests hand in their own reader and sink (the embedded
 * log's) and run the same code. The logic is src/processor/dlq-entries.ts and dlq-redrive.ts.
 */
import { KafkaSink } from "../adapters/kafka/log.ts";
import { KafkaTopicReader } from "../adapters/kafka/reader.ts";
import type { RecordSink, TopicReader } from "../contracts/ports.ts";
import { DlqKey, DlqKeyring, parseDlqKeyHex } from "../core/dlq-crypto.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import {
  type DlqEntry,
  type EntryFilter,
  parseEntryId,
  type ReadEntriesResult,
  readEntries,
} from "../processor/dlq-entries.ts";
import { type RedriveOptions, type RedriveReport, redrive } from "../processor/dlq-redrive.ts";

export interface DlqSpec {
  brokers: string[];
  dlqTopic: string;
  timeoutMs: number;
  clientId?: string;
  /** Read through this instead of Kafka (tests: the embedded log's reader). */
  reader?: TopicReader;
}

function readerOf(spec: DlqSpec): TopicReader {
  return (
    spec.reader ?? new KafkaTopicReader({ brokers: spec.brokers, clientId: spec.clientId ?? "paystream-dlq" })
  );
}

function missingTopic(spec: DlqSpec): PaystreamError {
  return new PaystreamError(
    ErrorCodes.CONFIG_INVALID,
    `DLQ topic ${spec.dlqTopic} does not exist on ${spec.reader ? "this log" : spec.brokers.join(",")} (see --dlq-topic)`,
    { details: { topic: spec.dlqTopic } },
  );
}

/** The newest `limit` entries matching `filter`, oldest first. */
export async function listDlq(spec: DlqSpec, filter: EntryFilter, limit: number): Promise<ReadEntriesResult> {
  const res = await readEntries(readerOf(spec), spec.dlqTopic, filter, { limit, timeoutMs: spec.timeoutMs });
  if (!res.exists) throw missingTopic(spec);
  return res;
}

/** One entry by its address ("partition:offset" in the DLQ topic), or undefined. */
export async function showDlq(spec: DlqSpec, id: string): Promise<DlqEntry | undefined> {
  const at = parseEntryId(id);
  if (!at)
    throw new PaystreamError(ErrorCodes.CONFIG_INVALID, `"${id}" is not partition:offset (e.g. 3:1207)`);
  const res = await listDlq(spec, { ids: new Set([`${at.partition}:${at.offset}`]) }, 1);
  return res.entries[0];
}

export interface DlqKeys {
  /** The current key (64 hex digits) and its id, as the processor has them. */
  key: string | undefined;
  keyId: string | undefined;
  /** Keys rotated out: "[id=]<64 hex digits>". */
  previous: readonly string[] | undefined;
}

/**
 * The keys a redrive may open sealed originals with. No key at all is an error that says
 * where the key comes from: without it nothing can be redriven.
 */
export function dlqKeyring(keys: DlqKeys): DlqKeyring {
  const list: DlqKey[] = [];
  if (keys.key) list.push(new DlqKey(parseDlqKeyHex(keys.key), keys.keyId));
  for (const entry of keys.previous ?? []) {
    const eq = entry.indexOf("=");
    const hex = eq < 0 ? entry : entry.slice(eq + 1);
    const bytes = parseDlqKeyHex(hex, "dlq.previousKeys");
    list.push(eq < 0 ? new DlqKey(bytes) : new DlqKey(bytes, entry.slice(0, eq)));
  }
  if (list.length === 0) {
    throw new PaystreamError(
      ErrorCodes.SECRET_MISSING,
      "redrive needs the DLQ key the processor seals originals with: set PAYSTREAM_DLQ_KEY (or --dlq-key) from the same secret, " +
        "and PAYSTREAM_DLQ_PREVIOUS_KEYS for keys rotated out",
    );
  }
  return new DlqKeyring(list);
}

export interface RedriveSpec extends DlqSpec, Omit<RedriveOptions, "dlqTopic" | "timeoutMs"> {
  keys: DlqKeys;
  /** Produce through this instead of a new Kafka producer (tests: the embedded log's sink). */
  sink?: RecordSink;
}

const DRY_RUN_SINK: RecordSink = {
  send: async (records) => {
    if (records.length > 0) throw new Error("dry run: nothing may be produced");
  },
  close: async () => {},
};

/** Redrives the selected entries (src/processor/dlq-redrive.ts); the key is checked before anything is read. */
export async function redriveDlq(spec: RedriveSpec): Promise<RedriveReport> {
  const keyring = dlqKeyring(spec.keys);
  const reader = readerOf(spec);
  if (!(await reader.existingTopics([spec.dlqTopic])).has(spec.dlqTopic)) throw missingTopic(spec);
  // A dry run opens no producer at all.
  const sink =
    spec.sink ??
    (spec.dryRun
      ? DRY_RUN_SINK
      : new KafkaSink({ brokers: spec.brokers, clientId: spec.clientId ?? "paystream-dlq-redrive" }));
  try {
    return await redrive(
      { reader, sink, keyring },
      {
        dlqTopic: spec.dlqTopic,
        filter: spec.filter,
        limit: spec.limit,
        dryRun: spec.dryRun,
        decode: spec.decode,
        dedupTtlMs: spec.dedupTtlMs,
        timeoutMs: spec.timeoutMs,
      },
    );
  } finally {
    if (!spec.sink) await sink.close().catch(() => {});
  }
}

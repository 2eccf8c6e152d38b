/**
 * Reads a bounded offset range of one partition outside the consumer group's stream, for
 * state recovery: when a replica gains a partition it re-reads the window + lateness span
 * before the committed offset to rebuild that partition's windows, then the group stream
 * continues from the committed offset. Kafka itself is the checkpoint; no external store.
 *
 * Uses plain Fetch and ListOffsets requests (the client's `fetch` and `listOffsets*`), which
 * do not touch group membership or the stream's fetch position.
 */
import { ProtocolError } from "@platformatic/kafka";
import type { InRecord } from "../../contracts/ports.ts";
import type { RawConsumer } from "./client.ts";

const PARTITION_MAX_BYTES = 4 * 1024 * 1024;

function protocolError(code: number): Error | undefined {
  try {
    return new ProtocolError(code);
  } catch {
    return undefined; // a code newer than the client's table
  }
}

export interface ReplayRange {
  /** First offset to replay (inclusive). */
  from: bigint;
  /** The committed offset: replay stops before it. */
  to: bigint;
}

/**
 * The range to replay for a partition: from the first record appended within `spanMs`
 * before the last committed record, up to the committed offset. Undefined when the group
 * has no committed offset for the partition (a first start: nothing to rebuild).
 */
export async function recoveryRange(
  consumer: RawConsumer,
  topic: string,
  partition: number,
  spanMs: number,
  until = 0n,
): Promise<ReplayRange | undefined> {
  const committed = await consumer.listCommittedOffsets({ topics: [{ topic, partitions: [partition] }] });
  const c = committed.get(topic)?.[partition] ?? -1n;
  // Up to the committed offset, or further when this replica already processed further.
  const to = c > until ? c : until;
  if (to <= 0n) return undefined;
  let lastTimestamp: number | undefined;
  await readRange(consumer, topic, partition, to - 1n, to, (recs) => {
    lastTimestamp = recs.at(-1)?.timestamp;
  });
  if (lastTimestamp === undefined) return undefined;
  const found = await consumer.listOffsetsWithTimestamps({
    topics: [topic],
    partitions: { [topic]: [partition] },
    timestamp: BigInt(lastTimestamp - spanMs),
  });
  const from = found.get(topic)?.get(partition)?.offset ?? -1n;
  if (from < 0n || from >= to) return { from: to, to };
  return { from, to };
}

/** Fetches [from, to) of a partition, handing records over one fetch response at a time. */
export async function readRange(
  consumer: RawConsumer,
  topic: string,
  partition: number,
  from: bigint,
  to: bigint,
  onRecords: (records: InRecord[]) => void,
): Promise<number> {
  let offset = from;
  let total = 0;
  while (offset < to) {
    const meta = await consumer.metadata({ topics: [topic] });
    const t = meta.topics.get(topic);
    const p = t?.partitions[partition];
    if (!t || !p) throw new Error(`replay: partition ${topic}/${partition} not found`);
    const res = await consumer.fetch({
      node: p.leader,
      maxWaitTime: 0,
      minBytes: 1,
      maxBytes: PARTITION_MAX_BYTES,
      topics: [
        {
          topicId: t.id,
          partitions: [
            {
              partition,
              currentLeaderEpoch: p.leaderEpoch,
              fetchOffset: offset,
              lastFetchedEpoch: -1,
              partitionMaxBytes: PARTITION_MAX_BYTES,
            },
          ],
        },
      ],
    });
    const part = res.responses[0]?.partitions[0];
    if (!part) break;
    // The client's own error for the code, so that callers can tell final from passing.
    if (part.errorCode !== 0)
      throw new Error(`replay fetch of ${topic}/${partition} failed: error ${part.errorCode}`, {
        cause: protocolError(part.errorCode),
      });
    // Records before the log start were deleted by retention: start from what exists.
    if (offset < part.logStartOffset) offset = part.logStartOffset;
    const out: InRecord[] = [];
    let next = offset;
    for (const batch of part.records ?? []) {
      for (const r of batch.records) {
        const o = batch.firstOffset + BigInt(r.offsetDelta);
        if (o < offset || o >= to) continue;
        out.push({
          topic,
          partition,
          offset: o,
          key: r.key?.toString(),
          value: r.value ?? Buffer.alloc(0),
          timestamp: Number(batch.firstTimestamp + r.timestampDelta),
        });
      }
      next = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
    }
    if (next <= offset) break; // nothing more below the high watermark
    offset = next;
    total += out.length;
    if (out.length) onRecords(out);
  }
  return total;
}

/**
 * Topics and consumer groups of one benchmark run: created fresh, named after the run id,
 * deleted afterwards (also on Ctrl-C, through deferCleanup), so runs never share data with
 * each other or with anyone working on the same broker.
 */
import { createAdmin, type KafkaConnection, waitForLeaders } from "../../src/adapters/kafka/client.ts";
import { TopicLayout, Topics } from "../../src/contracts/topics.ts";
import { deferCleanup } from "./proc.ts";

/** One run's stand-ins for the four payments.* topics. */
export interface RunTopics {
  transactions: string;
  labels: string;
  dlq: string;
  alerts: string;
}

/** BENCH_TOPIC_MAP for guarded-main.ts: each shared topic to the run's own. */
export function topicMap(t: RunTopics): Record<string, string> {
  return {
    [Topics.transactions]: t.transactions,
    [Topics.labels]: t.labels,
    [Topics.dlq]: t.dlq,
    [Topics.alerts]: t.alerts,
  };
}

export class BenchKafka {
  readonly conn: KafkaConnection;
  readonly #topics = new Set<string>();
  readonly #groups = new Set<string>();
  readonly #unregister: () => void;

  constructor(brokers: string[], runId: string) {
    this.conn = { brokers, clientId: `paystream-bench-${runId}` };
    this.#unregister = deferCleanup(() => this.cleanup());
  }

  async createTopic(name: string, partitions: number): Promise<string> {
    const admin = createAdmin(this.conn);
    try {
      this.#topics.add(name);
      await admin.createTopics({ topics: [{ topic: name, partitions, replicas: 1 }] });
      // The first produce to a new topic can race its leader election.
      await waitForLeaders(admin, [name]);
    } finally {
      await admin.close().catch(() => {});
    }
    return name;
  }

  /** Fresh copies of the four topics, with the partition counts of the real ones. */
  async createRunTopics(prefix: string): Promise<RunTopics> {
    const make = (suffix: string, real: keyof typeof TopicLayout) =>
      this.createTopic(`${prefix}-${suffix}`, TopicLayout[real].partitions);
    return {
      transactions: await make("tx", Topics.transactions),
      labels: await make("labels", Topics.labels),
      dlq: await make("dlq", Topics.dlq),
      alerts: await make("alerts", Topics.alerts),
    };
  }

  async deleteRunTopics(t: RunTopics): Promise<void> {
    for (const name of Object.values(t)) await this.deleteTopic(name);
  }

  /** A group name to hand to a processor; deleted with the topics. */
  group(name: string): string {
    this.#groups.add(name);
    return name;
  }

  /** Sum of the log-end offsets: how many records the topic holds (nothing is ever deleted mid-run). */
  async endOffsets(topic: string): Promise<bigint[]> {
    const admin = createAdmin(this.conn);
    try {
      const meta = await admin.metadata({ topics: [topic] });
      const n = meta.topics.get(topic)?.partitionsCount ?? 0;
      const res = await admin.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: n }, (_, i) => ({ partitionIndex: i, timestamp: -1n })),
          },
        ],
      });
      const out = new Array<bigint>(n).fill(0n);
      for (const p of res[0]?.partitions ?? []) out[p.partitionIndex] = p.offset;
      return out;
    } finally {
      await admin.close().catch(() => {});
    }
  }

  async recordCount(topic: string): Promise<number> {
    return Number((await this.endOffsets(topic)).reduce((a, b) => a + b, 0n));
  }

  /** Records between the group's committed offsets and the log end (uncommitted partitions count in full). */
  async lag(group: string, topic: string): Promise<number> {
    const ends = await this.endOffsets(topic);
    const admin = createAdmin(this.conn);
    try {
      const res = await admin.listConsumerGroupOffsets({ groups: [group] });
      const committed = new Map<number, bigint>();
      for (const t of res[0]?.topics ?? []) {
        if (t.name !== topic) continue;
        for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
      }
      let lag = 0n;
      ends.forEach((end, p) => {
        const c = committed.get(p) ?? -1n;
        lag += c < 0n ? end : end - c;
      });
      return Number(lag);
    } finally {
      await admin.close().catch(() => {});
    }
  }

  async deleteTopic(name: string): Promise<void> {
    const admin = createAdmin(this.conn);
    try {
      await admin.deleteTopics({ topics: [name] });
      this.#topics.delete(name);
    } catch {
      // Deleted already, or the broker is down: cleanup() tries again at the end.
    } finally {
      await admin.close().catch(() => {});
    }
  }

  async cleanup(): Promise<void> {
    const admin = createAdmin(this.conn);
    try {
      // One request per name: a name already gone must not keep the others alive.
      for (const g of this.#groups) await admin.deleteGroups({ groups: [g] }).catch(() => {});
      this.#groups.clear();
      for (const t of this.#topics) await admin.deleteTopics({ topics: [t] }).catch(() => {});
      this.#topics.clear();
    } finally {
      await admin.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.cleanup();
    this.#unregister();
  }
}

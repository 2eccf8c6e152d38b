/**
 * A 3-broker KRaft cluster of the test's own (addresses in cluster-env.ts, which the test
 * imports first), started and stopped through scripts/services.sh with its own state dir and
 * ports, so it runs beside the default single broker that other tests use; and what a
 * failover test asks of it: who leads what, who coordinates a group, when every replica is
 * back in sync, and a timeline of what the pipeline's services said meanwhile.
 */
import { rmSync } from "node:fs";
import { createAdmin, type KafkaConnection } from "../../src/adapters/kafka/client.ts";
import { CLUSTER_CONTROLLER_PORT, CLUSTER_NODES, CLUSTER_PORT, clusterBrokers } from "./cluster-env.ts";
import { waitFor } from "./fixtures.ts";
import { getJson, serviceCtl } from "./processes.ts";

const STATE = process.env.PAYSTREAM_TEST_CLUSTER_DIR ?? "/var/tmp/paystream-test-cluster";

export const clusterConn: KafkaConnection = { brokers: clusterBrokers, clientId: "paystream-it-cluster" };

/** scripts/services.sh on the test's cluster; returns its output. */
export function clusterCtl(action: "start-one" | "stop-one" | "kill-one", name: string): string {
  return serviceCtl(action, name, {
    args: ["--kafka-brokers", String(CLUSTER_NODES)],
    env: {
      PAYSTREAM_SERVICES_DIR: STATE,
      PAYSTREAM_KAFKA_PORT: String(CLUSTER_PORT),
      PAYSTREAM_KAFKA_CONTROLLER_PORT: String(CLUSTER_CONTROLLER_PORT),
    },
  });
}

/** Stops every node and removes the cluster's data (the next run formats a new one). */
export function removeCluster(): void {
  try {
    clusterCtl("stop-one", "kafka");
  } finally {
    rmSync(STATE, { recursive: true, force: true });
  }
}

type Metadata = Awaited<ReturnType<ReturnType<typeof createAdmin>["metadata"]>>;

export async function metadata(topics: string[]): Promise<Metadata> {
  const admin = createAdmin(clusterConn);
  try {
    return await admin.metadata({ topics, forceUpdate: true });
  } finally {
    await admin.close().catch(() => {});
  }
}

/** Partitions of `topic` led by each node id. */
export async function leaderCounts(topic: string): Promise<Map<number, number>> {
  const meta = await metadata([topic]);
  const out = new Map<number, number>();
  for (const p of meta.topics.get(topic)?.partitions ?? []) out.set(p.leader, (out.get(p.leader) ?? 0) + 1);
  return out;
}

/** The node leading the most partitions of `topic`. */
export async function busiestLeader(topic: string): Promise<{ node: number; partitions: number }> {
  const counts = [...(await leaderCounts(topic)).entries()].sort((a, b) => b[1] - a[1]);
  const [node, partitions] = counts[0]!;
  return { node, partitions };
}

/** The node coordinating consumer group `group`. */
export async function coordinatorOf(group: string): Promise<number> {
  const admin = createAdmin(clusterConn);
  try {
    const [c] = await admin.findCoordinator({ keyType: 0, keys: [group] });
    return c!.nodeId;
  } finally {
    await admin.close().catch(() => {});
  }
}

/** Resolves once every partition of `topics` has a leader other than `node`. */
export function waitLeadersOff(topics: string[], node: number, timeoutMs: number): Promise<void> {
  return waitFor(
    async () => {
      const meta = await metadata(topics).catch(() => undefined);
      if (!meta) return false;
      return topics.every((t) =>
        (meta.topics.get(t)?.partitions ?? []).every((p) => p.leader >= 0 && p.leader !== node),
      );
    },
    timeoutMs,
    `every partition led by a node other than ${node}`,
    200,
  );
}

/** Resolves once every replica of every partition of `topics` is in sync again. */
export function waitInSync(topics: string[], timeoutMs: number): Promise<void> {
  return waitFor(
    async () => {
      const meta = await metadata(topics).catch(() => undefined);
      if (!meta || meta.brokers.size < CLUSTER_NODES) return false;
      return topics.every((t) => {
        const parts = meta.topics.get(t)?.partitions ?? [];
        return parts.length > 0 && parts.every((p) => p.leader >= 0 && p.isr.length === p.replicas.length);
      });
    },
    timeoutMs,
    `every replica of ${topics.join(", ")} in sync`,
    250,
  );
}

export interface Sample {
  /** ms since the timeline started */
  t: number;
  ready: number;
  /** /readyz's `failing` map when not ready */
  why: string | undefined;
  collectorFailing: string | undefined;
  sendErrors: number;
  produced: number;
  processed: number;
}

/**
 * Polls the processor's /readyz and /status and the collector's /status every 250 ms, from
 * start() until stop(): what each said during an outage, without timing any assertion.
 */
export class Timeline {
  readonly samples: Sample[] = [];
  readonly #t0 = Date.now();
  #running = true;
  readonly #loop: Promise<void>;

  constructor(processorPort: number, collectorPort: number) {
    this.#loop = (async () => {
      while (this.#running) {
        const [ready, status, coll] = await Promise.all([
          getJson<{ failing?: Record<string, string> }>(processorPort, "/readyz"),
          getJson<{ totals?: { records: number } }>(processorPort, "/status"),
          getJson<{ failing: string | null; send_errors: number; produced: number }>(
            collectorPort,
            "/status",
          ),
        ]);
        this.samples.push({
          t: Date.now() - this.#t0,
          ready: ready.status,
          why: ready.body?.failing ? JSON.stringify(ready.body.failing) : undefined,
          collectorFailing: coll.body?.failing ?? undefined,
          sendErrors: coll.body?.send_errors ?? 0,
          produced: coll.body?.produced ?? 0,
          processed: status.body?.totals?.records ?? 0,
        });
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  }

  now(): number {
    return Date.now() - this.#t0;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** Samples taken between two moments (ms since start). */
  between(from: number, to: number): Sample[] {
    return this.samples.filter((s) => s.t >= from && s.t <= to);
  }
}

/**
 * End offsets minus the group's committed offsets, over every partition of `topic`. Asked as
 * an admin: an unjoined consumer of the "consumer" protocol sends member epoch 0 without a
 * member id, which Kafka 4.1 answers with UNKNOWN_SERVER_ERROR for a live group.
 */
export async function groupLag(topic: string, group: string): Promise<bigint> {
  const admin = createAdmin(clusterConn);
  try {
    const count = (await admin.metadata({ topics: [topic] })).topics.get(topic)?.partitionsCount ?? 0;
    const partitions = Array.from({ length: count }, (_, i) => i);
    const [ends] = await admin.listOffsets({
      topics: [
        { name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp: -1n })) },
      ],
    });
    const [offsets] = await admin.listConsumerGroupOffsets({
      groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: partitions }] }],
    });
    const committed = new Map<number, bigint>();
    for (const t of offsets?.topics ?? [])
      for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
    let lag = 0n;
    for (const p of ends?.partitions ?? []) {
      const c = committed.get(p.partitionIndex) ?? -1n;
      lag += p.offset - (c < 0n ? 0n : c);
    }
    return lag;
  } finally {
    await admin.close().catch(() => {});
  }
}

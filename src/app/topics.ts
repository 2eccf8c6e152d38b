/** `paystream topics`: the project's topics with their partition counts, created if missing. */
import {
  createAdmin,
  defaultReplicas,
  describeTopics,
  ensureTopics,
  type TopicDescription,
} from "../adapters/kafka/client.ts";

/**
 * Each topic as it now stands: partitions, replicas, min ISR (existing topics are never
 * repartitioned or re-replicated), and the replication factor new topics got. Without
 * `replicas`, that is what the services use when they create a missing topic: 3, or every
 * broker of a smaller cluster. `replicas` above the cluster's broker count is refused with
 * PS_CONFIG_INVALID before anything is created.
 */
export async function createTopics(
  brokers: string[],
  replicas?: number,
): Promise<{ topics: Map<string, TopicDescription>; replicas: number }> {
  const conn = { brokers, clientId: "paystream-topics" };
  let rf = replicas;
  if (rf === undefined) {
    const admin = createAdmin(conn);
    // Unreachable: ensureTopics below fails with the project's error naming the brokers.
    rf = await admin
      .metadata({ topics: [] })
      .then((m) => defaultReplicas(m.brokers.size))
      .catch(() => undefined)
      .finally(() => admin.close().catch(() => {}));
  }
  const counts = await ensureTopics(conn, undefined, rf);
  return { topics: await describeTopics(conn, [...counts.keys()]), replicas: rf ?? 1 };
}

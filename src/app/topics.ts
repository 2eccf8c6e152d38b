/** `paystream topics`: the project's topics with their partition counts, created if missing. */
import { describeTopics, ensureTopics, type TopicDescription } from "../adapters/kafka/client.ts";

/**
 * Each topic as it now stands: partitions, replicas, min ISR (existing topics are never
 * repartitioned or re-replicated). `replicas` above the cluster's broker count is refused
 * with PS_CONFIG_INVALID before anything is created.
 */
export async function createTopics(
  brokers: string[],
  replicas: number,
): Promise<Map<string, TopicDescription>> {
  const conn = { brokers, clientId: "paystream-topics" };
  const counts = await ensureTopics(conn, undefined, replicas);
  return describeTopics(conn, [...counts.keys()]);
}

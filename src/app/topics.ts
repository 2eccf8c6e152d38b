/** `paystream topics`: the project's topics with their partition counts, created if missing. */
import { ensureTopics } from "../adapters/kafka/client.ts";

/** Each topic's partition count as it now stands (existing topics are never repartitioned). */
export function createTopics(brokers: string[], replicas: number): Promise<Map<string, number>> {
  return ensureTopics({ brokers, clientId: "paystream-topics" }, undefined, replicas);
}

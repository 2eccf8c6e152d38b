/** Topic names and layout: one place, so producers, consumers, tests and docs agree. */
export const Topics = {
  transactions: "payments.transactions",
  labels: "payments.labels",
  dlq: "payments.dlq",
  alerts: "payments.alerts",
  /** Rule set versions (compacted, one partition: one total order of versions). */
  rules: "payments.rules",
} as const;

export type TopicName = (typeof Topics)[keyof typeof Topics];

export const CONSUMER_GROUP = "payment-processor-group";

/**
 * Partitions are the unit of parallelism: the processor can scale to at most this many
 * replicas. 24 divides evenly over 1, 2, 3, 4, 6, 8, 12 and 24 replicas.
 */
export const TopicLayout: Record<TopicName, { partitions: number }> = {
  [Topics.transactions]: { partitions: 24 },
  [Topics.labels]: { partitions: 6 },
  [Topics.dlq]: { partitions: 6 },
  [Topics.alerts]: { partitions: 6 },
  [Topics.rules]: { partitions: 1 },
};

/**
 * Kafka adapter: the only module that knows @platformatic/kafka. It turns the library's
 * errors into ours (with the broker address and what was tried) and holds the tuned
 * defaults for latency-sensitive consumption.
 */
import {
  Admin,
  ConfigResourceTypes,
  Consumer,
  type ConsumerOptions,
  ProduceAcks,
  Producer,
  type ProducerOptions,
} from "@platformatic/kafka";
import { TopicLayout, type TopicName, Topics } from "../../contracts/topics.ts";
import { ConfigError, ErrorCodes, PaystreamError } from "../../core/errors.ts";

export interface KafkaConnection {
  brokers: string[];
  clientId: string;
}

function unreachable(conn: KafkaConnection, err: unknown, what: string): PaystreamError {
  return new PaystreamError(
    ErrorCodes.KAFKA_UNREACHABLE,
    `cannot reach Kafka at ${conn.brokers.join(",")} (${what}): ${(err as Error).message}. ` +
      "Is the broker running? For local services run: npm run services:up",
    { cause: err, retriable: true, details: { brokers: conn.brokers, tried: what } },
  );
}

export function createAdmin(conn: KafkaConnection): Admin {
  return new Admin({
    clientId: `${conn.clientId}-admin`,
    bootstrapBrokers: conn.brokers,
    timeout: 5000,
    retries: 2,
  });
}

/** Fails fast with a clear error when no broker answers a metadata request. */
export async function checkKafka(conn: KafkaConnection): Promise<{ brokers: number; clusterId: string }> {
  const admin = new Admin({
    clientId: `${conn.clientId}-probe`,
    bootstrapBrokers: conn.brokers,
    timeout: 3000,
    retries: 1,
  });
  try {
    const meta = await admin.metadata({ topics: [] });
    return { brokers: meta.brokers.size, clusterId: meta.id };
  } catch (err) {
    throw unreachable(conn, err, "metadata request");
  } finally {
    await admin.close().catch(() => {});
  }
}

/**
 * The min.insync.replicas a topic of `replicas` replicas gets: 2 from 3 replicas on, so an
 * acknowledged write (acks=all) is on two brokers and one broker can be lost without refusing
 * writes. Below 3 it is 1: with 2 replicas a min ISR of 2 refuses every write while either
 * broker is down, and with 1 it refuses them always. Stated on every topic, so a broker-wide
 * default (2 on a production cluster) never silently makes a 1-replica topic unwritable.
 */
export function minInsyncReplicasFor(replicas: number): number {
  return replicas >= 3 ? 2 : 1;
}

/** The replication factor when none is asked for: 3, or every broker of a smaller cluster. */
export function defaultReplicas(brokers: number): number {
  return Math.max(1, Math.min(3, brokers));
}

/**
 * Topics kept by key rather than by time: the rules log keeps every version (one key per
 * version) however old, while its size stays that of the versions themselves.
 */
export const TOPIC_CLEANUP_POLICY: Partial<Record<TopicName, "delete" | "compact">> = {
  [Topics.rules]: "compact",
};

/**
 * Creates the project's topics with their partition counts if they do not exist, at
 * `replicas` replicas (default: `defaultReplicas` of the cluster) with min.insync.replicas
 * from `minInsyncReplicasFor`. More replicas than brokers is refused before anything is
 * created (PS_CONFIG_INVALID on `kafka.replicas`). Existing topics are left alone (their
 * partition count is reported, not changed: repartitioning a keyed topic reshuffles accounts
 * across partitions and must be a deliberate operation; so is raising a replication factor).
 */
export async function ensureTopics(
  conn: KafkaConnection,
  layout: readonly TopicName[] = Object.keys(TopicLayout) as TopicName[],
  replicas?: number,
  /** The name each topic goes by in this deployment (--topic, --dlq-topic...), if not its default. */
  names: Partial<Record<TopicName, string>> = {},
): Promise<Map<string, number>> {
  const partitionsOf = new Map(layout.map((t) => [names[t] ?? t, TopicLayout[t].partitions]));
  const topics = [...partitionsOf.keys()];
  const admin = createAdmin(conn);
  try {
    let existing: string[];
    let brokers: number;
    try {
      existing = await admin.listTopics();
      brokers = (await admin.metadata({ topics: [] })).brokers.size;
    } catch (err) {
      throw unreachable(conn, err, "list topics");
    }
    const rf = replicas ?? defaultReplicas(brokers);
    // Refused even when every topic exists: asking for more copies than brokers is a mistake
    // about the cluster, and Kafka's own refusal comes one topic at a time, after some exist.
    if (rf > brokers)
      throw new ConfigError(
        "kafka.replicas",
        `${rf} replicas need at least ${rf} brokers; the cluster at ${conn.brokers.join(",")} has ${brokers}. ` +
          `Nothing was created: pass --replicas ${brokers} at most, or add brokers.`,
        { details: { replicas: rf, brokers } },
      );
    const missing = topics.filter((t) => !existing.includes(t));
    // CreateTopics takes one config list per request: one request per cleanup policy.
    const policyOf = new Map(layout.map((t) => [names[t] ?? t, TOPIC_CLEANUP_POLICY[t] ?? "delete"]));
    for (const policy of ["delete", "compact"] as const) {
      const these = missing.filter((t) => policyOf.get(t) === policy);
      if (these.length === 0) continue;
      await admin
        .createTopics({
          topics: these.map((t) => ({ topic: t, partitions: partitionsOf.get(t)!, replicas: rf })),
          configs: [
            { name: "min.insync.replicas", value: String(minInsyncReplicasFor(rf)) },
            ...(policy === "compact" ? [{ name: "cleanup.policy", value: "compact" }] : []),
          ],
        })
        .catch((err: Error) => {
          // Another replica starting at the same moment created it first: that is the goal.
          if (!onlyTopicExists(err)) throw err;
        });
    }
    const meta = await waitForLeaders(admin, topics);
    const counts = new Map<string, number>();
    for (const t of topics) counts.set(t, meta.topics.get(t)?.partitionsCount ?? 0);
    return counts;
  } finally {
    await admin.close().catch(() => {});
  }
}

export interface TopicDescription {
  partitions: number;
  /** Replicas of partition 0 (the project creates every partition alike). */
  replicas: number;
  /** The topic's effective min.insync.replicas (its own, else the broker's default). */
  minInsyncReplicas: number;
  /** "delete" (retention by time) or "compact" (the newest record per key is kept). */
  cleanupPolicy: string;
}

/** Partitions, replication factor and min ISR of each topic, as the cluster has them now. */
export async function describeTopics(
  conn: KafkaConnection,
  topics: readonly string[],
): Promise<Map<string, TopicDescription>> {
  const admin = createAdmin(conn);
  try {
    const meta = await admin.metadata({ topics: [...topics], forceUpdate: true });
    const configs = await admin.describeConfigs({
      resources: topics.map((t) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: t,
        configurationKeys: ["min.insync.replicas", "cleanup.policy"],
      })),
    });
    const out = new Map<string, TopicDescription>();
    for (const t of topics) {
      const m = meta.topics.get(t);
      const own = configs.find((c) => c.resourceName === t)?.configs;
      const minIsr = own?.find((c) => c.name === "min.insync.replicas")?.value;
      const policy = own?.find((c) => c.name === "cleanup.policy")?.value;
      out.set(t, {
        partitions: m?.partitionsCount ?? 0,
        replicas: m?.partitions[0]?.replicas.length ?? 0,
        minInsyncReplicas: Number(minIsr ?? 1),
        cleanupPolicy: policy ?? "delete",
      });
    }
    return out;
  } catch (err) {
    throw unreachable(conn, err, "describe topics");
  } finally {
    await admin.close().catch(() => {});
  }
}

const TOPIC_ALREADY_EXISTS = 36;

/** True when a CreateTopics failure is only "topic already exists" (Kafka error code 36). */
function onlyTopicExists(err: unknown): boolean {
  const errors = (err as { errors?: { response?: { topics?: { errorCode: number }[] } }[] }).errors ?? [];
  const codes = errors.flatMap((e) => e.response?.topics?.map((t) => t.errorCode) ?? [-1]);
  return codes.length > 0 && codes.every((c) => c === 0 || c === TOPIC_ALREADY_EXISTS);
}

/**
 * CreateTopics returns before the controller has elected a leader for every new partition; a
 * produce in that gap fails with NOT_LEADER and waits out the client's retry backoff. Waiting
 * here makes a freshly created topic usable at once (first-run demos, tests on a new broker).
 */
export async function waitForLeaders(
  admin: Admin,
  topics: readonly string[],
  timeoutMs = 30_000,
): Promise<Awaited<ReturnType<Admin["metadata"]>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const meta = await admin.metadata({ topics: [...topics], forceUpdate: true });
    const pending = topics.filter((t) => {
      const m = meta.topics.get(t);
      return !m || m.partitions.length < m.partitionsCount || m.partitions.some((p) => !p || p.leader < 0);
    });
    if (pending.length === 0) return meta;
    if (Date.now() > deadline)
      throw new PaystreamError(
        ErrorCodes.KAFKA_UNREACHABLE,
        `no partition leader elected within ${timeoutMs} ms for topics ${pending.join(", ")}`,
        { retriable: true, details: { topics: pending } },
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

export type StringProducer = Producer<string, string | Buffer, string, string>;

/**
 * How long the client retries one produce request by itself: 100 ms doubling to 1 s, about
 * 15 s in all (a dropped connection, a leader moving, a broker restarting). Those retries
 * reuse the request's producer id and sequence numbers, so the broker drops a copy it
 * already appended; a retry by our caller after the client gave up goes out under a new
 * producer id and can duplicate the last request. Past this the send fails (retriable), so
 * outages show in health and a stop is never held longer than this.
 */
export const PRODUCE_RETRIES = 18;
export function produceRetryDelay(_client: unknown, _op: string, attempt: number): number {
  return Math.min(1000, 100 * 2 ** Math.max(0, attempt - 1));
}

export function createProducer(
  conn: KafkaConnection,
  opts: Partial<ProducerOptions<string, string | Buffer, string, string>> = {},
): StringProducer {
  return new Producer<string, string | Buffer, string, string>({
    clientId: conn.clientId,
    bootstrapBrokers: conn.brokers,
    retries: PRODUCE_RETRIES,
    retryDelay: produceRetryDelay,
    serializers: {
      key: (k?: string) => (k === undefined ? undefined : Buffer.from(k)),
      value: (v?: string | Buffer) =>
        v === undefined ? undefined : typeof v === "string" ? Buffer.from(v) : v,
      headerKey: (k?: string) => (k === undefined ? undefined : Buffer.from(k)),
      headerValue: (v?: string) => (v === undefined ? undefined : Buffer.from(v)),
    },
    ...opts,
    // acks=all + idempotence, after `opts` so no caller can weaken them: an acknowledged
    // record is on min.insync.replicas brokers, and a retried request never duplicates one in
    // the log. @platformatic/kafka 2.x holds to both: an idempotent Producer forces acks=ALL
    // and one request in flight per broker, and refuses a send asking for other acks.
    // KafkaSink sends one request at a time (see log.ts).
    acks: ProduceAcks.ALL,
    idempotent: true,
  });
}

/** Values stay raw Buffers: the processor decodes (and DLQs) them itself, never the client. */
export type RawConsumer = Consumer<string, Buffer, string, string>;

export function createConsumer(
  conn: KafkaConnection,
  groupId: string,
  opts: Partial<ConsumerOptions<string, Buffer, string, string>> = {},
): RawConsumer {
  return new Consumer<string, Buffer, string, string>({
    clientId: conn.clientId,
    bootstrapBrokers: conn.brokers,
    groupId,
    // KIP-848 protocol: incremental, broker-driven rebalances (no stop-the-world on join/leave).
    groupProtocol: "consumer",
    // Latency over batching: answer a fetch as soon as one byte is there, wait at most 100 ms otherwise.
    minBytes: 1,
    maxWaitTime: 100,
    maxBytes: 8 * 1024 * 1024,
    autocommit: false,
    deserializers: {
      key: (k?: Buffer) => k?.toString(),
      value: (v?: Buffer) => v ?? Buffer.alloc(0),
      headerKey: (k?: Buffer) => k?.toString(),
      headerValue: (v?: Buffer) => v?.toString(),
    },
    ...opts,
  } as ConsumerOptions<string, Buffer, string, string>);
}

/**
 * What a Kafka client error means for us: can trying again help, or must we stop?
 *
 * The client (@platformatic/kafka) already says so per error: every protocol error carries
 * the `canRetry` of the Kafka protocol's error table (MESSAGE_TOO_LARGE, *_AUTHORIZATION_FAILED,
 * INVALID_RECORD... cannot; NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT... can), and its own
 * errors carry a code (PLT_KFK_NETWORK, PLT_KFK_USER, PLT_KFK_AUTHENTICATION...). We follow
 * that table, with a few documented exceptions where our layer can do what the client cannot:
 *
 * - Network errors and time-outs are always retriable here, including "client closed" (that
 *   is our own producer being replaced or shut down): the broker may come back.
 * - Producer-state errors (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID...) are not
 *   retriable for the client's request, but are for us: a new producer id starts clean.
 * - Group-membership errors on a commit or fetch (ILLEGAL_GENERATION, STALE_MEMBER_EPOCH...)
 *   are retriable: the source rejoins the group, and the partitions it gets back are replayed.
 * - Client "user" errors are final when producing (unknown topic, a record that cannot be
 *   serialized, invalid options), except "Client closed while retrying" (our close, as
 *   above); when consuming only "Unknown topic" is.
 * - OFFSET_OUT_OF_RANGE on a fetch is retriable: a replay computes its range again.
 *
 * An error is final as soon as any error nested in it is: one partition refusing a record
 * for good fails the whole send, whatever the other partitions said.
 */
import { GenericError } from "@platformatic/kafka";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";

/** Which kind of request failed: a few protocol errors mean different things per kind. */
export type KafkaOperation = "produce" | "commit" | "fetch" | "admin";

/** Errors after which the idempotent producer's id or sequence numbers are no longer accepted. */
export const PRODUCER_STATE_ERRORS: ReadonlySet<string> = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "DUPLICATE_SEQUENCE_NUMBER",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_EPOCH",
  "INVALID_PRODUCER_ID_MAPPING",
  "PRODUCER_FENCED",
]);

/** Errors that say this member's view of the group is stale: rejoin, then go on. */
export const GROUP_MEMBERSHIP_ERRORS: ReadonlySet<string> = new Set([
  "ILLEGAL_GENERATION",
  "UNKNOWN_MEMBER_ID",
  "REBALANCE_IN_PROGRESS",
  "MEMBER_ID_REQUIRED",
  "FENCED_INSTANCE_ID",
  "FENCED_MEMBER_EPOCH",
  "STALE_MEMBER_EPOCH",
  "UNRELEASED_INSTANCE_ID",
]);

export interface KafkaErrorClass {
  /** Whether sending the same request again can succeed (after a wait). */
  retriable: boolean;
  /**
   * What decided a final error: a protocol error id (MESSAGE_TOO_LARGE,
   * TOPIC_AUTHORIZATION_FAILED...), UNKNOWN_TOPIC, SASL_AUTHENTICATION, or the client's error
   * code for the rest (PLT_KFK_USER...). Undefined when retriable.
   */
  reason: string | undefined;
  /** Every protocol error id found in the error, in order, once each. */
  protocolErrors: string[];
  /** A producer-state error was among them: the producer should get a new id. */
  producerStateLost: boolean;
}

interface ClientErrorShape {
  code?: unknown;
  apiId?: unknown;
  canRetry?: unknown;
  message?: unknown;
  errors?: unknown;
  cause?: unknown;
}

function isClientError(e: object): boolean {
  return GenericError.isGenericError(e as Error);
}

/** Classifies any error thrown by the Kafka client (or by Node underneath it). */
export function classifyKafkaError(err: unknown, op: KafkaOperation): KafkaErrorClass {
  const out: KafkaErrorClass = {
    retriable: true,
    reason: undefined,
    protocolErrors: [],
    producerStateLost: false,
  };
  const final = (reason: string) => {
    // The first final error found decides the reason; the walk goes on for protocolErrors.
    if (out.retriable) {
      out.retriable = false;
      out.reason = reason;
    }
  };
  const seen = new Set<object>();
  const walk = (e: unknown, depth: number): void => {
    if (e === null || typeof e !== "object" || depth > 8 || seen.has(e)) return;
    seen.add(e);
    const x = e as ClientErrorShape;
    if (typeof x.apiId === "string") {
      const id = x.apiId;
      if (!out.protocolErrors.includes(id)) out.protocolErrors.push(id);
      if (PRODUCER_STATE_ERRORS.has(id) && op === "produce") out.producerStateLost = true;
      else if (GROUP_MEMBERSHIP_ERRORS.has(id) && (op === "commit" || op === "fetch")) {
        // retriable: the source rejoins
      } else if (id === "OFFSET_OUT_OF_RANGE" && op === "fetch") {
        // retriable: a replay computes its range again (retention moved the log start)
      } else if (x.canRetry === false) final(id);
    } else if (isClientError(e)) {
      const code = String(x.code);
      const message = String(x.message ?? "");
      if (code === "PLT_KFK_NETWORK" || code === "PLT_KFK_TIMEOUT") {
        // A connection or a time-out: the broker may come back. (A closed client is ours.)
      } else if (code === "PLT_KFK_USER") {
        // On the consumer side the client also reports passing states as user errors
        // ("Cannot find broker with node id..." while metadata catches up): only an unknown
        // topic is final there.
        if (/^Unknown topic /.test(message)) final("UNKNOWN_TOPIC");
        else if (!/^Client closed while retrying/.test(message) && (op === "produce" || op === "admin"))
          final(code);
      } else if (code === "PLT_KFK_AUTHENTICATION") {
        final("SASL_AUTHENTICATION");
      } else if (code === "PLT_KFK_UNEXPECTED_CORRELATION_ID") {
        // The connection is dropped and a new one opened: retriable.
      } else if (code !== "PLT_KFK_MULTIPLE" && code !== "PLT_KFK_RESPONSE" && x.canRetry === false) {
        final(code);
      }
    }
    if (Array.isArray(x.errors)) for (const inner of x.errors) walk(inner, depth + 1);
    walk(x.cause, depth + 1);
  };
  walk(err, 0);
  return out;
}

/**
 * The client's message plus the distinct messages nested under it ("Producing messages
 * failed." alone says nothing; the protocol error under it does), at most `max` + 1 of them.
 */
export function describeClientError(err: unknown, max = 3): string {
  const seen: string[] = [];
  const visited = new Set<object>();
  const walk = (e: unknown, depth: number) => {
    if (e === null || typeof e !== "object" || depth > 8 || visited.has(e) || seen.length > max) return;
    visited.add(e);
    const x = e as ClientErrorShape & { serverErrorMessage?: unknown };
    const server =
      typeof x.serverErrorMessage === "string" && x.serverErrorMessage ? ` (${x.serverErrorMessage})` : "";
    const msg = `${typeof x.apiId === "string" ? `${x.apiId}: ` : ""}${String(x.message ?? "")}${server}`;
    if (msg && !seen.includes(msg)) seen.push(msg);
    if (Array.isArray(x.errors)) for (const inner of x.errors) walk(inner, depth + 1);
    walk(x.cause, depth + 1);
  };
  walk(err, 0);
  return seen.slice(0, max + 1).join(" <- ");
}

/** What an operator can do about a final error, by reason. */
function hintFor(reason: string): string {
  if (reason === "MESSAGE_TOO_LARGE" || reason === "RECORD_LIST_TOO_LARGE")
    return "a record is larger than the topic's max.message.bytes (or the broker's message.max.bytes)";
  if (reason.endsWith("_AUTHORIZATION_FAILED")) return "this client's principal lacks the ACL for it";
  if (reason === "UNKNOWN_TOPIC")
    return "the topic does not exist and the broker does not create topics on use";
  if (reason === "SASL_AUTHENTICATION") return "the broker refused this client's credentials";
  if (reason === "INVALID_RECORD" || reason === "INVALID_TIMESTAMP" || reason === "CORRUPT_MESSAGE")
    return "the broker refused the record's content";
  if (reason === "POLICY_VIOLATION") return "a broker policy refused the request";
  return "the Kafka client says trying again cannot help";
}

/**
 * What a retriable broker refusal says about the cluster, for /readyz, /status and the logs:
 * the client's own text names the error, not what to look at.
 */
function retriableHint(id: string): string | undefined {
  if (id === "NOT_ENOUGH_REPLICAS" || id === "NOT_ENOUGH_REPLICAS_AFTER_APPEND")
    return `${id}: fewer replicas in sync than the topic's min.insync.replicas, a broker is down or behind; retried until it is back`;
  if (id === "NOT_LEADER_OR_FOLLOWER" || id === "LEADER_NOT_AVAILABLE" || id === "FENCED_LEADER_EPOCH")
    return `${id}: partition leadership is moving between brokers; retried`;
  return undefined;
}

/**
 * The error a failed Kafka request becomes: retriable → `retriableCode` (the caller waits it
 * out and tries again); final → PS_KAFKA_REJECTED with retriable:false and the reason, so the
 * caller stops instead of retrying forever.
 */
export function toKafkaError(
  err: unknown,
  op: KafkaOperation,
  what: string,
  retriableCode: typeof ErrorCodes.KAFKA_PRODUCE | typeof ErrorCodes.KAFKA_UNREACHABLE,
  details: Record<string, unknown> = {},
): PaystreamError {
  if (err instanceof PaystreamError) return err;
  const c = classifyKafkaError(err, op);
  const text = describeClientError(err);
  const facts = { ...details, kafkaErrors: c.protocolErrors };
  if (c.retriable) {
    // A refusal that explains the outage, even when the client's text shows an earlier
    // attempt's error (a time-out) and the refusal came later in its retries.
    const why = c.protocolErrors.map(retriableHint).find((h) => h !== undefined);
    return new PaystreamError(retriableCode, `${what} failed: ${text}${why ? ` (${why})` : ""}`, {
      cause: err,
      retriable: true,
      details: facts,
    });
  }
  const reason = c.reason!;
  return new PaystreamError(
    ErrorCodes.KAFKA_REJECTED,
    `${what} refused by Kafka for good (${reason}: ${hintFor(reason)}); not retried: ${text}`,
    { cause: err, retriable: false, details: { ...facts, reason } },
  );
}

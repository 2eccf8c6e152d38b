/**
 * Fraud alerts. An alert is identified by (rule, account, triggering transaction) and
 * nothing else, so replaying the same events after a crash or a rebalance rewrites the same
 * Redis hash, Kafka record and warehouse row instead of adding a second alert.
 */
import { hash } from "node:crypto";

/**
 * Deterministic alert id: 128 bits of SHA-256 over the length-prefixed triple, as 32 hex
 * chars. Length prefixes (rather than a separator) keep ("a:b", "c") and ("a", "b:c") apart
 * whatever characters ids contain.
 */
export function alertId(ruleId: string, accountId: string, transactionId: string): string {
  const input = `${ruleId.length}:${ruleId}${accountId.length}:${accountId}${transactionId.length}:${transactionId}`;
  return hash("sha256", input, "buffer").toString("hex", 0, 16);
}

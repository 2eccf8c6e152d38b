/**
 * The Redis layout of live alerts, shared by the writer (adapters/redis) and its readers
 * (dashboard, verify):
 *   fraud:alert:<id>        hash, TTL                  — the alert itself, idempotent by id
 *   fraud:alerts            stream, capped (~MAXLEN)   — ordered feed
 *   fraud:active_accounts   sorted set, score = time   — who is alerting now
 *   fraud:alerts:live       PUBLISH                    — push to subscribers (dashboard)
 * and, apart from them, what shadow rules raised (never on the stream, zset or channel):
 *   fraud:shadow:seen:<id>  string, TTL                — idempotence per alert id
 *   fraud:shadow:alerts     stream, capped (~MAXLEN)   — latest shadow alerts
 *   fraud:shadow:by_rule    hash rule id → count       — shadow alerts per rule
 */
export const AlertKeys = {
  alert: (id: string) => `fraud:alert:${id}`,
  stream: "fraud:alerts",
  activeAccounts: "fraud:active_accounts",
  channel: "fraud:alerts:live",
  shadowSeen: (id: string) => `fraud:shadow:seen:${id}`,
  shadowStream: "fraud:shadow:alerts",
  shadowByRule: "fraud:shadow:by_rule",
} as const;

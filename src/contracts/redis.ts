/**
 * The Redis layout of live alerts, shared by the writer (adapters/redis) and its readers
 * (dashboard, verify):
 *   fraud:alert:<id>        hash, TTL                  — the alert itself, idempotent by id
 *   fraud:alerts            stream, capped (~MAXLEN)   — ordered feed
 *   fraud:active_accounts   sorted set, score = time   — who is alerting now
 *   fraud:alerts:live       PUBLISH                    — push to subscribers (dashboard)
 */
export const AlertKeys = {
  alert: (id: string) => `fraud:alert:${id}`,
  stream: "fraud:alerts",
  activeAccounts: "fraud:active_accounts",
  channel: "fraud:alerts:live",
} as const;

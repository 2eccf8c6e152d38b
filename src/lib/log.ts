/**
 * Structured JSON logs (pino). One root logger per process; components take a child with
 * their name so every line says where it came from. Redaction is a backstop: PII never
 * reaches a log call by design (only masked rows exist past decode), but a mistake should
 * not leak a card number.
 */
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(
  name: string,
  level: string = process.env.PAYSTREAM_LOG_LEVEL ?? "info",
): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        "card_number",
        "*.card_number",
        "cardholder_name",
        "*.cardholder_name",
        "email",
        "*.email",
        "password",
        "*.password",
        "token",
        "*.token",
        "piiKey",
        "*.piiKey",
        "dlqKey",
        "*.dlqKey",
        "ip_address",
        "*.ip_address",
        "authorization",
        "*.authorization",
      ],
      censor: "[redacted]",
    },
  });
}

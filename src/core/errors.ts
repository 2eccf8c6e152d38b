/**
 * Typed errors with stable codes. A code is part of the public contract: logs, metrics
 * labels and tests match on it, so never rename one; add a new one instead.
 * `retriable` says whether trying the same operation again can help (a broker that is
 * restarting) or cannot (a malformed config value).
 */
export const ErrorCodes = {
  CONFIG_INVALID: "PS_CONFIG_INVALID",
  CONFIG_FILE: "PS_CONFIG_FILE",
  RULES_INVALID: "PS_RULES_INVALID",
  KAFKA_UNREACHABLE: "PS_KAFKA_UNREACHABLE",
  KAFKA_PRODUCE: "PS_KAFKA_PRODUCE",
  /** Kafka refused a request for good (record too large, not authorized, unknown topic...). */
  KAFKA_REJECTED: "PS_KAFKA_REJECTED",
  REDIS_UNAVAILABLE: "PS_REDIS_UNAVAILABLE",
  WAREHOUSE_UNAVAILABLE: "PS_WAREHOUSE_UNAVAILABLE",
  WAREHOUSE_REJECTED: "PS_WAREHOUSE_REJECTED",
  PORT_IN_USE: "PS_PORT_IN_USE",
  SECRET_MISSING: "PS_SECRET_MISSING",
  SHUTDOWN: "PS_SHUTDOWN",
  /** A case status change the workflow does not allow (core/cases.ts CASE_TRANSITIONS). */
  CASE_TRANSITION: "PS_CASE_TRANSITION",
  /** A backtest is already running in this process (one at a time: it costs CPU). */
  BACKTEST_BUSY: "PS_BACKTEST_BUSY",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface PaystreamErrorOptions {
  cause?: unknown;
  retriable?: boolean;
  /** Structured facts for logs (field name, address tried...). Never secrets. */
  details?: Record<string, unknown>;
}

export class PaystreamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: PaystreamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PaystreamError";
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retriable: this.retriable,
      ...this.details,
    };
  }
}

/** Config errors always name the field so a user can fix it without reading code. */
export class ConfigError extends PaystreamError {
  readonly field: string;
  constructor(field: string, message: string, options: PaystreamErrorOptions = {}) {
    super(ErrorCodes.CONFIG_INVALID, `invalid config ${field}: ${message}`, {
      ...options,
      details: { field, ...options.details },
    });
    this.name = "ConfigError";
    this.field = field;
  }
}

export function isPaystreamError(err: unknown): err is PaystreamError {
  return err instanceof PaystreamError;
}

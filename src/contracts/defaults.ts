/**
 * Defaults more than one module must agree on. The option tables (src/<command>/config.ts)
 * show them in `--help` and fill them in; the classes that can also be built without a
 * config (the Processor, the dedup stores, the window store) fall back to the same values.
 * A literal repeated elsewhere is how the dedup horizon once ended up 1 h in one place and
 * 24 h in another.
 *
 * Plain numbers in milliseconds, so core may import this file (core imports contracts only).
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from "./transaction.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const ProcessorDefaults = {
  /** Sliding event-time window per account (docs/processor.md, "Windows"). */
  windowMs: MINUTE,
  /** How far behind its partition's newest event an event may be and still count. */
  allowedLatenessMs: 10 * SECOND,
  /**
   * Added to window + lateness for the default recovery span, so the replay also covers
   * records appended while the previous owner was stopping.
   */
  recoveryMarginMs: 5 * SECOND,
  /** The dedup horizon in the shared store (Redis, --dedup-shared); docs/processor.md, "Dedup". */
  dedupTtlMs: 24 * HOUR,
  /** The local tier only saves round trips: kept well below the shared horizon. */
  dedupLocalTtlMs: 2 * MINUTE,
  /** Most records one fetch hands the pipeline (one I/O batch). */
  maxBatch: 5000,
  /** Batches whose writes may be in flight at once. */
  maxInFlight: 16,
  /** Rows computed but not yet durable before fetching waits (memory bound). */
  maxPendingRows: 50_000,
  /**
   * How long a warehouse writer waits for warehouseFillRows before writing fewer (coalesce.ts):
   * at low load, one write per 50 ms instead of one per fetched batch of a few records.
   */
  warehouseLingerMs: 50,
  /** Rows (or alerts) that make a warehouse write start at once. */
  warehouseFillRows: 1000,
  /** Backoff cap between retries of a failing write. */
  maxBackoffMs: 2 * SECOND,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  /** How often analysts' case status changes are copied into the warehouse (docs/cases.md). */
  caseSyncIntervalMs: 5 * SECOND,
  /**
   * An owned partition with lag whose records have not arrived for this long, while nothing
   * is being processed or rebuilt, makes the consumer rejoin (0: never).
   */
  partitionStallMs: 30 * SECOND,
} as const;

/** Default append-time span replayed to rebuild a gained partition: window + lateness + margin. */
export function defaultRecoverySpanMs(
  windowMs: number = ProcessorDefaults.windowMs,
  allowedLatenessMs: number = ProcessorDefaults.allowedLatenessMs,
): number {
  return windowMs + allowedLatenessMs + ProcessorDefaults.recoveryMarginMs;
}

/** Each service's HTTP port; the dashboard's defaults point at the others on loopback. */
export const DefaultPorts = {
  processorMetrics: 9464,
  collector: 5000,
  dashboard: 3000,
} as const;

/**
 * Limits of every service's HTTP server (src/lib/http.ts). The API takes small JSON bodies
 * from a handful of operators and scrapers: anything slower or bigger than this is a stuck
 * or hostile client holding a socket, not a user.
 */
export const HttpDefaults = {
  /** Largest request body accepted (bytes); the control APIs take a few hundred. */
  bodyLimit: 64 * 1024,
  /** The whole request (headers and body) must arrive within this. */
  requestTimeoutMs: 30 * SECOND,
  /** A socket with no traffic either way for this long is closed. */
  connectionTimeoutMs: 15 * SECOND,
  /** The request headers must arrive within this (at most the request timeout). */
  headersTimeoutMs: 10 * SECOND,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5 * SECOND,
  /** JSON bodies nested deeper than this are refused before they are parsed. */
  maxJsonDepth: 32,
  /** Server-Sent Event streams one dashboard serves at once (503 beyond). */
  maxSseClients: 100,
} as const;

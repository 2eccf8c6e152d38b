/**
 * The dashboard's two shapes: what the sources read (raw answers of the collector, the
 * processors and the alert feed, as they came) and the snapshot the UI renders. Types only,
 * so the UI bundle and the server share them without pulling in any code.
 */

// ------------------------------------------------------------------------- readings (raw)

/** One HTTP answer as an adapter got it; `error` when there was no answer at all. */
export interface Answer {
  status: number;
  body: unknown;
  error?: string;
}

export interface CollectorReading {
  url: string;
  config: Answer;
  stats: Answer;
  ready: Answer;
}

export interface ProcessorReading {
  url: string;
  status: Answer;
  /** /metrics text (body is a string). */
  metrics: Answer;
  ready: Answer;
}

export interface AlertsReading {
  source: string;
  /** Alerts newest first, as JSON objects (the shape of alertToJson). */
  latest: unknown[];
  /** Accounts with an alert in the last 5 minutes; null when unknown. */
  activeAccounts: number | null;
  error?: string;
}

export interface Readings {
  collector: CollectorReading | undefined;
  processors: ProcessorReading[];
  alerts: AlertsReading;
}

// ------------------------------------------------------------------------- snapshot (out)

export interface FeedAlert {
  alert_id: string;
  rule_id: string;
  rule_type: string;
  severity: string;
  account_id: string;
  /** "BIN ••• last4", or null when the alert has no card. */
  card: string | null;
  event_time: string;
  detected_at: string;
  /** detected_at − event_time, ms. */
  detection_latency_ms: number | null;
  figures: Record<string, number | string>;
}

export interface HealthItem {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ProcessorView {
  url: string;
  reachable: boolean;
  ready: boolean;
  processed: number;
  lag_records: number | null;
}

export interface HistoryPoint {
  t: number;
  in_per_s: number;
  out_per_s: number;
}

export interface DashboardSnapshot {
  at: number;
  collector: {
    url: string | null;
    reachable: boolean;
    error: string | null;
    target_rate: number | null;
    actual_rate: number | null;
    max_rate: number | null;
    produced: number | null;
  };
  throughput: { in_per_s: number; out_per_s: number };
  history: HistoryPoint[];
  processed: { total: number; ok: number; duplicate: number; late: number; invalid: number };
  lag_records: number | null;
  alerts: {
    total: number;
    by_rule: Record<string, number>;
    active_accounts_5m: number | null;
    source: string;
    latest: FeedAlert[];
  };
  latency: { p99_alert_ms: number | null; p99_row_ms: number | null; window_s: number };
  processors: ProcessorView[];
  health: HealthItem[];
}

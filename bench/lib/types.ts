/** The contract between bench/run.ts and each benchmark. */

export interface Goal {
  /** The figure must be at least (">=") or at most ("<=") the target to meet the goal. */
  op: ">=" | "<=";
  target: number;
  /** Where the goal comes from, as the table shows it ("≥ 100,000 tx/s"). */
  text: string;
}

export interface Metric {
  /** Stable id within the benchmark; "<bench>/<key>" is the key across runs. */
  key: string;
  label: string;
  /** null when the figure could not be measured (the note says why). */
  value: number | null;
  unit: string;
  goal?: Goal;
  note?: string;
}

export interface BenchOutput {
  metrics: Metric[];
  /** Raw figures behind the metrics (time series, per-window numbers) for the JSON file. */
  details?: unknown;
}

export interface ServiceAddresses {
  brokers: string[];
  /** Redis URL with a database of the benchmark's own, so dedup keys and alerts never meet anyone else's. */
  redisUrl: string;
  postgresUrl: string;
  kafkaPid: number | undefined;
  redisPid: number | undefined;
}

export interface BenchContext {
  quick: boolean;
  profile: boolean;
  /** Unique per invocation: part of every topic, consumer group and database name. */
  runId: string;
  /** Scratch directory of this invocation (logs, DuckDB files, profiles); removed at the end. */
  runDir: string;
  services: ServiceAddresses;
  log: (message: string) => void;
}

export interface Bench {
  name: string;
  description: string;
  /** Rough wall time in seconds [full, quick], shown by --list. */
  estimateS: [number, number];
  run: (ctx: BenchContext) => Promise<BenchOutput>;
}

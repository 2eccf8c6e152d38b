/**
 * `paystream verify` as a function of its ports: reads one run's input topic (the record of
 * what was produced), its DLQ, labels and alerts topics, and looks up the warehouse and the
 * alert store; returns the reconciliation report (see reconcile.ts for the rules,
 * docs/verify.md for the meaning). Which Kafka, Redis and warehouse stand behind the ports is
 * src/app/verify.ts's business.
 *
 * Order: the input topic must exist, then the four topics are read concurrently (warehouse
 * row counts over U asked in chunks behind the input's reading), then the alert look-ups.
 */
import type { ScenarioLabel } from "../contracts/labels.ts";
import type { AlertReader, InspectableWarehouse, TopicReader } from "../contracts/ports.ts";
import { CONSUMER_GROUP } from "../contracts/topics.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../contracts/transaction.ts";
import { ConfigError } from "../core/errors.ts";
import {
  type AlertRecord,
  alertIdsToLookUp,
  buildReport,
  DEFAULT_CHECKED_RULES,
  DEFAULT_MAX_EXAMPLES,
  DlqTally,
  type GroupLag,
  InputTally,
  parseAlertRecord,
  parseScenarioLabel,
  RowCountTally,
  reconcileAlerts,
  reconcileDlq,
  selectIncidents,
  type VerifyReport,
} from "./reconcile.ts";
import { ChunkedKeyCounter, type TopicRead } from "./sources.ts";

/** What verify reads, as ports. The caller opens and closes them. */
export interface VerifyPorts {
  topics: TopicReader;
  alerts: Pick<AlertReader, "existing">;
  warehouse: Pick<InspectableWarehouse, "countByKey">;
}

export interface VerifyRunOptions {
  /** Input topic of the run (default payments.transactions). */
  topic: string;
  labelsTopic: string;
  dlqTopic: string;
  alertsTopic: string;
  /** Per topic: the read must reach the end offsets within this long. */
  timeoutMs: number;
  /** Rules whose labelled incidents are checked (default DEFAULT_CHECKED_RULES). */
  rules?: readonly string[];
  /** As the processor's --max-message-bytes: larger records are invalid (oversized). */
  maxMessageBytes?: number;
  /** Processor consumer group whose lag is reported (a hint, never a failure); null: skip. */
  group?: string | null;
  maxExamples?: number;
  /** Progress lines (for stderr). */
  onProgress?: (line: string) => void;
}

export interface VerifyRun {
  report: VerifyReport;
  durationMs: number;
  topics: Record<"input" | "dlq" | "labels" | "alerts", Omit<TopicRead, "ranges">>;
}

export async function runVerification(ports: VerifyPorts, opts: VerifyRunOptions): Promise<VerifyRun> {
  const t0 = performance.now();
  const say = opts.onProgress ?? (() => {});
  const maxExamples = opts.maxExamples ?? DEFAULT_MAX_EXAMPLES;
  const rules = [...(opts.rules ?? DEFAULT_CHECKED_RULES)];
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const { topics, warehouse } = ports;

  // ---- topics, concurrently (after checking the one that must exist)
  if (!(await topics.existingTopics([opts.topic])).has(opts.topic)) {
    throw new ConfigError("topic", `input topic ${opts.topic} does not exist`);
  }
  say(
    `reading ${opts.topic}, ${opts.dlqTopic}, ${opts.labelsTopic}, ${opts.alertsTopic} to their end offsets`,
  );
  const input = new InputTally(opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  const dlq = new DlqTally(opts.topic);
  const labels: ScenarioLabel[] = [];
  const topicAlerts: AlertRecord[] = [];
  const readOpts = { timeoutMs: opts.timeoutMs };
  // Warehouse rows are counted while the input is read: each new id of U joins a chunk,
  // and full chunks are looked up behind the reading.
  const rows = new RowCountTally(maxExamples);
  const rowCounter = new ChunkedKeyCounter(warehouse, "transactions", (ids, counts) =>
    rows.addChunk(ids, counts),
  );
  const [inputRead, dlqRead, labelsRead, alertsRead] = await Promise.all([
    topics.readToEnd(
      opts.topic,
      (m) => {
        const id = input.add(m.partition, m.offset, m.value, Number(m.timestamp));
        if (id !== undefined) rowCounter.push(id);
      },
      {
        ...readOpts,
        onProgress: (n) => say(`  ${opts.topic}: ${n} records`),
      },
    ),
    topics.readToEnd(opts.dlqTopic, (m) => dlq.add(m.headers), readOpts),
    topics.readToEnd(
      opts.labelsTopic,
      (m) => {
        const l = parseScenarioLabel(m.value.toString("utf8"));
        if (l) labels.push(l);
      },
      readOpts,
    ),
    topics.readToEnd(
      opts.alertsTopic,
      (m) => {
        const a = parseAlertRecord(m.value.toString("utf8"));
        if (a) topicAlerts.push(a);
      },
      readOpts,
    ),
  ]);
  if (!inputRead.exists) throw new ConfigError("topic", `input topic ${opts.topic} does not exist`);
  input.ranges = inputRead.ranges;
  say(
    `  ${opts.topic}: ${inputRead.records} records in ${secs(inputRead.durationMs)} ` +
      `(${input.unique.size} unique, ${input.resendRecords} resends, ${input.invalid.size} invalid)`,
  );
  let lag: GroupLag | undefined;
  if (opts.group !== null) {
    const group = opts.group ?? CONSUMER_GROUP;
    // Only a hint: a failure here does not stop the verification.
    lag = await topics.groupLag(group, opts.topic, inputRead.ranges).catch((err: Error) => {
      say(`  group ${group}: lag unknown (${err.message})`);
      return undefined;
    });
  }

  // ---- warehouse rows: the last chunks of U
  const t1 = performance.now();
  await rowCounter.finish();
  rows.settle(dlq.refusedTransactions);
  say(`  warehouse: ${rowCounter.checked} ids checked, ${secs(performance.now() - t1)} after the read`);

  // ---- alerts
  const incidents = selectIncidents(labels, input.unique, new Set(rules));
  const ids = alertIdsToLookUp(incidents.incidents, topicAlerts, input.unique);
  const [inRedis, inWarehouse] = await Promise.all([
    ports.alerts.existing(ids),
    warehouse.countByKey("fraud_alerts", ids),
  ]);
  const alerts = reconcileAlerts(incidents, topicAlerts, input.unique, inRedis, inWarehouse, maxExamples);

  const report = buildReport(
    {
      input,
      inputRead,
      warehouse: rows.result,
      dlq: reconcileDlq(input, dlq, maxExamples),
      dlqRead,
      labelsRead,
      alertsRead,
      incidents,
      alerts,
      rules,
      ...(lag ? { groupLag: lag } : {}),
    },
    maxExamples,
  );
  const strip = ({ ranges: _r, ...rest }: TopicRead) => rest;
  return {
    report,
    durationMs: Math.round(performance.now() - t0),
    topics: {
      input: strip(inputRead),
      dlq: strip(dlqRead),
      labels: strip(labelsRead),
      alerts: strip(alertsRead),
    },
  };
}

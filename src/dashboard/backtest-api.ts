/**
 * Backtests on recorded traffic: the runner (reads the transactions and labels topics through
 * the TopicReader port, replays them with core/backtest.ts, scores) and its HTTP route.
 *
 *   POST /api/rules/backtest {document?, version?, last_minutes, max_records?}
 *     200 BacktestReport | 404 unknown version | 409 one already running | 422 {errors} invalid document
 *
 * The runner lives here, beside the route that needs it, because the dashboard may not import
 * src/app; `paystream rules backtest` reaches it through src/app/backtest.ts.
 */
import type { FastifyInstance } from "fastify";
import type { ScenarioLabel } from "../contracts/labels.ts";
import type { TopicReader } from "../contracts/ports.ts";
import type { RulesLog } from "../contracts/rules-log.ts";
import { Topics } from "../contracts/topics.ts";
import {
  Backtest,
  type BacktestOptions,
  incidentsWithin,
  parseScenarioLabelJson,
  type RecordedRecord,
  type RuleSetScore,
  replayChunked,
  scoreRuleSet,
} from "../core/backtest.ts";
import { ErrorCodes, isPaystreamError, PaystreamError } from "../core/errors.ts";
import { parseRules, type RuleSet } from "../core/rules.ts";

/** Labels are appended when an incident completes: read them from a little before the span. */
export const LABELS_MARGIN_MS = 10 * 60_000;
export const MAX_BACKTEST_MINUTES = 1440;

export interface BacktestTopics {
  transactions: string;
  labels: string;
}

/** A rule set and the published version it is (null: a document not published). */
export interface VersionedRuleSet {
  ruleSet: RuleSet;
  version: number | null;
}

export interface RunBacktestOptions {
  reader: TopicReader;
  topics?: BacktestTopics;
  candidate: VersionedRuleSet;
  current?: VersionedRuleSet | undefined;
  /** Records appended within this long before `now` are replayed. */
  lastMs: number;
  maxRecords?: number | undefined;
  now?: number;
  /** The processors' window store and decoder options, when not the defaults. */
  window?: BacktestOptions["window"];
  decode?: BacktestOptions["decode"];
  /** Give up reading a topic after this long. Default 120 s. */
  timeoutMs?: number;
}

export interface RuleResultJson {
  rule_id: string;
  rule_type: string;
  shadow: boolean;
  alerts: number;
  accounts: number;
  incidents: number;
  detected: number;
  recall: number | null;
  precision: number | null;
}

export interface RuleSetResultJson {
  version: number | null;
  total_alerts: number;
  accounts: number;
  recall: number | null;
  precision: number | null;
  rules: RuleResultJson[];
}

export interface BacktestReport {
  span: {
    from: string;
    to: string;
    records: number;
    truncated: boolean;
    /** Of the records: what the processor would dead-letter, drop as resends, judge late. */
    invalid: number;
    duplicates: number;
    late: number;
  };
  labelled: boolean;
  candidate: RuleSetResultJson;
  current: RuleSetResultJson | null;
}

function resultJson(version: number | null, s: RuleSetScore): RuleSetResultJson {
  return {
    version,
    total_alerts: s.totalAlerts,
    accounts: s.accounts,
    recall: s.recall,
    precision: s.precision,
    rules: s.rules.map((r) => ({
      rule_id: r.ruleId,
      rule_type: r.ruleType,
      shadow: r.shadow,
      alerts: r.alerts,
      accounts: r.accounts,
      incidents: r.incidents,
      detected: r.detected,
      recall: r.recall,
      precision: r.precision,
    })),
  };
}

let running = false;

/** True while a backtest runs in this process. */
export function backtestRunning(): boolean {
  return running;
}

/**
 * Replays the transactions appended in the last `lastMs` through the candidate (and the
 * current) rule set and scores both against the labels of the same span. One at a time per
 * process (PS_BACKTEST_BUSY): it costs CPU and memory for as many records as it replays.
 */
export async function runBacktest(o: RunBacktestOptions): Promise<BacktestReport> {
  if (running) {
    throw new PaystreamError(
      ErrorCodes.BACKTEST_BUSY,
      "a backtest is already running; try again when it ends",
      {
        retriable: true,
      },
    );
  }
  running = true;
  try {
    return await run(o);
  } finally {
    running = false;
  }
}

async function run(o: RunBacktestOptions): Promise<BacktestReport> {
  const topics = o.topics ?? { transactions: Topics.transactions, labels: Topics.labels };
  const now = o.now ?? Date.now();
  const from = now - o.lastMs;
  const timeoutMs = o.timeoutMs ?? 120_000;
  const sets = o.current ? [o.candidate.ruleSet, o.current.ruleSet] : [o.candidate.ruleSet];
  const bt = new Backtest(sets, {
    ...(o.maxRecords !== undefined ? { maxRecords: o.maxRecords } : {}),
    ...(o.window ? { window: o.window } : {}),
    ...(o.decode ? { decode: o.decode } : {}),
  });
  // Buffered, then replayed in chunks: the readers hand records over synchronously (the
  // embedded one in one loop), and the replay must yield to the event loop. The cap bounds
  // the buffer; records beyond it are only counted.
  const records: RecordedRecord[] = [];
  let skipped = 0;
  const labels: ScenarioLabel[] = [];
  await Promise.all([
    o.reader.readToEnd(
      topics.transactions,
      (r) => {
        const timestamp = Number(r.timestamp);
        if (timestamp < from || timestamp > now) return;
        if (records.length >= bt.maxRecords) skipped++;
        else records.push({ partition: r.partition, offset: r.offset, timestamp, value: r.value });
      },
      { timeoutMs, fromTimestampMs: from },
    ),
    o.reader.readToEnd(
      topics.labels,
      (r) => {
        const l = parseScenarioLabelJson(r.value.toString("utf8"));
        if (l) labels.push(l);
      },
      { timeoutMs, fromTimestampMs: from - LABELS_MARGIN_MS },
    ),
  ]);
  await replayChunked(bt, records);
  records.length = 0;
  bt.counts.skipped += skipped;
  const incidents = incidentsWithin(labels, bt.replayed);
  // Labels of other runs or of incidents cut by the span's edges do not make a span labelled.
  const labelled = incidents.length > 0;
  const c = bt.counts;
  return {
    span: {
      from: new Date(c.firstTimestamp ?? from).toISOString(),
      to: new Date(c.lastTimestamp ?? now).toISOString(),
      records: c.records,
      truncated: bt.truncated,
      invalid: c.invalid,
      duplicates: c.duplicates,
      late: c.late,
    },
    labelled,
    candidate: resultJson(o.candidate.version, scoreRuleSet(sets[0]!, bt.alerts[0]!, incidents, labelled)),
    current: o.current
      ? resultJson(o.current.version, scoreRuleSet(sets[1]!, bt.alerts[1]!, incidents, labelled))
      : null,
  };
}

// ---------------------------------------------------------------------------------------
// HTTP

export interface BacktestApiDeps {
  /** Absent: the route answers 503. */
  topicReader: TopicReader | undefined;
  /** For `version` candidates and the current version; absent: documents only, no comparison. */
  rulesLog?: RulesLog | undefined;
  maxWindowMs: number;
  topics?: BacktestTopics | undefined;
}

const BACKTEST_BODY = {
  type: "object",
  required: ["last_minutes"],
  additionalProperties: false,
  properties: {
    document: { type: "object" },
    version: { type: "integer", minimum: 1 },
    last_minutes: { type: "integer", minimum: 1, maximum: MAX_BACKTEST_MINUTES },
    max_records: { type: "integer", minimum: 1, maximum: 5_000_000 },
  },
} as const;

interface BacktestBody {
  document?: unknown;
  version?: number;
  last_minutes: number;
  max_records?: number;
}

function parserErrors(err: unknown): string[] {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split("\n").filter((l) => l.trim() !== "");
}

/** Mounts POST /api/rules/backtest; writes are authenticated by the server's policy (it costs CPU). */
export function registerBacktestApi(app: FastifyInstance, deps: BacktestApiDeps): void {
  app.post("/api/rules/backtest", { schema: { body: BACKTEST_BODY } }, async (req, reply) => {
    const reader = deps.topicReader;
    if (!reader) {
      return reply
        .code(503)
        .send({ error: "this dashboard has no record log reader (start it with the Kafka)" });
    }
    const body = req.body as BacktestBody;
    if (body.document !== undefined && body.version !== undefined) {
      return reply.code(400).send({ error: "give document or version, not both" });
    }
    if (running) return reply.code(409).send({ error: "a backtest is already running" });
    const history = deps.rulesLog ? await deps.rulesLog.history() : [];
    const parse = (doc: unknown) => parseRules(doc, { maxWindowMs: deps.maxWindowMs });
    const latest = history.at(-1);
    let current: VersionedRuleSet | undefined;
    if (latest) current = { ruleSet: parse(latest.document), version: latest.version };
    let candidate: VersionedRuleSet;
    if (body.document !== undefined) {
      try {
        candidate = { ruleSet: parse(body.document), version: null };
      } catch (err) {
        return reply.code(422).send({ errors: parserErrors(err) });
      }
    } else if (body.version !== undefined) {
      const v = history.find((h) => h.version === body.version);
      if (!v) return reply.code(404).send({ error: `no rules version ${body.version}` });
      candidate = { ruleSet: parse(v.document), version: v.version };
    } else {
      if (!current) return reply.code(404).send({ error: "no rules version is published yet" });
      candidate = current;
    }
    try {
      const report = await runBacktest({
        reader,
        topics: deps.topics,
        candidate,
        current: current?.version === candidate.version ? undefined : current,
        lastMs: body.last_minutes * 60_000,
        maxRecords: body.max_records,
        window: { windowMs: deps.maxWindowMs },
      });
      return reply.code(200).send(report);
    } catch (err) {
      if (isPaystreamError(err) && err.code === ErrorCodes.BACKTEST_BUSY) {
        return reply.code(409).send({ error: err.message });
      }
      throw err;
    }
  });
}

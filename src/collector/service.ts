/**
 * The collector service: paces the traffic generator to a target rate (changeable live over
 * HTTP) into a record sink (Kafka, or the embedded log in `paystream up`), with ground-truth
 * labels on `payments.labels`, a control API and metrics.
 */
import { appendFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { type Label, SCENARIO_TYPES, type ScenarioType } from "../contracts/labels.ts";
import type { OutRecord, RecordSink } from "../contracts/ports.ts";
import { ConfigError, isPaystreamError, type PaystreamError } from "../core/errors.ts";
import { type AccessPolicy, accessStatus, createServiceHttp, listen, resolveAccess } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { createRegistry, LATENCY_BUCKETS, METRIC_PREFIX as P } from "../lib/metrics.ts";
import type { CollectorConfig } from "./config.ts";
import { type FaultRates, type GeneratedRecord, type ScenarioRates, TrafficGenerator } from "./generator.ts";
import { Pacer, RateMeter } from "./pacer.ts";

function createCollectorMetrics(registry: Registry) {
  const registers = [registry];
  return {
    targetRate: new Gauge({
      name: `${P}collector_target_rate`,
      help: "Target transactions per second",
      registers,
    }),
    actualRate: new Gauge({
      name: `${P}collector_actual_rate`,
      help: "Records acknowledged per second, mean of the last 10 s",
      registers,
    }),
    records: new Counter({
      name: `${P}collector_records_total`,
      help: "Records acknowledged by the sink, by kind (normal, scenario, duplicate, late, out_of_order, malformed)",
      labelNames: ["kind"] as const,
      registers,
    }),
    labels: new Counter({
      name: `${P}collector_labels_total`,
      help: "Ground-truth labels produced, by type",
      labelNames: ["type"] as const,
      registers,
    }),
    sendErrors: new Counter({
      name: `${P}collector_send_errors_total`,
      help: "Failed produce requests (retried)",
      registers,
    }),
    produceLatency: new Histogram({
      name: `${P}collector_produce_latency_seconds`,
      help: "Produce request latency (send → acknowledged)",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({
      name: `${P}collector_in_flight_requests`,
      help: "Produce requests awaiting acknowledgement",
      registers,
    }),
  };
}

export interface CollectorTotals {
  produced: number;
  byKind: Record<string, number>;
  labels: Record<string, number>;
  sendErrors: number;
  /** Generated records given up on at a stop because the broker would not take them in time. */
  unsent: number;
}

export class Collector {
  readonly generator: TrafficGenerator;
  readonly #sink: RecordSink;
  readonly #cfg: CollectorConfig;
  readonly #log: Logger;
  readonly #pacer: Pacer;
  readonly #meter = new RateMeter(10);
  readonly metrics: ReturnType<typeof createCollectorMetrics>;
  readonly #inFlight = new Set<Promise<void>>();
  #running = false;
  #loop: Promise<void> | undefined;
  #failing: string | undefined;
  #queued = 0;
  readonly totals: CollectorTotals = { produced: 0, byKind: {}, labels: {}, sendErrors: 0, unsent: 0 };
  /** Set when a stop's grace period ran out, or the sink refused for good: in-flight sends stop retrying. */
  #abandon = false;
  #fatal: PaystreamError | undefined;
  readonly #topic: string;
  readonly #labelsTopic: string;
  /** Resolves when a --count / --duration bound is reached. */
  readonly finished: Promise<void>;
  #finish!: () => void;

  constructor(cfg: CollectorConfig, sink: RecordSink, log: Logger, registry: Registry) {
    this.#cfg = cfg;
    this.#sink = sink;
    this.#log = log;
    this.#topic = cfg.topic;
    this.#labelsTopic = cfg.labelsTopic;
    this.metrics = createCollectorMetrics(registry);
    this.generator = new TrafficGenerator({
      seed: cfg.seed,
      accounts: cfg.accounts,
      merchants: cfg.merchants,
      scenarioRates: Object.fromEntries(SCENARIO_TYPES.map((t) => [t, cfg.scenarioRate])) as ScenarioRates,
      faultRates: cfg.faults,
      lateMaxMs: cfg.lateMaxMs,
    });
    this.#pacer = new Pacer(cfg.rate, Date.now());
    this.metrics.targetRate.set(cfg.rate);
    this.finished = new Promise((r) => {
      this.#finish = r;
    });
  }

  get rate(): number {
    return this.#pacer.rate;
  }

  setRate(rate: number): void {
    this.#pacer.setRate(rate, Date.now());
    this.metrics.targetRate.set(rate);
    this.#log.info({ messages_per_second: rate }, "rate changed");
  }

  actualRate(): number {
    return this.#meter.rate(Date.now());
  }

  /** Why the collector is not ready (sink failing), or undefined. */
  get failing(): string | undefined {
    return this.#failing;
  }

  /**
   * The error that stopped the collector: the sink refused records for good (Kafka's
   * PS_KAFKA_REJECTED: too large, not authorized, unknown topic). Undefined while it runs.
   */
  get fatal(): PaystreamError | undefined {
    return this.#fatal;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const cfg = this.#cfg;
    const started = Date.now();
    const buf: GeneratedRecord[] = [];
    while (this.#running) {
      const now = Date.now();
      if (cfg.durationMs > 0 && now - started >= cfg.durationMs) break;
      let due = this.#pacer.due(now);
      if (cfg.count > 0) due = Math.min(due, cfg.count - this.#queued);
      if (cfg.count > 0 && this.#queued >= cfg.count) break;
      while (due > 0 && this.#running) {
        const n = Math.min(due, cfg.batchSize);
        // Backpressure: never more than maxInFlight requests outstanding.
        while (this.#inFlight.size >= cfg.maxInFlight) await Promise.race(this.#inFlight);
        this.generator.fill(buf, n, Date.now());
        this.#send(buf);
        this.#pacer.sent(n);
        this.#queued += n;
        due -= n;
      }
      await new Promise((r) => setTimeout(r, cfg.lingerMs));
    }
    await Promise.all(this.#inFlight);
    this.#running = false;
    this.#finish();
  }

  #send(batch: GeneratedRecord[]): void {
    // `batch` is the caller's reused buffer: read everything needed from it now, not in the callback.
    const n = batch.length;
    const records: OutRecord[] = new Array(n);
    const labels: Label[] = [];
    const kinds: Record<string, number> = {};
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      records[i] = { topic: this.#topic, key: r.key, value: r.value };
      kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
      if (r.label) labels.push(r.label);
    }
    for (const l of labels) {
      records.push({ topic: this.#labelsTopic, key: labelKey(l), value: JSON.stringify(l) });
    }
    const p = this.#sendWithRetry(records).then((delivered) => {
      if (!delivered) {
        this.totals.unsent += n;
        return;
      }
      const now = Date.now();
      this.#meter.add(n, now);
      this.totals.produced += n;
      for (const [k, n] of Object.entries(kinds)) {
        this.totals.byKind[k] = (this.totals.byKind[k] ?? 0) + n;
        this.metrics.records.inc({ kind: k }, n);
      }
      for (const l of labels) {
        this.totals.labels[l.type] = (this.totals.labels[l.type] ?? 0) + 1;
        this.metrics.labels.inc({ type: l.type });
      }
      if (this.#cfg.labelsFile && labels.length) {
        appendFileSync(this.#cfg.labelsFile, `${labels.map((l) => JSON.stringify(l)).join("\n")}\n`);
      }
      this.metrics.actualRate.set(this.#meter.rate(now));
    });
    this.#inFlight.add(p);
    this.metrics.inFlight.set(this.#inFlight.size);
    void p.finally(() => {
      this.#inFlight.delete(p);
      this.metrics.inFlight.set(this.#inFlight.size);
    });
  }

  /** Resolves true once the sink took the records, false if a stop gave up on them. */
  async #sendWithRetry(records: OutRecord[]): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (this.#abandon) return false;
      const t0 = performance.now();
      try {
        await this.#sink.send(records);
        this.metrics.produceLatency.observe((performance.now() - t0) / 1000);
        if (this.#failing) {
          this.#log.info("sink recovered");
          this.#failing = undefined;
        }
        return true;
      } catch (err) {
        this.totals.sendErrors++;
        this.metrics.sendErrors.inc();
        const previous = this.#failing;
        this.#failing = (err as Error).message;
        // Retrying what the broker refuses for good would stall the collector forever: stop.
        if (isPaystreamError(err) && !err.retriable) {
          this.#stopOnFatal(err);
          return false;
        }
        // Also whenever the reason changes: an outage that turns from a time-out into
        // NOT_ENOUGH_REPLICAS says something new about the cluster.
        if (attempt === 0 || attempt % 20 === 0 || reasonOf(this.#failing) !== reasonOf(previous))
          this.#log.warn({ err: this.#failing, attempt }, "produce failed, retrying");
        await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(attempt, 6))));
      }
    }
  }

  /**
   * A final refusal: generation stops, the sends in flight stop retrying (their records are
   * counted as unsent, as when a stop's grace period runs out), and `finished` resolves, so
   * `paystream collector` exits non-zero and Kubernetes shows why.
   */
  #stopOnFatal(err: PaystreamError): void {
    if (this.#fatal) return;
    this.#fatal = err;
    this.#log.error(
      { code: err.code, err: err.message, ...err.details },
      "the sink refused records for good; stopping the collector (records in flight are counted as unsent)",
    );
    this.#running = false;
    this.#abandon = true;
  }

  /**
   * Stops generating and waits for every in-flight record to be acknowledged — for at most
   * graceMs: a broker that cannot take them must not hang a SIGTERM forever. What is given up
   * is counted in totals.unsent (and produced/labels count only what the broker took).
   */
  async stop(graceMs = 15_000): Promise<void> {
    this.#running = false;
    const timer = setTimeout(() => {
      this.#abandon = true;
      if (this.#inFlight.size > 0)
        this.#log.error(
          { graceMs },
          "stop: the broker did not take the in-flight records in time; giving up on them",
        );
    }, graceMs);
    try {
      await this.#loop;
    } finally {
      clearTimeout(timer);
    }
  }
}

function labelKey(l: Label): string {
  switch (l.type) {
    case "scenario":
      return l.scenario_id;
    case "malformed":
      return l.key;
    default:
      return l.transaction_id;
  }
}

// ------------------------------------------------------------------------------ HTTP API

const rateBody = (max: number) => ({
  type: "object",
  required: ["messages_per_second"],
  additionalProperties: false,
  properties: { messages_per_second: { type: "integer", minimum: 0, maximum: max } },
});

const rateMap = (keys: readonly string[], max: number) => ({
  type: "object",
  additionalProperties: false,
  properties: Object.fromEntries(keys.map((k) => [k, { type: "number", minimum: 0, maximum: max }])),
});

const configBody = (maxRate: number) => ({
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: {
    messages_per_second: { type: "integer", minimum: 0, maximum: maxRate },
    scenario_rates: rateMap(SCENARIO_TYPES, 1),
    fault_rates: rateMap(["duplicate", "late", "outOfOrder", "malformed"], 0.5),
  },
});

/**
 * The control API's routes. Credentials, Host and Origin are checked by the server's access
 * policy (src/lib/http.ts) before any of these runs, on every write method; bodies are
 * validated strictly by the server's validator.
 */
export function registerCollectorRoutes(
  app: FastifyInstance,
  collector: Collector,
  cfg: CollectorConfig,
  access?: AccessPolicy,
): void {
  const view = () => {
    const s = collector.generator.settings();
    return {
      messages_per_second: collector.rate,
      max_messages_per_second: cfg.maxRate,
      actual_messages_per_second: Math.round(collector.actualRate()),
      seed: s.seed,
      accounts: s.accounts,
      merchants: s.merchants,
      scenario_rates: s.scenarioRates,
      fault_rates: s.faultRates,
      late_max_ms: s.lateMaxMs,
    };
  };

  app.get("/config", async () => view());
  app.post("/config/rate", { schema: { body: rateBody(cfg.maxRate) } }, async (req) => {
    const { messages_per_second } = req.body as { messages_per_second: number };
    const previous = collector.rate;
    collector.setRate(messages_per_second);
    return { messages_per_second, previous };
  });
  app.put("/config", { schema: { body: configBody(cfg.maxRate) } }, async (req) => {
    const body = req.body as {
      messages_per_second?: number;
      scenario_rates?: Partial<ScenarioRates>;
      fault_rates?: Partial<FaultRates>;
    };
    if (body.scenario_rates) collector.generator.setScenarioRates(body.scenario_rates);
    if (body.fault_rates) {
      const merged = { ...collector.generator.settings().faultRates, ...body.fault_rates };
      const total = merged.duplicate + merged.late + merged.outOfOrder + merged.malformed;
      if (total > 0.9)
        throw Object.assign(new Error(`fault rates add up to ${total}, more than 0.9`), { statusCode: 400 });
      collector.generator.setFaultRates(body.fault_rates);
    }
    if (body.messages_per_second !== undefined) collector.setRate(body.messages_per_second);
    return view();
  });
  app.post<{ Params: { type: string } }>("/scenarios/:type", async (req, reply) => {
    const type = req.params.type as ScenarioType;
    if (!SCENARIO_TYPES.includes(type)) {
      return reply.code(404).send({
        error: "not_found",
        reason: `unknown scenario ${type}; one of ${SCENARIO_TYPES.join(", ")}`,
      });
    }
    const id = collector.generator.injectScenario(type, Date.now());
    if (id === null)
      return reply.code(409).send({ error: "conflict", reason: "no quiet account available right now" });
    return { scenario_id: id, scenario: type };
  });
  app.get("/stats", async () => ({ ...collector.totals, counters: collector.generator.counters() }));
  app.get("/status", async () => ({
    api: access ? accessStatus(access) : { writes: "open (no access policy)" },
    target_rate: collector.rate,
    actual_rate: Math.round(collector.actualRate()),
    produced: collector.totals.produced,
    unsent: collector.totals.unsent,
    send_errors: collector.totals.sendErrors,
    failing: collector.failing ?? null,
    fatal: collector.fatal ? { code: collector.fatal.code, message: collector.fatal.message } : null,
  }));
}

/**
 * The control API's access policy, or a refusal to start without a token (unless demo or
 * --insecure-open-api). Called before anything connects, so a missing secret fails fast.
 */
export function collectorAccess(cfg: CollectorConfig, log?: Logger): AccessPolicy {
  return resolveAccess(
    {
      what: "collector API",
      credentialHint: "--api-token (env PAYSTREAM_API_TOKEN)",
      token: cfg.http.token,
      insecureOpenApi: cfg.http.insecureOpenApi,
      demo: cfg.http.demo,
      bindHost: cfg.http.host,
      allowedHosts: cfg.http.allowedHosts,
      allowedOrigins: cfg.http.allowedOrigins,
    },
    log,
  );
}

export interface RunningCollector {
  collector: Collector;
  http: FastifyInstance;
  url: string;
  stop: () => Promise<CollectorTotals>;
}

export async function startCollector(
  cfg: CollectorConfig,
  sink: RecordSink,
  log: Logger,
  opts: {
    registry?: Registry;
    readiness?: () => string | undefined;
    topics?: { transactions?: string; labels?: string };
    /** Resolved by the caller already (src/app checks it before connecting to Kafka). */
    access?: AccessPolicy;
  } = {},
): Promise<RunningCollector> {
  if (cfg.rate > cfg.maxRate) throw new ConfigError("rate", `must not exceed max-rate ${cfg.maxRate}`);
  const access = opts.access ?? collectorAccess(cfg, log);
  const registry = opts.registry ?? createRegistry("collector");
  const collector = new Collector(cfg, sink, log, registry);
  const http = createServiceHttp({
    registry,
    readiness: [
      { name: "sink", check: () => collector.failing },
      ...(opts.readiness ? [{ name: "broker", check: opts.readiness }] : []),
    ],
    limits: {
      ...(cfg.http.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: cfg.http.requestTimeoutMs }),
      ...(cfg.http.connectionTimeoutMs === undefined
        ? {}
        : { connectionTimeoutMs: cfg.http.connectionTimeoutMs }),
    },
    access,
  });
  registerCollectorRoutes(http, collector, cfg, access);
  const url = await listen(http, cfg.http.host, cfg.http.port, "collector API");
  collector.start();
  log.info({ url, rate: cfg.rate, seed: cfg.seed, accounts: cfg.accounts }, "collector running");
  let stopped: Promise<CollectorTotals> | undefined;
  return {
    collector,
    http,
    url,
    stop: () => {
      stopped ??= (async () => {
        await collector.stop();
        await http.close();
        log.info({ totals: collector.totals }, "collector stopped");
        return collector.totals;
      })();
      return stopped;
    },
  };
}

/** A failure's reason without its trailing details in parentheses, to tell one outage from another. */
function reasonOf(message: string | undefined): string | undefined {
  return message?.split(" (")[0];
}

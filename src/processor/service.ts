/**
 * The processor as a running service on its ports (which adapters stand behind them is
 * src/app's choice): serves /metrics /healthz /readyz /status, reloads rules, and stops
 * gracefully (SIGTERM: stop fetching, make everything in flight durable, commit, leave the
 * group, then close the ports).
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import type {
  AlertStore,
  CaseStore,
  DedupStore,
  RecordSink,
  RecordSource,
  Warehouse,
} from "../contracts/ports.ts";
import type { RulesLog } from "../contracts/rules-log.ts";
import { Deduper } from "../core/dedup.ts";
import { DlqKey, parseDlqKeyHex } from "../core/dlq-crypto.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import { Masker } from "../core/masking.ts";
import { createServiceHttp, listen } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { createRegistry } from "../lib/metrics.ts";
import type { ProcessorConfig } from "./config.ts";
import { createProcessorMetrics } from "./metrics.ts";
import { Processor } from "./processor.ts";
import {
  followRules,
  publishRulesFile,
  type RulesFollowing,
  readRulesFile,
  watchRules,
} from "./rules-file.ts";

/** Everything the processor reads and writes. */
export interface ProcessorPorts {
  source: RecordSource;
  sink: RecordSink;
  alertStore: AlertStore;
  /** The shared dedup tier; used only with cfg.dedupShared. */
  dedupStore?: DedupStore;
  /** Where live alerts are filed into cases (docs/cases.md); without it no cases are kept. */
  caseStore?: CaseStore;
  warehouse: Warehouse;
  /**
   * The rules control log: the file is published to it and the replica applies what it
   * says. Without it the file's rules are applied directly (reloads included).
   */
  rulesLog?: RulesLog;
  /** Called once the processor has stopped (the source is closed by then). */
  close: () => Promise<void>;
}

/** The PII key: hex if it looks like hex (>= 32 hex digits), otherwise the UTF-8 bytes. */
export function resolvePiiKey(cfg: Pick<ProcessorConfig, "piiKey" | "demo">, log: Logger): Buffer {
  if (cfg.piiKey) {
    return /^[0-9a-fA-F]{32,}$/.test(cfg.piiKey) && cfg.piiKey.length % 2 === 0
      ? Buffer.from(cfg.piiKey, "hex")
      : Buffer.from(cfg.piiKey, "utf8");
  }
  if (cfg.demo) {
    log.warn("demo mode: generated a random PII key for this run; tokens will differ after a restart");
    return randomBytes(32);
  }
  throw new PaystreamError(
    ErrorCodes.SECRET_MISSING,
    "no PII masking key: set PAYSTREAM_PII_KEY (or --pii-key) from a secret, or run with --demo to generate a throwaway one",
  );
}

/**
 * The key sealing DLQ originals for redrive, said once at start-up: which key id seals them,
 * that a demo key is thrown away with the process, or that no original is kept at all.
 * Never logs the key.
 */
export function resolveDlqKey(
  cfg: Pick<ProcessorConfig, "dlqKey" | "dlqKeyId" | "demo">,
  log: Logger,
): DlqKey | undefined {
  if (cfg.dlqKey) {
    const key = new DlqKey(parseDlqKeyHex(cfg.dlqKey), cfg.dlqKeyId);
    log.info({ dlqKeyId: key.id }, "DLQ originals are sealed (AES-256-GCM) for `paystream dlq redrive`");
    return key;
  }
  if (cfg.demo) {
    const key = DlqKey.random();
    log.warn(
      { dlqKeyId: key.id },
      "demo mode: generated a throwaway DLQ key; DLQ originals sealed with it cannot be redriven after this process exits",
    );
    return key;
  }
  log.warn(
    "no DLQ key (PAYSTREAM_DLQ_KEY): the DLQ keeps only masked projections and no copy of the original records, " +
      "so `paystream dlq redrive` cannot redrive them",
  );
  return undefined;
}

export interface RunningProcessor {
  processor: Processor;
  http: FastifyInstance;
  registry: Registry;
  url: string;
  stop: () => Promise<void>;
  /** Resolves when the processor stopped (gracefully or fatally), with the exit code. */
  done: Promise<number>;
}

export async function startProcessor(
  cfg: ProcessorConfig,
  log: Logger,
  ports: ProcessorPorts,
  opts: { registry?: Registry; listenHttp?: boolean } = {},
): Promise<RunningProcessor> {
  const key = resolvePiiKey(cfg, log);
  const dlqKey = resolveDlqKey(cfg, log);
  const { rules, document: fileDocument } = readRulesFile(cfg.rulesFile, cfg.windowMs);
  if (ports.warehouse.name === "bigquery" && !cfg.dedupShared) {
    // BigQuery's insertId dedup is best effort: beyond the window, only Redis claims keep a
    // late resend out of the tables (docs/processor.md, "Dedup").
    log.warn("BigQuery cannot refuse a duplicate key: run with --dedup-shared to dedup beyond the window");
  }
  const registry = opts.registry ?? createRegistry("processor");
  const metrics = createProcessorMetrics(registry);
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });

  const processor = new Processor(
    {
      source: ports.source,
      sink: ports.sink,
      alertStore: ports.alertStore,
      warehouse: ports.warehouse,
      ...(cfg.dedupShared && ports.dedupStore ? { deduper: new Deduper(ports.dedupStore) } : {}),
      ...(ports.caseStore ? { caseStore: ports.caseStore } : {}),
      masker: new Masker(key, { coordinateDecimals: cfg.coordinateDecimals }),
      ...(dlqKey ? { dlqKey } : {}),
      metrics,
      log: log.child({ component: "processor" }),
      onFatal: () => void stop(1),
    },
    {
      rules,
      window: { windowMs: cfg.windowMs, allowedLatenessMs: cfg.allowedLatenessMs },
      maxMessageBytes: cfg.maxMessageBytes,
      maxFutureSkewMs: cfg.maxFutureSkewMs,
      maxAgeMs: cfg.maxAgeMs,
      maxAmountMinor: cfg.maxAmountMinor,
      maxInFlight: cfg.maxInFlight,
      recoverySpanMs: cfg.recoverySpanMs,
      caseSyncIntervalMs: cfg.caseSyncIntervalMs,
      partitionStallMs: cfg.partitionStallMs,
      dlqTopic: cfg.kafka.dlqTopic,
      alertsTopic: cfg.kafka.alertsTopic,
    },
  );

  const rulesLog = ports.rulesLog;
  let following: RulesFollowing | undefined;
  if (rulesLog) {
    // The file first (a no-op when the log already has it), then the log's current version:
    // consuming starts only once that is applied.
    const published = await publishRulesFile(rulesLog, cfg.rulesFile, fileDocument);
    if (published) log.info({ version: published.version, file: cfg.rulesFile }, "rules file published");
    following = await followRules({
      rulesLog,
      maxWindowMs: cfg.windowMs,
      apply: (r, v) => {
        processor.setRules(r, v.version);
        metrics.rulesReloads.inc({ result: "ok" });
        log.info(
          { version: v.version, source: v.source, rules: r.compiled.map((c) => c.id) },
          "rules version applied",
        );
      },
      refused: (v, err) => {
        metrics.rulesReloads.inc({ result: "error" });
        log.error(
          { version: v.version, source: v.source, err: err.message },
          "rules version refused on this replica; keeping the previous rules",
        );
      },
    });
    if (following.current === undefined)
      log.error("no version on the rules log applies here; running the file's rules");
  }

  const rulesWatch = watchRules({
    path: cfg.rulesFile,
    maxWindowMs: cfg.windowMs,
    onLoad: (r, document) => {
      if (!rulesLog) {
        processor.setRules(r);
        metrics.rulesReloads.inc({ result: "ok" });
        log.info({ rules: r.compiled.map((c) => c.id) }, "rules reloaded");
        return;
      }
      // Applied when it comes back from the log, like a publish from anywhere else.
      publishRulesFile(rulesLog, cfg.rulesFile, document).then(
        (v) => v && log.info({ version: v.version, file: cfg.rulesFile }, "rules file published"),
        (err: Error) => {
          metrics.rulesReloads.inc({ result: "error" });
          log.error({ err: err.message }, "rules file could not be published; keeping the current rules");
        },
      );
    },
    onError: (err) => {
      metrics.rulesReloads.inc({ result: "error" });
      log.error({ err: err.message }, "rules reload rejected; keeping the previous rules");
    },
  });

  let started = false;
  const http = createServiceHttp({
    registry,
    readiness: [
      { name: "consumer", check: () => (started ? undefined : "not yet in the consumer group") },
      {
        name: "dependencies",
        check: () =>
          processor.health.size === 0
            ? undefined
            : [...processor.health.entries()].map(([k, v]) => `${k}: ${v}`).join("; "),
      },
    ],
  });
  http.get("/status", async () => ({
    lag: await processor
      .refreshLag()
      .then((l) => Number([...l.values()].reduce((a, b) => a + b, 0n)))
      .catch(() => null),
    totals: processor.totals,
    alertsByRule: Object.fromEntries(processor.alertsByRule),
    windowAccounts: processor.windowAccounts(),
    // Which partitions this replica owns and is still rebuilding: a partition whose lag never
    // falls is either owned by no live replica or stuck in its owner's recovery.
    partitions: processor.partitions(),
    rules: processor.rules.compiled.map((c) => c.id),
    rulesVersion: processor.rulesVersion ?? null,
    shadowRules: [...processor.rules.shadowIds],
    shadowAlertsByRule: Object.fromEntries(processor.shadowAlertsByRule),
    health: Object.fromEntries(processor.health),
  }));
  let url = "";
  if (opts.listenHttp !== false) url = await listen(http, cfg.http.host, cfg.http.port, "processor metrics");

  const lagTimer = setInterval(() => {
    processor.refreshLag().catch((err) => log.debug({ err: (err as Error).message }, "lag refresh failed"));
  }, 5000);
  lagTimer.unref();

  let stopping: Promise<void> | undefined;
  const stop = (code = 0): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping: draining in-flight batches and committing offsets");
      clearInterval(lagTimer);
      rulesWatch.close();
      await following?.close().catch(() => {});
      await processor.close();
      await rulesLog?.close().catch(() => {});
      await ports.close();
      await http.close();
      log.info({ totals: processor.totals }, "processor stopped");
      resolveDone(code);
    })();
    return stopping;
  };

  await processor.start();
  started = true;
  log.info(
    {
      url,
      rules: processor.rules.compiled.map((c) => c.id),
      rulesVersion: processor.rulesVersion,
      warehouse: ports.warehouse.name,
    },
    "processor running",
  );
  return { processor, http, registry, url, stop: () => stop(0), done };
}

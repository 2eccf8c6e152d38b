/**
 * The dashboard on a Fastify instance: the UI (built once in memory), a JSON API, and a
 * Server-Sent Events stream with one snapshot per refresh interval. It reads its sources
 * every interval (collector, processors, alert feed), aggregates, and pushes the snapshot to
 * every open stream. `paystream up` mounts it on its own HTTP server; `paystream dashboard`
 * runs it alone.
 *
 *   GET  /                      the UI
 *   GET  /assets/app.js|css     the bundle
 *   GET  /api/snapshot          the latest snapshot (JSON)
 *   GET  /api/events            text/event-stream, `event: snapshot` every interval
 *   GET  /api/alerts?limit=N    latest alerts, masked (N ≤ 100, default 25)
 *   GET  /api/status            how the dashboard is protected, event streams open
 *   POST /api/collector/rate    {"messages_per_second": N} validated, then forwarded to the collector; its answer (and 4xx reason) returned as is
 *
 * Who may call what is the server's access policy (src/lib/http.ts, installed by
 * createServiceHttp): writes always need the dashboard's own credentials (outside demo), reads
 * of /api/ too unless --open-reads. A caller the policy refused never reaches these handlers,
 * so the collector's token is only ever sent on behalf of an authenticated caller.
 */
import type { ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { Registry } from "prom-client";
import { HttpDefaults, ProcessorDefaults } from "../contracts/defaults.ts";
import type { CaseStore, TopicReader } from "../contracts/ports.ts";
import type { RulesLog } from "../contracts/rules-log.ts";
import {
  type AccessPolicy,
  accessStatus,
  type BasicCredential,
  resolveAccess,
  SECURITY_HEADERS,
} from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { type AggregatorOptions, DashboardAggregator } from "./aggregate.ts";
import { type BacktestTopics, registerBacktestApi } from "./backtest-api.ts";
import { buildUi, type UiBundle } from "./bundle.ts";
import { registerCasesApi } from "./cases-api.ts";
import type { DashboardSnapshot, FeedAlert } from "./model.ts";
import { toFeedAlert } from "./normalize.ts";
import { registerRulesApi } from "./rules-api.ts";
import { type DashboardSources, readAll } from "./sources.ts";

export interface DashboardOptions extends AggregatorOptions {
  sources: DashboardSources;
  /** Refresh interval (ms); the UI gets one snapshot per interval. */
  intervalMs?: number;
  log?: Logger;
  /** Event streams served at once; 503 beyond (default HttpDefaults.maxSseClients). */
  maxSseClients?: number;
  /** The server's access policy, shown by /api/status. */
  access?: AccessPolicy;
  /** The rules log the rules API lists, publishes to and rolls back on; absent: 503. */
  rulesLog?: RulesLog;
  /** The processors' window (ms): a rule's windowMs may not exceed it. */
  maxWindowMs?: number;
  /** The cases the processors file; absent: the cases API answers 503. */
  caseStore?: CaseStore;
  /** The server's metrics registry: precision per rule is exported on its /metrics. */
  registry?: Registry;
  /** The record log's reader, for backtests on recorded traffic; absent: 503. */
  topicReader?: TopicReader;
  /** The transactions and labels topics backtests read (default payments.transactions, payments.labels). */
  backtestTopics?: BacktestTopics;
}

/** Reads that need the dashboard's credentials unless --open-reads: everything with data. */
export const DASHBOARD_PROTECTED_READS = ["/api/"] as const;

/**
 * With a Basic login only, the page itself is protected too: the browser asks for the login
 * when the page is opened, then sends it with every request. With a token the page stays
 * open (it holds no data) so that it can ask for the token.
 */
export function dashboardProtectedReads(auth: {
  token: string | undefined;
  basic: BasicCredential | undefined;
  openReads: boolean;
}): readonly string[] {
  if (auth.openReads) return [];
  return auth.basic && !auth.token ? ["/"] : DASHBOARD_PROTECTED_READS;
}

/**
 * The dashboard's access policy, or a refusal to start without credentials (unless demo or
 * --insecure-open-api). The probes stay open, and the UI and its assets unless the only
 * credential is a Basic login: they hold no data.
 */
export function dashboardAccess(
  auth: {
    token: string | undefined;
    basic: BasicCredential | undefined;
    openReads: boolean;
    insecureOpenApi: boolean;
  },
  http: { host: string; allowedHosts?: string[] | undefined; allowedOrigins?: string[] | undefined },
  demo: boolean,
  log?: Logger,
): AccessPolicy {
  return resolveAccess(
    {
      what: "dashboard",
      credentialHint:
        "--auth-token (env PAYSTREAM_DASHBOARD_TOKEN) or --basic-auth (env PAYSTREAM_DASHBOARD_BASIC_AUTH)",
      token: auth.token,
      basic: auth.basic,
      insecureOpenApi: auth.insecureOpenApi,
      demo,
      bindHost: http.host,
      allowedHosts: http.allowedHosts,
      allowedOrigins: http.allowedOrigins,
      protectedReads: dashboardProtectedReads(auth),
    },
    log,
  );
}

/** The rate form's body, checked here before anything is forwarded (the collector checks its maximum). */
const RATE_BODY = {
  type: "object",
  required: ["messages_per_second"],
  additionalProperties: false,
  properties: { messages_per_second: { type: "integer", minimum: 0, maximum: 10_000_000 } },
} as const;

export interface MountedDashboard {
  /** Resolves once the UI bundle is built; rejects if it cannot be. */
  ready: Promise<UiBundle>;
  /** Reads every source now and returns (and pushes) the new snapshot. */
  refresh: () => Promise<DashboardSnapshot>;
}

/**
 * The UI is one same-origin module script and one stylesheet (esbuild, no inline code), so
 * nothing else needs allowing; React's style properties go through the CSSOM, which
 * style-src does not restrict. No framing by anyone (clickjacking of the rate form).
 */
const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>paystream — live</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/app.css">
<script type="module" src="assets/app.js"></script>
</head>
<body><div id="root"><noscript>The paystream dashboard needs JavaScript.</noscript></div></body>
</html>
`;

const MAX_BUFFERED = 1 << 20;

export function mountDashboard(app: FastifyInstance, opts: DashboardOptions): MountedDashboard {
  const aggregator = new DashboardAggregator(opts);
  const feedSize = opts.feedSize ?? 25;
  const clients = new Set<ServerResponse>();
  const maxClients = opts.maxSseClients ?? HttpDefaults.maxSseClients;
  const ready = buildUi();
  ready.then(
    (b) => opts.log?.debug({ ms: Math.round(b.buildMs) }, "dashboard UI built"),
    (err: Error) => opts.log?.error({ err: err.message }, "dashboard UI build failed"),
  );

  const push = (snapshot: DashboardSnapshot) => {
    const frame = `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
    for (const res of clients) {
      // A client that does not read is dropped rather than buffered without bound.
      if (res.writableLength > MAX_BUFFERED) {
        clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  };

  let inFlight: Promise<DashboardSnapshot> | undefined;
  const refresh = (): Promise<DashboardSnapshot> => {
    inFlight ??= (async () => {
      try {
        const readings = await readAll(opts.sources, feedSize, Date.now());
        const snapshot = aggregator.update(readings, Date.now());
        push(snapshot);
        return snapshot;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  const tick = () =>
    void refresh().catch((err: Error) => opts.log?.warn({ err: err.message }, "dashboard refresh failed"));
  const timer = setInterval(tick, opts.intervalMs ?? 1000);
  timer.unref();
  tick();

  app.addHook("preClose", async () => {
    clearInterval(timer);
    for (const res of clients) res.end();
    clients.clear();
  });

  const asset =
    (type: string, pick: (b: UiBundle) => string) => async (_req: unknown, reply: FastifyReply) => {
      const bundle = await ready;
      return reply.type(type).header("cache-control", "no-cache").send(pick(bundle));
    };
  app.get("/", async (_req, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("content-security-policy", UI_CSP)
      .header("cache-control", "no-cache")
      .send(INDEX_HTML),
  );
  app.get(
    "/assets/app.js",
    asset("text/javascript; charset=utf-8", (b) => b.js),
  );
  app.get(
    "/assets/app.css",
    asset("text/css; charset=utf-8", (b) => b.css),
  );

  app.get("/api/snapshot", async () => aggregator.latest ?? (await refresh()));

  app.get("/api/events", (req, reply) => {
    // Each stream holds a socket and a copy of every frame: a bounded number of them.
    if (clients.size >= maxClients) {
      return reply
        .code(503)
        .header("retry-after", "5")
        .send({ error: "unavailable", reason: `too many event streams open (at most ${maxClients})` });
    }
    reply.hijack();
    const res = reply.raw;
    // Hijacked: the server's onSend hook does not run, so the headers are set here.
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    // A stream is quiet between frames by design; the idle-connection timeout is for requests.
    // A reader that stops reading is dropped by the write-buffer bound in push(); one that
    // vanished without closing is found by TCP keep-alive probes.
    req.raw.socket?.setTimeout(0);
    req.raw.socket?.setKeepAlive(true, 30_000);
    res.write("retry: 2000\n\n");
    const latest = aggregator.latest;
    if (latest) res.write(`event: snapshot\ndata: ${JSON.stringify(latest)}\n\n`);
    clients.add(res);
    req.raw.on("close", () => clients.delete(res));
  });

  app.get<{ Querystring: { limit?: string } }>("/api/alerts", async (req, reply) => {
    const limit = req.query.limit === undefined ? feedSize : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      return reply.code(400).send({ error: "bad_request", reason: "limit must be an integer from 1 to 100" });
    }
    const raw = await opts.sources.alerts.latest(limit);
    return raw.map(toFeedAlert).filter((a): a is FeedAlert => a !== undefined);
  });

  app.get("/api/status", async () => ({
    api: opts.access ? accessStatus(opts.access) : { writes: "open (no access policy)" },
    event_streams: clients.size,
    max_event_streams: maxClients,
  }));

  app.post("/api/collector/rate", { schema: { body: RATE_BODY } }, async (req, reply) => {
    const collector = opts.sources.collector;
    if (!collector) {
      return reply.code(503).send({ error: "unavailable", reason: "this dashboard has no collector" });
    }
    // Only the validated field goes on: the caller's body is never passed through as it came.
    const { messages_per_second } = req.body as { messages_per_second: number };
    const answer = await collector.request("POST", "/config/rate", { messages_per_second });
    if (answer.error) return reply.code(502).send({ error: "collector_unreachable", reason: answer.error });
    if (answer.status < 300) tick();
    return reply.code(answer.status).send(answer.body);
  });

  registerCasesApi(app, { caseStore: opts.caseStore, ...(opts.registry ? { registry: opts.registry } : {}) });

  registerRulesApi(app, {
    rulesLog: opts.rulesLog,
    maxWindowMs: opts.maxWindowMs ?? ProcessorDefaults.windowMs,
    alerts: opts.sources.alerts,
  });

  registerBacktestApi(app, {
    topicReader: opts.topicReader,
    rulesLog: opts.rulesLog,
    maxWindowMs: opts.maxWindowMs ?? ProcessorDefaults.windowMs,
    topics: opts.backtestTopics,
  });

  return { ready, refresh };
}

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
 *   POST /api/collector/rate    {"messages_per_second": N} forwarded to the collector; its answer (and 4xx reason) returned as is
 */
import type { ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { Logger } from "../lib/log.ts";
import {
  type AggregatorOptions,
  DashboardAggregator,
  type DashboardSnapshot,
  type FeedAlert,
  toFeedAlert,
} from "./aggregate.ts";
import { buildUi, type UiBundle } from "./bundle.ts";
import { type DashboardSources, readAll } from "./sources.ts";

export interface DashboardOptions extends AggregatorOptions {
  sources: DashboardSources;
  /** Refresh interval (ms); the UI gets one snapshot per interval. */
  intervalMs?: number;
  log?: Logger;
}

export interface MountedDashboard {
  /** Resolves once the UI bundle is built; rejects if it cannot be. */
  ready: Promise<UiBundle>;
  /** Reads every source now and returns (and pushes) the new snapshot. */
  refresh: () => Promise<DashboardSnapshot>;
}

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; base-uri 'none'";

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
      .header("content-security-policy", CSP)
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
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
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

  app.post("/api/collector/rate", async (req, reply) => {
    const collector = opts.sources.collector;
    if (!collector) {
      return reply.code(503).send({ error: "unavailable", reason: "this dashboard has no collector" });
    }
    const answer = await collector.request("POST", "/config/rate", req.body ?? {});
    if (answer.error) return reply.code(502).send({ error: "collector_unreachable", reason: answer.error });
    if (answer.status < 300) tick();
    return reply.code(answer.status).send(answer.body);
  });

  return { ready, refresh };
}

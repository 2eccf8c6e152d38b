/**
 * Where the dashboard reads from. An upstream answers HTTP requests: a remote service over
 * the network (`paystream dashboard`), or a Fastify instance in this process through
 * `inject` (`paystream up`: the in-process collector's and processor's own routes, no socket).
 * Either way the dashboard sees the same /config, /stats, /status, /metrics and /readyz
 * answers, and a rate change goes through the collector's own validation.
 * The latest alerts come through the AlertFeed port (src/contracts/ports.ts): Redis or the
 * embedded store, as src/app chose.
 */
import { lookup } from "node:dns/promises";
import type { FastifyInstance } from "fastify";
import type { AlertFeed } from "../contracts/ports.ts";
import type { AlertsReading, Answer, Readings } from "./model.ts";

export interface Upstream {
  /** What the UI shows for it (a URL, or "in-process"). */
  readonly label: string;
  request(method: "GET" | "POST", path: string, body?: unknown): Promise<Answer>;
}

function decode(text: string, contentType: string | undefined): unknown {
  if (contentType?.includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** A service over HTTP. Never throws: no answer within the timeout is an Answer with `error`. */
export function httpUpstream(baseUrl: string, opts: { timeoutMs?: number; token?: string } = {}): Upstream {
  const base = baseUrl.replace(/\/+$/, "");
  return {
    label: base,
    async request(method, path, body) {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["content-type"] = "application/json";
      if (opts.token && method !== "GET") headers.authorization = `Bearer ${opts.token}`;
      try {
        const res = await fetch(`${base}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 2000),
        });
        return { status: res.status, body: decode(await res.text(), res.headers.get("content-type") ?? "") };
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        const why = e.name === "TimeoutError" ? "no answer in time" : (e.cause?.code ?? e.message);
        return { status: 0, body: undefined, error: `${base}: ${why}` };
      }
    },
  };
}

/** A Fastify instance in this process (its routes, validation and error handler), without a socket. */
export function injectUpstream(app: FastifyInstance, label: string, token?: string): Upstream {
  return {
    label,
    async request(method, path, body) {
      try {
        const res = await app.inject({
          method,
          url: path,
          ...(body === undefined ? {} : { payload: body as object }),
          headers: token && method !== "GET" ? { authorization: `Bearer ${token}` } : {},
        });
        return { status: res.statusCode, body: decode(res.body, String(res.headers["content-type"] ?? "")) };
      } catch (err) {
        return { status: 0, body: undefined, error: `${label}: ${(err as Error).message}` };
      }
    },
  };
}

/**
 * The processors behind a headless Service: every address its name resolves to, as an
 * upstream, resolved again on each call (pods are added and removed by the autoscaler).
 * Upstreams are kept per address so each keeps its label across readings. A failed lookup
 * yields one upstream that reports the error, so the UI shows why no processor is listed.
 */
export function dnsUpstreams(
  service: { host: string; port: number },
  resolve: (host: string) => Promise<string[]> = async (host) =>
    (await lookup(host, { all: true })).map((a) => (a.family === 6 ? `[${a.address}]` : a.address)),
): () => Promise<Upstream[]> {
  const known = new Map<string, Upstream>();
  const name = `${service.host}:${service.port}`;
  return async () => {
    let addresses: string[];
    try {
      addresses = [...new Set(await resolve(service.host))].sort();
    } catch (err) {
      const why = `${name}: ${(err as { code?: string }).code ?? (err as Error).message}`;
      return [{ label: name, request: async () => ({ status: 0, body: undefined, error: why }) }];
    }
    const out: Upstream[] = [];
    for (const a of addresses) {
      const url = `http://${a}:${service.port}`;
      let u = known.get(url);
      if (!u) {
        u = httpUpstream(url);
        known.set(url, u);
      }
      out.push(u);
    }
    for (const url of known.keys()) if (!out.some((u) => u.label === url)) known.delete(url);
    return out;
  };
}

export interface DashboardSources {
  collector: Upstream | undefined;
  /** A fixed list, or one found anew for each reading (replicas come and go with autoscaling). */
  processors: Upstream[] | (() => Promise<Upstream[]>);
  alerts: AlertFeed;
}

const ACTIVE_SPAN_MS = 5 * 60_000;

/** One reading of everything, concurrently. Never throws: failures become errors in the readings. */
export async function readAll(src: DashboardSources, feedSize: number, nowMs: number): Promise<Readings> {
  const collector = src.collector;
  const upstreams = typeof src.processors === "function" ? await src.processors() : src.processors;
  const [c, processors, alerts] = await Promise.all([
    collector
      ? Promise.all([
          collector.request("GET", "/config"),
          collector.request("GET", "/stats"),
          collector.request("GET", "/readyz"),
        ]).then(([config, stats, ready]) => ({ url: collector.label, config, stats, ready }))
      : undefined,
    Promise.all(
      upstreams.map(async (p) => {
        const [status, metrics, ready] = await Promise.all([
          p.request("GET", "/status"),
          p.request("GET", "/metrics"),
          p.request("GET", "/readyz"),
        ]);
        return { url: p.label, status, metrics, ready };
      }),
    ),
    Promise.all([src.alerts.latest(feedSize), src.alerts.activeAccounts(nowMs - ACTIVE_SPAN_MS)]).then(
      ([latest, active]): AlertsReading => ({ source: src.alerts.source, latest, activeAccounts: active }),
      (err: Error): AlertsReading => ({
        source: src.alerts.source,
        latest: [],
        activeAccounts: null,
        error: `${src.alerts.source}: ${err.message}`,
      }),
    ),
  ]);
  return { collector: c, processors, alerts };
}

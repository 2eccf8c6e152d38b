/**
 * The collector's and the dashboard's HTTP APIs as an attacker meets them: real
 * `paystream collector` (real Kafka) and `paystream dashboard` (real Redis) child processes
 * on loopback, probed over sockets. Each finding of issue 10's "Authenticated controls" and
 * "HTTP limits" has its case here: missing, bare, wrong and borrowed tokens; credentials
 * checked before the body; a dashboard that never forwards for a caller it did not
 * authenticate (a spy between it and the collector sees nothing); cross-origin writes; DNS
 * rebinding Host names; refusal to start without credentials and the loud opt-out; a request
 * that never finishes; too many event streams; JSON nested 30,000 deep; security headers;
 * loopback by default.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, describe, it } from "node:test";
import { hashBasicPassword } from "../../src/lib/http.ts";
import { createTestTopics, deleteTopics, type TestTopics } from "../helpers/pipeline.ts";
import { COLLECTOR_TOKEN, freePort, type Service, startService, waitUntil } from "../helpers/processes.ts";
import { services } from "../helpers/services.ts";

const DASHBOARD_TOKEN = "dashboard-token-0123456789abcdef";
const BASIC_USER = "ops";
const BASIC_PASSWORD = "a long and boring passphrase";
const DEEP = `{"messages_per_second": ${"[".repeat(30_000)}${"]".repeat(30_000)}}`;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request over a socket, any header allowed (Host included); never throws for a status. */
function raw(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: opts.method ?? "GET",
        path: opts.path,
        headers: {
          ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
          ...opts.headers,
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const basic = (u: string, p: string) => ({
  authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`,
});

async function targetRate(collectorPort: number): Promise<number> {
  return (JSON.parse((await raw(collectorPort, { path: "/config" })).body) as { messages_per_second: number })
    .messages_per_second;
}

function assertSecurityHeaders(a: Answer, where: string): void {
  assert.equal(a.headers["x-content-type-options"], "nosniff", where);
  assert.equal(a.headers["x-frame-options"], "DENY", where);
  assert.equal(a.headers["referrer-policy"], "no-referrer", where);
  assert.match(String(a.headers["content-security-policy"]), /frame-ancestors 'none'/, where);
}

/** Resolves when the socket is closed by the server (with what it said first), or rejects after `boundMs`. */
function closedWithin(socket: ReturnType<typeof connect>, boundMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let said = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      said += d;
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${boundMs} ms`));
    }, boundMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(said);
    });
    socket.on("error", () => {});
  });
}

function collectorArgs(topics: TestTopics, port: number, extra: string[] = []): string[] {
  return [
    "collector",
    "--kafka",
    services.kafka.join(","),
    "--topic",
    topics.input,
    "--labels-topic",
    topics.labels,
    "--rate",
    "0",
    "--port",
    String(port),
    ...extra,
  ];
}

async function waitHealthy(s: Service): Promise<void> {
  await waitUntil(
    async () => {
      if (s.child.exitCode !== null) throw new Error(`${s.name} exited:\n${s.output()}`);
      return (await raw(s.port, { path: "/healthz" }).catch(() => ({ status: 0 }))).status === 200;
    },
    30_000,
    `${s.name} answering`,
  );
}

async function stop(s: Service | undefined): Promise<void> {
  if (!s || s.child.exitCode !== null) return;
  s.child.kill("SIGTERM");
  const timer = setTimeout(() => s.child.kill("SIGKILL"), 20_000);
  await s.exited;
  clearTimeout(timer);
}

describe("hostile HTTP against the collector and the dashboard", () => {
  let topics: TestTopics;
  let collector: Service;
  let dashboard: Service;
  let spy: Server;
  /** Every request the dashboard made to the collector. */
  const seen: { method: string; url: string; authorization: string | undefined }[] = [];

  before(async () => {
    topics = await createTestTopics("it-hostile", 2);
    const collectorPort = freePort();
    collector = startService(
      "collector",
      // A slow request is cut off after 3 s, well before the idle timeout: the drip test
      // below is about the request timeout, not the idle one.
      collectorArgs(topics, collectorPort, ["--request-timeout", "3s", "--connection-timeout", "20s"]),
      collectorPort,
      { PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN },
    );
    await waitHealthy(collector);

    // Between the dashboard and the collector: records what reaches the collector, passes it on.
    spy = createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization });
      const up = request(
        { host: "127.0.0.1", port: collectorPort, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => spy.listen(0, "127.0.0.1", r));
    const spyPort = (spy.address() as { port: number }).port;

    const port = freePort();
    dashboard = startService(
      "dashboard",
      [
        "dashboard",
        "--redis",
        services.redis,
        "--collector-url",
        `http://127.0.0.1:${spyPort}`,
        "--processor-urls",
        `http://127.0.0.1:${freePort()}`,
        "--port",
        String(port),
        "--refresh",
        "500ms",
        "--max-sse-clients",
        "2",
        "--connection-timeout",
        "2s",
      ],
      port,
      {
        // The collector's token (sent to the collector) and the dashboard's own credentials.
        PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
        PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN,
        PAYSTREAM_DASHBOARD_BASIC_AUTH: hashBasicPassword(BASIC_USER, BASIC_PASSWORD),
      },
    );
    await waitUntil(
      () => dashboard.output().includes("paystream dashboard on") || dashboard.child.exitCode !== null,
      30_000,
      "dashboard listening",
    );
    assert.equal(dashboard.child.exitCode, null, dashboard.output());
  });

  after(async () => {
    await stop(dashboard);
    await stop(collector);
    await new Promise((r) => spy?.close(r));
    if (topics) await deleteTopics(topics);
  });

  it("collector: every write route refuses a missing, bare, wrong or mis-schemed token with 401, before reading the body", async () => {
    const routes: [string, string, string][] = [
      ["POST", "/config/rate", '{"messages_per_second": 5000}'],
      ["PUT", "/config", '{"messages_per_second": 5000}'],
      ["POST", "/scenarios/velocity_burst", "{}"],
      ["POST", "/config/anything-else", "{}"],
    ];
    const wrong: Record<string, string>[] = [
      {},
      { authorization: COLLECTOR_TOKEN },
      bearer(`${COLLECTOR_TOKEN}x`),
      bearer(DASHBOARD_TOKEN),
      { authorization: `Bearer  ${COLLECTOR_TOKEN}` },
      { authorization: `Token ${COLLECTOR_TOKEN}` },
      basic("ops", COLLECTOR_TOKEN),
    ];
    for (const [method, path, body] of routes) {
      for (const headers of wrong) {
        const a = await raw(collector.port, { method, path, headers, body });
        assert.equal(a.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
        assert.ok(!a.body.includes(COLLECTOR_TOKEN), "the token is never echoed");
        assertSecurityHeaders(a, `${method} ${path} 401`);
      }
    }
    // A body that would be a 400 is a 401 without credentials: nothing is parsed first.
    for (const body of ["{not json", '{"messages_per_second": -1}', DEEP]) {
      const a = await raw(collector.port, { method: "POST", path: "/config/rate", body });
      assert.equal(a.status, 401, body.slice(0, 30));
    }
    const bad = await raw(collector.port, {
      method: "POST",
      path: "/config/rate",
      headers: bearer(COLLECTOR_TOKEN),
      body: '{"messages_per_second": -1}',
    });
    assert.equal(bad.status, 400);
    assert.equal(await targetRate(collector.port), 0, "nothing changed the rate");
    const stats = JSON.parse((await raw(collector.port, { path: "/stats" })).body) as {
      counters: { scenariosStarted: Record<string, number> };
    };
    assert.equal(stats.counters.scenariosStarted.velocity_burst ?? 0, 0, "no incident was injected");
    // The scheme is case-insensitive; exactly one space.
    const ok = await raw(collector.port, {
      method: "POST",
      path: "/config/rate",
      headers: { authorization: `bearer ${COLLECTOR_TOKEN}` },
      body: '{"messages_per_second": 0}',
    });
    assert.equal(ok.status, 200);
    const status = JSON.parse((await raw(collector.port, { path: "/status" })).body) as {
      api: { writes: string; insecure_open_api: boolean };
    };
    assert.deepEqual([status.api.writes, status.api.insecure_open_api], ["bearer token", false]);
  });

  it("dashboard: writes need its own credentials, and an unauthenticated caller never reaches the collector", async () => {
    const before = seen.filter((s) => s.method !== "GET").length;
    const attempts: Record<string, string>[] = [
      {},
      { authorization: DASHBOARD_TOKEN },
      bearer("wrong-token-0123456789abcdef"),
      // The collector's token is not the dashboard's: it cannot be used to borrow it.
      bearer(COLLECTOR_TOKEN),
      basic(BASIC_USER, "wrong"),
      basic("root", BASIC_PASSWORD),
    ];
    for (const headers of attempts) {
      for (const body of ['{"messages_per_second": 4321}', "{not json", DEEP]) {
        const a = await raw(dashboard.port, { method: "POST", path: "/api/collector/rate", headers, body });
        assert.equal(a.status, 401, `${JSON.stringify(headers)} ${body.slice(0, 20)}`);
        assert.match(String(a.headers["www-authenticate"]), /Bearer realm="paystream".*Basic realm=/);
        assertSecurityHeaders(a, "dashboard 401");
      }
    }
    // Give a forwarded request time to show up at the spy, had there been one.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.filter((s) => s.method !== "GET").length, before, "the collector saw no write");
    assert.equal(await targetRate(collector.port), 0, "the collector's rate is unchanged");

    // An authenticated caller's change goes through with the collector's token, never the caller's.
    for (const headers of [bearer(DASHBOARD_TOKEN), basic(BASIC_USER, BASIC_PASSWORD)]) {
      const ok = await raw(dashboard.port, {
        method: "POST",
        path: "/api/collector/rate",
        headers,
        body: '{"messages_per_second": 0}',
      });
      assert.equal(ok.status, 200, ok.body);
    }
    const writes = seen.filter((s) => s.method !== "GET").slice(before);
    assert.equal(writes.length, 2);
    for (const w of writes) {
      assert.deepEqual(
        [w.method, w.url, w.authorization],
        ["POST", "/config/rate", `Bearer ${COLLECTOR_TOKEN}`],
      );
    }
  });

  it("dashboard: the data reads need credentials too; the UI page, its assets and the probes do not", async () => {
    for (const path of ["/api/snapshot", "/api/alerts", "/api/events", "/api/status"]) {
      const a = await raw(dashboard.port, { path });
      assert.equal(a.status, 401, path);
    }
    const snap = await raw(dashboard.port, { path: "/api/snapshot", headers: bearer(DASHBOARD_TOKEN) });
    assert.equal(snap.status, 200);
    assertSecurityHeaders(snap, "/api/snapshot");
    assert.equal(snap.headers["cache-control"], "no-store");
    for (const path of ["/", "/assets/app.js", "/healthz", "/readyz", "/metrics"]) {
      const a = await raw(dashboard.port, { path });
      assert.equal(a.status, 200, path);
      assert.equal(a.headers["x-content-type-options"], "nosniff", path);
    }
    const html = await raw(dashboard.port, { path: "/" });
    const csp = String(html.headers["content-security-policy"]);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const status = JSON.parse(
      (await raw(dashboard.port, { path: "/api/status", headers: bearer(DASHBOARD_TOKEN) })).body,
    ) as { api: { writes: string; protected_reads: string[] } };
    assert.equal(status.api.writes, "bearer token or basic");
    assert.deepEqual(status.api.protected_reads, ["/api/"]);
  });

  it("both: a write from another origin is refused (403), the page's own origin is not", async () => {
    for (const [port, path, headers, body] of [
      [collector.port, "/config/rate", bearer(COLLECTOR_TOKEN), '{"messages_per_second": 0}'],
      [dashboard.port, "/api/collector/rate", bearer(DASHBOARD_TOKEN), '{"messages_per_second": 0}'],
    ] as const) {
      for (const origin of ["https://evil.example", "null", `http://127.0.0.1:${port + 1}`]) {
        const a = await raw(port, { method: "POST", path, headers: { ...headers, origin }, body });
        assert.equal(a.status, 403, `${path} from ${origin}`);
      }
      const same = await raw(port, {
        method: "POST",
        path,
        headers: { ...headers, origin: `http://127.0.0.1:${port}` },
        body,
      });
      assert.equal(same.status, 200, `${path} same origin`);
    }
  });

  it("both: a Host name they do not serve is refused (421: DNS rebinding), probes excepted", async () => {
    for (const [port, path, headers] of [
      [collector.port, "/config", {}],
      [dashboard.port, "/api/snapshot", bearer(DASHBOARD_TOKEN)],
      [dashboard.port, "/", {}],
    ] as const) {
      const a = await raw(port, { path, headers: { ...headers, host: `rebind.evil.example:${port}` } });
      assert.equal(a.status, 421, `${port}${path}`);
      const ok = await raw(port, { path, headers: { ...headers, host: `localhost:${port}` } });
      assert.equal(ok.status, 200, `${port}${path} as localhost`);
    }
    const probe = await raw(collector.port, { path: "/healthz", headers: { host: "10.1.2.3:5000" } });
    assert.equal(probe.status, 200, "the kubelet probes by pod IP");
  });

  it("both: JSON nested 30,000 deep is a 400, and the process goes on serving", async () => {
    for (const [port, path, headers] of [
      [collector.port, "/config/rate", bearer(COLLECTOR_TOKEN)],
      [dashboard.port, "/api/collector/rate", bearer(DASHBOARD_TOKEN)],
    ] as const) {
      const a = await raw(port, { method: "POST", path, headers, body: DEEP });
      assert.equal(a.status, 400, `${path}: ${a.body}`);
      assert.match(a.body, /nested deeper than/);
      const root = await raw(port, {
        method: "POST",
        path,
        headers,
        body: `${"[".repeat(30_000)}${"]".repeat(30_000)}`,
      });
      assert.equal(root.status, 400);
      assert.equal((await raw(port, { path: "/healthz" })).status, 200);
      const ok = await raw(port, { method: "POST", path, headers, body: '{"messages_per_second": 0}' });
      assert.equal(ok.status, 200, `${path} still works`);
    }
    // The dashboard validates before forwarding: nothing of this reached the collector.
    assert.ok(!seen.some((s) => s.method === "POST" && s.url !== "/config/rate"));
  });

  it("both: a request whose body never finishes is closed (idle and dripping)", {
    timeout: 60_000,
  }, async () => {
    // Headers and half a body, then silence: the idle timeout (2 s on the dashboard) closes it.
    const idle = connect(dashboard.port, "127.0.0.1");
    await new Promise((r) => idle.once("connect", r));
    idle.write(
      "POST /api/collector/rate HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        `Authorization: Bearer ${DASHBOARD_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"messages_`,
    );
    await closedWithin(idle, 30_000);
    // A byte every 300 ms keeps the socket busy: the request timeout (3 s on the collector) closes it.
    const drip = connect(collector.port, "127.0.0.1");
    await new Promise((r) => drip.once("connect", r));
    drip.write(
      "POST /config/rate HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        `Authorization: Bearer ${COLLECTOR_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
    );
    const timer = setInterval(() => {
      if (!drip.destroyed) drip.write(" ");
    }, 300);
    try {
      const said = await closedWithin(drip, 30_000);
      assert.match(said, /^HTTP\/1\.1 408/, "answered Request Timeout before closing");
    } finally {
      clearInterval(timer);
    }
    assert.equal((await raw(collector.port, { path: "/healthz" })).status, 200);
  });

  it("dashboard: event streams beyond the cap get 503, and a slot frees when one closes", async () => {
    const open = () =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; close: () => void }>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port: dashboard.port, path: "/api/events", headers: bearer(DASHBOARD_TOKEN) },
          (res) => {
            res.on("data", () => {});
            resolve({ status: res.statusCode ?? 0, headers: res.headers, close: () => req.destroy() });
          },
        );
        req.on("error", reject);
        req.end();
      });
    const first = await open();
    const second = await open();
    assert.deepEqual([first.status, second.status], [200, 200]);
    // A stream's headers are set by the route itself (it takes the socket over): the same ones.
    assert.equal(first.headers["content-type"], "text/event-stream; charset=utf-8");
    assertSecurityHeaders({ status: 200, headers: first.headers, body: "" }, "/api/events");
    const third = await raw(dashboard.port, { path: "/api/events", headers: bearer(DASHBOARD_TOKEN) });
    assert.equal(third.status, 503);
    assert.match(third.body, /too many event streams/);
    assert.equal(third.headers["retry-after"], "5");
    first.close();
    const streams = [second];
    try {
      await waitUntil(
        async () => {
          const again = await open();
          streams.push(again);
          return again.status === 200;
        },
        10_000,
        "a freed event-stream slot",
      );
    } finally {
      for (const s of streams) s.close();
    }
  });
});

describe("start-up without credentials", () => {
  let topics: TestTopics;

  before(async () => {
    topics = await createTestTopics("it-hostile-start", 1);
  });
  after(async () => {
    if (topics) await deleteTopics(topics);
  });

  it("the collector refuses to start without a token, naming the option, and starts open with --insecure-open-api, loudly", {
    timeout: 60_000,
  }, async () => {
    const refused = startService("collector", collectorArgs(topics, freePort()), 0, {
      PAYSTREAM_API_TOKEN: "",
    });
    assert.equal(await refused.exited, 1, refused.output());
    assert.match(refused.output(), /--api-token/);
    assert.match(refused.output(), /PAYSTREAM_API_TOKEN/);
    assert.match(refused.output(), /--insecure-open-api/);

    const port = freePort();
    const open = startService("collector", collectorArgs(topics, port, ["--insecure-open-api"]), port, {
      PAYSTREAM_API_TOKEN: "",
    });
    try {
      await waitHealthy(open);
      assert.match(open.output(), /INSECURE/);
      assert.match(open.output(), /"insecure_open_api":true/);
      const status = JSON.parse((await raw(port, { path: "/status" })).body) as {
        api: { writes: string; insecure_open_api: boolean };
      };
      assert.deepEqual(
        [status.api.writes, status.api.insecure_open_api],
        ["open (--insecure-open-api)", true],
      );
      const a = await raw(port, { method: "POST", path: "/config/rate", body: '{"messages_per_second": 0}' });
      assert.equal(a.status, 200);
      // Open is not unchecked: Origin and Host still apply.
      const cross = await raw(port, {
        method: "POST",
        path: "/config/rate",
        headers: { origin: "https://evil.example" },
        body: '{"messages_per_second": 0}',
      });
      assert.equal(cross.status, 403);
    } finally {
      await stop(open);
    }
  });

  it("the dashboard refuses to start without its own credentials, naming the options", async () => {
    const s = startService("dashboard", ["dashboard", "--redis", services.redis, "--port", "0"], 0, {
      PAYSTREAM_DASHBOARD_TOKEN: "",
      PAYSTREAM_DASHBOARD_BASIC_AUTH: "",
      // The collector's token is not a credential of the dashboard's callers.
      PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
    });
    assert.equal(await s.exited, 1, s.output());
    assert.match(s.output(), /--auth-token/);
    assert.match(s.output(), /PAYSTREAM_DASHBOARD_TOKEN/);
    assert.match(s.output(), /--basic-auth/);
  });

  it("listens on 127.0.0.1 unless told otherwise", { timeout: 60_000 }, async () => {
    const port = freePort();
    const c = startService("collector", collectorArgs(topics, port), port, {
      PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
      PAYSTREAM_LOG_LEVEL: "info",
    });
    try {
      await waitHealthy(c);
      assert.match(c.output(), new RegExp(`"url":"http://127\\.0\\.0\\.1:${port}"`));
      // Every other address of this machine is refused.
      const others = Object.values(networkInterfaces())
        .flat()
        .filter((i) => i && !i.internal && i.family === "IPv4")
        .map((i) => i!.address);
      for (const address of others) {
        const err = await new Promise<string>((resolve) => {
          const s = connect(port, address);
          s.on("connect", () => {
            s.destroy();
            resolve("connected");
          });
          s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        });
        assert.equal(err, "ECONNREFUSED", `${address}:${port}`);
      }
    } finally {
      await stop(c);
    }
    const port2 = freePort();
    const d = startService(
      "dashboard",
      ["dashboard", "--redis", services.redis, "--port", String(port2)],
      port2,
      {
        PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN,
      },
    );
    try {
      await waitUntil(
        () => d.output().includes("paystream dashboard on") || d.child.exitCode !== null,
        30_000,
        "dashboard listening",
      );
      assert.match(d.output(), new RegExp(`paystream dashboard on http://127\\.0\\.0\\.1:${port2}/`));
    } finally {
      await stop(d);
    }
  });
});

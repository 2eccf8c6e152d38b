/**
 * The HTTP layer every service shares (src/lib/http.ts), through Fastify's inject (no
 * socket): credentials before body parsing, the exact Bearer scheme, Basic with scrypt,
 * Host and Origin checks, refusal to start without credentials, the JSON depth limit, strict
 * validation and the security headers. Socket-level limits (timeouts, SSE cap) are in
 * test/integration/http-hostile.test.ts.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { HttpDefaults } from "../../../src/contracts/defaults.ts";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import { loadConfig } from "../../../src/lib/config.ts";
import {
  type AccessInput,
  accessStatus,
  Credentials,
  createServiceHttp,
  hashBasicPassword,
  hostnameOf,
  isLoopbackHost,
  jsonDepthExceeds,
  parseBasicCredential,
  resolveAccess,
} from "../../../src/lib/http.ts";
import type { Logger } from "../../../src/lib/log.ts";
import { allowedHosts, allowedOrigins, parseHostList, parseOriginList } from "../../../src/lib/options.ts";
import { processorOptions } from "../../../src/processor/config.ts";
import { testRegistry } from "../../helpers/fixtures.ts";

const TOKEN = "t0k3n-0123456789abcdef";

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out.push(String(chunk));
      cb();
    },
  });
  return {
    log: pino({ level: "info" }, stream) as Logger,
    lines: () =>
      out
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const access = (over: Partial<AccessInput> = {}) =>
  resolveAccess({
    what: "test API",
    credentialHint: "--api-token (env PAYSTREAM_API_TOKEN)",
    token: TOKEN,
    bindHost: "127.0.0.1",
    ...over,
  });

/** A server with one write route that validates its body, one read, under an access policy. */
function server(policy = access()) {
  const app = createServiceHttp({ registry: testRegistry("http"), access: policy });
  let writes = 0;
  app.post(
    "/config/rate",
    {
      schema: {
        body: {
          type: "object",
          required: ["n"],
          additionalProperties: false,
          properties: { n: { type: "integer", minimum: 0 } },
        },
      },
    },
    async (req) => {
      writes++;
      return { n: (req.body as { n: number }).n };
    },
  );
  app.get("/api/data", async () => ({ secret: false }));
  app.get("/boom", async () => {
    throw new Error("internal detail /etc/passwd");
  });
  return { app, writes: () => writes };
}

const json = { "content-type": "application/json" };

describe("credentials", () => {
  it("accept exactly `Bearer <token>`: any case of the scheme, one space, nothing else", async () => {
    const c = new Credentials({ token: TOKEN });
    assert.equal(await c.verify(`Bearer ${TOKEN}`), true);
    assert.equal(await c.verify(`bearer ${TOKEN}`), true);
    assert.equal(await c.verify(`BEARER ${TOKEN}`), true);
    for (const bad of [
      undefined,
      "",
      TOKEN,
      `Bearer  ${TOKEN}`,
      `Bearer ${TOKEN} `,
      `Bearer${TOKEN}`,
      `Token ${TOKEN}`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Basic ${Buffer.from(`u:${TOKEN}`).toString("base64")}`,
    ]) {
      assert.equal(await c.verify(bad), false, JSON.stringify(bad));
    }
  });

  it("check a Basic login against its scrypt hash, refusing a wrong user or password", async () => {
    const basic = parseBasicCredential(hashBasicPassword("ops", "correct horse battery"));
    assert.equal(basic.user, "ops");
    assert.equal(basic.key.length, 64);
    const c = new Credentials({ basic });
    const header = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;
    assert.equal(await c.verify(header("ops", "correct horse battery")), true);
    // The second time comes from the digest cache, and still only for the same header.
    assert.equal(await c.verify(header("ops", "correct horse battery")), true);
    assert.equal(
      await c.verify(`basic ${Buffer.from("ops:correct horse battery").toString("base64")}`),
      true,
    );
    assert.equal(await c.verify(header("ops", "wrong")), false);
    assert.equal(await c.verify(header("root", "correct horse battery")), false);
    assert.equal(await c.verify("Basic not-base64!"), false);
    assert.equal(await c.verify(`Bearer ${TOKEN}`), false, "no token configured");
    assert.deepEqual(c.challenges, ['Basic realm="paystream", charset="UTF-8"']);
  });

  it("parse --basic-auth strictly, never quoting the value", () => {
    for (const bad of [
      "ops:password",
      "ops:bcrypt:AAAA:BBBB",
      `ops:scrypt:${Buffer.alloc(8).toString("base64")}:${Buffer.alloc(64).toString("base64")}`,
      `ops:scrypt:${Buffer.alloc(16).toString("base64")}:${Buffer.alloc(8).toString("base64")}`,
      `:scrypt:${Buffer.alloc(16).toString("base64")}:${Buffer.alloc(64).toString("base64")}`,
    ]) {
      assert.throws(
        () => parseBasicCredential(bad),
        (err: Error) => !err.message.includes(bad),
      );
    }
  });

  it("are never shown: /status names the kinds only", () => {
    const status = JSON.stringify(accessStatus(access()));
    assert.ok(!status.includes(TOKEN));
    assert.match(status, /bearer token/);
  });
});

describe("start-up without credentials", () => {
  it("is refused outside demo, naming the option to set", () => {
    assert.throws(
      () => access({ token: undefined }),
      (err: unknown) =>
        isPaystreamError(err) &&
        err.code === ErrorCodes.SECRET_MISSING &&
        /--api-token/.test(err.message) &&
        /PAYSTREAM_API_TOKEN/.test(err.message) &&
        /--insecure-open-api/.test(err.message),
    );
  });

  it("runs open with --insecure-open-api, logging a warning that /status repeats", () => {
    const { log, lines } = capturingLogger();
    const p = resolveAccess(
      {
        what: "test API",
        credentialHint: "--api-token",
        bindHost: "0.0.0.0",
        insecureOpenApi: true,
      },
      log,
    );
    assert.equal(p.open, "insecure-open-api");
    const warning = lines().find((l) => l.insecure_open_api === true);
    assert.ok(warning, "a warning is logged");
    assert.equal(warning.level, 40);
    assert.match(String(warning.msg), /INSECURE/);
    assert.equal(accessStatus(p).insecure_open_api, true);
    assert.equal(accessStatus(p).writes, "open (--insecure-open-api)");
  });

  it("runs open in demo mode, and enforces credentials given even in demo mode", () => {
    assert.equal(access({ token: undefined, demo: true }).open, "demo");
    assert.equal(access({ demo: true }).open, undefined);
  });
});

describe("hosts and origins", () => {
  it("reads host names from Host headers and knows loopback", () => {
    assert.equal(hostnameOf("Example.COM:3000"), "example.com");
    assert.equal(hostnameOf("[::1]:3000"), "::1");
    assert.equal(hostnameOf("example.com."), "example.com");
    assert.equal(hostnameOf(undefined), undefined);
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "app.localhost"]) {
      assert.ok(isLoopbackHost(h), h);
    }
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) {
      assert.ok(!isLoopbackHost(h), h);
    }
  });

  it("answers loopback names only when bound to loopback, any when bound elsewhere, or the list given", () => {
    assert.deepEqual(access().allowedHosts, ["localhost", "127.0.0.1", "::1"]);
    assert.equal(access({ bindHost: "0.0.0.0" }).allowedHosts, undefined);
    assert.deepEqual(access({ bindHost: "0.0.0.0", allowedHosts: ["dash.example.com"] }).allowedHosts, [
      "dash.example.com",
      "localhost",
      "127.0.0.1",
      "::1",
    ]);
  });

  it("--allowed-hosts and --allowed-origins parse lists and refuse what is not a name or an origin", () => {
    assert.deepEqual(parseHostList("Dash.Example.com, 10.0.0.5,[::1]"), [
      "dash.example.com",
      "10.0.0.5",
      "::1",
    ]);
    assert.throws(() => parseHostList("https://dash.example.com"), /not a host name/);
    assert.throws(() => parseHostList("dash.example.com:3000"), /not a host name/);
    assert.deepEqual(parseOriginList("https://dash.example.com,http://127.0.0.1:3000"), [
      "https://dash.example.com",
      "http://127.0.0.1:3000",
    ]);
    assert.throws(() => parseOriginList("https://dash.example.com/path"), /not an origin/);
    assert.throws(() => parseOriginList("dash.example.com"), /not an origin/);
    assert.equal("default" in allowedHosts, false);
    assert.equal("default" in allowedOrigins, false);
  });
});

describe("a service's HTTP server", () => {
  it("refuses writes without credentials before reading the body (401, not 400), and never runs the handler", async () => {
    const { app, writes } = server();
    for (const payload of [
      '{"n": 1}',
      "{not json",
      '{"n": "x"}',
      `${"[".repeat(30_000)}${"]".repeat(30_000)}`,
    ]) {
      const res = await app.inject({ method: "POST", url: "/config/rate", headers: json, payload });
      assert.equal(res.statusCode, 401, payload.slice(0, 20));
      assert.match(String(res.headers["www-authenticate"]), /^Bearer realm="paystream"/);
      assert.equal(res.json().error, "unauthorized");
      assert.ok(!res.body.includes(TOKEN));
    }
    for (const authorization of [TOKEN, `Bearer wrong-${TOKEN}`, `Basic ${TOKEN}`]) {
      const res = await app.inject({
        method: "POST",
        url: "/config/rate",
        headers: { ...json, authorization },
        payload: '{"n": 1}',
      });
      assert.equal(res.statusCode, 401, authorization);
    }
    // Any write method on any path, known or not.
    for (const [method, url] of [
      ["PUT", "/config"],
      ["DELETE", "/config/rate"],
      ["POST", "/scenarios/velocity_burst"],
      ["PATCH", "/anything"],
    ] as const) {
      assert.equal((await app.inject({ method, url, headers: json, payload: "{}" })).statusCode, 401, url);
    }
    assert.equal(writes(), 0);
    const ok = await app.inject({
      method: "POST",
      url: "/config/rate",
      headers: { ...json, authorization: `Bearer ${TOKEN}` },
      payload: '{"n": 5}',
    });
    assert.equal(ok.statusCode, 200);
    assert.equal(writes(), 1);
    await app.close();
  });

  it("with credentials, validates strictly and names the field (400)", async () => {
    const { app } = server();
    const post = (payload: string) =>
      app.inject({
        method: "POST",
        url: "/config/rate",
        headers: { ...json, authorization: `Bearer ${TOKEN}` },
        payload,
      });
    assert.deepEqual((await post('{"n": "5"}')).json(), {
      error: "bad_request",
      reason: "n must be integer",
    });
    assert.deepEqual((await post('{"n": 1, "x": 2}')).json(), {
      error: "bad_request",
      reason: "unknown field x",
    });
    assert.match((await post("{not json")).json().reason, /JSON/);
    const deep = await post(`{"n": ${"[".repeat(30_000)}${"]".repeat(30_000)}}`);
    assert.equal(deep.statusCode, 400);
    assert.match(deep.json().reason, new RegExp(`nested deeper than ${HttpDefaults.maxJsonDepth}`));
    // Brackets inside strings are text, not nesting.
    const text = await post(JSON.stringify({ n: 1, s: "[".repeat(100) }));
    assert.equal(text.json().reason, "unknown field s");
    await app.close();
  });

  it("leaves reads open unless they are protected, and probes always", async () => {
    const { app } = server();
    assert.equal((await app.inject({ method: "GET", url: "/api/data" })).statusCode, 200);
    const { app: strict } = server(access({ protectedReads: ["/api/"] }));
    assert.equal((await strict.inject({ method: "GET", url: "/api/data" })).statusCode, 401);
    assert.equal(
      (
        await strict.inject({
          method: "GET",
          url: "/api/data",
          headers: { authorization: `Bearer ${TOKEN}` },
        })
      ).statusCode,
      200,
    );
    for (const url of ["/healthz", "/readyz", "/metrics"]) {
      assert.equal((await strict.inject({ method: "GET", url })).statusCode, 200, url);
    }
    await app.close();
    await strict.close();
  });

  it("answers 421 to a Host it does not serve (DNS rebinding), except on the probes", async () => {
    const { app } = server();
    const get = (host: string, url = "/api/data") => app.inject({ method: "GET", url, headers: { host } });
    assert.equal((await get("evil.example:3000")).statusCode, 421);
    assert.equal((await get("evil.example", "/metrics")).statusCode, 200);
    for (const host of ["127.0.0.1:3000", "localhost:3000", "[::1]:3000", "LOCALHOST"]) {
      assert.equal((await get(host)).statusCode, 200, host);
    }
    const write = await app.inject({
      method: "POST",
      url: "/config/rate",
      headers: { ...json, host: "evil.example", authorization: `Bearer ${TOKEN}` },
      payload: '{"n": 1}',
    });
    assert.equal(write.statusCode, 421);
    await app.close();
  });

  it("refuses cross-origin writes (403) and takes same-origin and listed ones", async () => {
    const { app, writes } = server(access({ allowedOrigins: ["https://dash.example.com"] }));
    const post = (origin: string) =>
      app.inject({
        method: "POST",
        url: "/config/rate",
        headers: { ...json, host: "127.0.0.1:5000", origin, authorization: `Bearer ${TOKEN}` },
        payload: '{"n": 1}',
      });
    for (const origin of ["https://evil.example", "null", "http://127.0.0.1:5001", "file://"]) {
      assert.equal((await post(origin)).statusCode, 403, origin);
    }
    assert.equal(writes(), 0);
    assert.equal((await post("http://127.0.0.1:5000")).statusCode, 200);
    assert.equal((await post("https://dash.example.com")).statusCode, 200);
    await app.close();
  });

  it("counts what it refuses in /metrics", async () => {
    const { app } = server();
    await app.inject({ method: "POST", url: "/config/rate", headers: json, payload: "{}" });
    await app.inject({ method: "GET", url: "/api/data", headers: { host: "evil.example" } });
    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    assert.match(metrics, /paystream_http_rejected_total\{reason="unauthorized"[^}]*\} 1/);
    assert.match(metrics, /paystream_http_rejected_total\{reason="misdirected_host"[^}]*\} 1/);
    await app.close();
  });

  it("sets the security headers on every answer, and hides the insides of an unexpected error", async () => {
    const { app } = server();
    for (const [method, url, status] of [
      ["GET", "/api/data", 200],
      ["GET", "/healthz", 200],
      ["GET", "/metrics", 200],
      ["GET", "/nope", 404],
      ["POST", "/config/rate", 401],
      ["GET", "/boom", 500],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        headers: json,
        ...(method === "POST" ? { payload: "{}" } : {}),
      });
      assert.equal(res.statusCode, status, url);
      assert.equal(res.headers["x-content-type-options"], "nosniff", url);
      assert.equal(res.headers["x-frame-options"], "DENY", url);
      assert.equal(res.headers["referrer-policy"], "no-referrer", url);
      assert.match(String(res.headers["content-security-policy"]), /frame-ancestors 'none'/, url);
      assert.equal(res.headers["cache-control"], "no-store", url);
      if (status === 500) {
        assert.deepEqual(res.json(), { error: "internal_error", reason: "internal error" });
      }
    }
    await app.close();
  });
});

describe("defaults", () => {
  it("standalone services listen on loopback", () => {
    assert.equal(loadConfig(processorOptions, { argv: [], env: {} }).values["http.host"], "127.0.0.1");
  });

  it("the JSON depth limit counts nesting, not length, and ignores strings", () => {
    assert.equal(jsonDepthExceeds("[[[]]]", 3), false);
    assert.equal(jsonDepthExceeds("[[[[]]]]", 3), true);
    assert.equal(jsonDepthExceeds('{"a":"[[[[[[\\"[[[["}', 1), false);
    assert.equal(jsonDepthExceeds(`${"[]".repeat(10_000)}`, 1), false);
  });
});

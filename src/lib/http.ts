/**
 * HTTP helper shared by every service: a Fastify instance with /healthz, /readyz and
 * /metrics already mounted, the limits and headers every server needs, the access control
 * of the write endpoints, and start-up errors that say what to do (port in use).
 *
 * What every server gets (docs/security.md, "Controls and HTTP"):
 * - limits: body size, the whole request within a time (a half-sent body is cut off), idle
 *   sockets and keep-alives closed, headers within a time, JSON nesting depth;
 * - strict body validation (no type coercion: "5" is not an integer) with errors that name
 *   the field;
 * - security headers on every answer (nosniff, frame-ancestors 'none', no referrer, no-store).
 *
 * What a server with an `access` policy also gets, in an onRequest hook (before the body is
 * read, so a bad body without credentials is a 401, not a 400):
 * - a Host allow-list against DNS rebinding (421);
 * - on writes, an Origin check against cross-site browser requests (403);
 * - on writes (and reads under `protectedReads`), credentials: `Authorization: Bearer <token>`
 *   or `Basic` (401). Tokens are compared as SHA-256 digests with timingSafeEqual, so neither
 *   the content nor the length of the expected token shows in the timing.
 *
 * One file on purpose (over 500 lines): every server's limits, headers and access control are
 * reviewed together, so a security review reads one place.
 */
import {
  createHash,
  randomBytes,
  type ScryptOptions,
  scrypt,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import { isIP } from "node:net";
import { Ajv, type ErrorObject } from "ajv";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { Counter, type Registry } from "prom-client";
import { HttpDefaults } from "../contracts/defaults.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import type { Logger } from "./log.ts";
import { METRIC_PREFIX } from "./metrics.ts";

export interface ReadinessCheck {
  name: string;
  /** Returns undefined when ready, or a short reason when not. */
  check: () => string | undefined;
}

export interface HttpLimits {
  bodyLimit: number;
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxJsonDepth: number;
}

export interface ServiceHttpOptions {
  registry: Registry;
  readiness?: ReadinessCheck[];
  /** Overrides of HttpDefaults (src/contracts/defaults.ts). */
  limits?: Partial<HttpLimits>;
  /** Shorthand for limits.bodyLimit. */
  bodyLimit?: number;
  /** Access control of the write endpoints; none: every route is open (the processor: reads only). */
  access?: AccessPolicy;
}

/** Paths the kubelet and Prometheus call by pod IP, without credentials: exempt from access checks. */
const PROBE_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * Headers on every answer. JSON and metrics answers are never a document, so their policy
 * allows nothing; the dashboard's HTML sets its own Content-Security-Policy.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "content-security-policy":
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

// ------------------------------------------------------------------------------ validation

// Ajv in Fastify coerces types by default ("5" → 5); an API that says "integer" should mean it.
const strictAjv = new Ajv({ coerceTypes: false, allErrors: false, strict: false });

/** The first schema error in words that name the field: "messages_per_second must be >= 0". */
export function describeSchemaErrors(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return "invalid body";
  if (e.keyword === "additionalProperties") {
    return `unknown field ${(e.params as { additionalProperty: string }).additionalProperty}`;
  }
  if (e.keyword === "required")
    return `missing field ${(e.params as { missingProperty: string }).missingProperty}`;
  const field = e.instancePath.replace(/^\//, "").replaceAll("/", ".") || "body";
  return `${field} ${e.message ?? "is invalid"}`;
}

/**
 * Whether a JSON text nests objects and arrays deeper than `max`. A linear scan of the raw
 * text, before any parser or validator recurses into it: a body of 30,000 `[` is refused in
 * microseconds instead of reaching code that walks it recursively (JSON.stringify, a schema
 * validator, a log serializer) and overflows the stack.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

// ------------------------------------------------------------------------------ credentials

/** `--basic-auth` as parsed: a user and the scrypt hash of the password (never the password). */
export interface BasicCredential {
  readonly user: string;
  readonly salt: Buffer;
  readonly key: Buffer;
}

/** scrypt's cost: Node's defaults (N=2^14, r=8, p=1), about 16 MiB and tens of ms per check. */
const SCRYPT: ScryptOptions = { N: 16_384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses `user:scrypt:<salt base64>:<key base64>` (the key is scrypt(password, salt, 64) with
 * N=16384, r=8, p=1; docs/security.md shows how to make one). Errors never quote the value.
 */
export function parseBasicCredential(raw: unknown): BasicCredential {
  const parts = String(raw).trim().split(":");
  if (parts.length !== 4 || parts[1] !== "scrypt") {
    throw new Error("must be user:scrypt:<salt base64>:<key base64>");
  }
  const [user, , salt, key] = parts as [string, string, string, string];
  if (!/^[\x21-\x7e]{1,64}$/.test(user)) throw new Error("the user must be 1-64 printable characters");
  if (!BASE64.test(salt) || !BASE64.test(key)) throw new Error("salt and key must be base64");
  const saltBytes = Buffer.from(salt, "base64");
  const keyBytes = Buffer.from(key, "base64");
  if (saltBytes.length < 16) throw new Error("the salt must be at least 16 bytes");
  if (keyBytes.length < 32) throw new Error("the key must be at least 32 bytes");
  return { user, salt: saltBytes, key: keyBytes };
}

/** The `--basic-auth` value for a user and password (tests; docs show the same with node:crypto). */
export function hashBasicPassword(user: string, password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, 64, SCRYPT);
  return `${user}:scrypt:${salt.toString("base64")}:${key.toString("base64")}`;
}

const sha256 = (s: string | Buffer): Buffer => createHash("sha256").update(s).digest();

function scryptAsync(password: string, salt: Buffer, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, length, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * What a request must present. Only digests are kept: the token itself is not held after
 * construction, and comparisons are over 32-byte digests (timingSafeEqual needs equal
 * lengths; comparing digests also hides the expected token's length).
 */
export class Credentials {
  readonly #token: Buffer | undefined;
  readonly #basic: BasicCredential | undefined;
  readonly #basicUser: Buffer | undefined;
  /**
   * Digests of Basic headers that passed scrypt recently: a browser sends the same header
   * with every request, and scrypt on each (tens of ms) would be the server's bottleneck.
   */
  readonly #verified: Buffer[] = [];

  constructor(opts: { token?: string | undefined; basic?: BasicCredential | undefined }) {
    this.#token = opts.token ? sha256(opts.token) : undefined;
    this.#basic = opts.basic;
    this.#basicUser = opts.basic ? sha256(opts.basic.user) : undefined;
    if (!this.#token && !this.#basic) throw new Error("Credentials need a token or a basic credential");
  }

  get kinds(): string[] {
    return [...(this.#token ? ["bearer token"] : []), ...(this.#basic ? ["basic"] : [])];
  }

  /** The WWW-Authenticate challenges of a 401: Basic makes a browser ask for the login. */
  get challenges(): string[] {
    return [
      ...(this.#token ? ['Bearer realm="paystream"'] : []),
      ...(this.#basic ? ['Basic realm="paystream", charset="UTF-8"'] : []),
    ];
  }

  /**
   * Whether an Authorization header carries valid credentials. The scheme is exact:
   * "Bearer" or "Basic" (any case), one space, then the credentials; a bare token is refused.
   */
  async verify(header: string | undefined): Promise<boolean> {
    if (!header) return false;
    const space = header.indexOf(" ");
    if (space < 0) return false;
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1);
    if (scheme === "bearer") {
      return this.#token !== undefined && timingSafeEqual(sha256(value), this.#token);
    }
    if (scheme === "basic" && this.#basic && BASE64.test(value)) return this.#verifyBasic(header, value);
    return false;
  }

  async #verifyBasic(header: string, value: string): Promise<boolean> {
    const basic = this.#basic!;
    const digest = sha256(header);
    // Every cached digest is compared, so the time does not say which one matched.
    let cached = false;
    for (const d of this.#verified) cached = timingSafeEqual(d, digest) || cached;
    if (cached) return true;
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return false;
    const userOk = timingSafeEqual(sha256(decoded.slice(0, colon)), this.#basicUser!);
    const key = await scryptAsync(decoded.slice(colon + 1), basic.salt, basic.key.length);
    // Both are checked whatever the first says: the time does not tell a wrong user from a wrong password.
    const passwordOk = timingSafeEqual(key, basic.key);
    if (!(userOk && passwordOk)) return false;
    this.#verified.push(digest);
    if (this.#verified.length > 16) this.#verified.shift();
    return true;
  }
}

// ------------------------------------------------------------------------------ hosts and origins

/** The host name of a Host header or URL host, lower-case, without port, brackets or final dot. */
export function hostnameOf(host: string | undefined): string | undefined {
  if (!host) return undefined;
  try {
    const name = new URL(`http://${host}`).hostname.toLowerCase().replace(/\.$/, "");
    return name.startsWith("[") ? name.slice(1, -1) : name;
  } catch {
    return undefined;
  }
}

/** localhost, 127.0.0.0/8 and ::1: the addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  // A bind address may be a bare IPv6 address ("::1"), which hostnameOf cannot read as a Host.
  const h = isIP(host) === 6 ? host.toLowerCase() : hostnameOf(host);
  if (h === undefined) return false;
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1" || h === "0:0:0:0:0:0:0:1";
}

/**
 * Loopback names are always accepted: a browser sends them only to a page it opened on this
 * machine itself, never after a DNS rebinding (which carries the attacker's name).
 */
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

// ------------------------------------------------------------------------------ access policy

/** Why writes need no credentials: `paystream up` on loopback or --demo, or --insecure-open-api. */
export type OpenReason = "demo" | "insecure-open-api";

export interface AccessPolicy {
  /** "collector API", "dashboard": for messages. */
  what: string;
  /** Undefined only when `open` is set. */
  credentials: Credentials | undefined;
  open: OpenReason | undefined;
  /** Path prefixes whose reads need credentials too (the dashboard's /api/). */
  protectedReads: readonly string[];
  /** Host names served; undefined: any (bound to a non-loopback address without --allowed-hosts). */
  allowedHosts: readonly string[] | undefined;
  /** Origins allowed to write besides the server's own (exact, e.g. https://dash.example.com). */
  allowedOrigins: readonly string[];
}

export interface AccessInput {
  what: string;
  /** How to give credentials, for the refusal: "--api-token (env PAYSTREAM_API_TOKEN)". */
  credentialHint: string;
  token?: string | undefined;
  basic?: BasicCredential | undefined;
  insecureOpenApi?: boolean | undefined;
  /** `paystream up` on loopback, or --demo. */
  demo?: boolean | undefined;
  /** The address the server listens on: loopback restricts the Host names by default. */
  bindHost: string;
  allowedHosts?: readonly string[] | undefined;
  allowedOrigins?: readonly string[] | undefined;
  protectedReads?: readonly string[] | undefined;
}

/**
 * The access policy of a server from its options, or a refusal to start: outside demo mode,
 * write endpoints without credentials need an explicit --insecure-open-api, which is logged
 * loudly. Credentials given are always enforced, demo or not.
 */
export function resolveAccess(input: AccessInput, log?: Logger): AccessPolicy {
  const hasCredentials = Boolean(input.token || input.basic);
  let open: OpenReason | undefined;
  if (!hasCredentials) {
    if (input.demo) open = "demo";
    else if (input.insecureOpenApi) open = "insecure-open-api";
    else {
      throw new PaystreamError(
        ErrorCodes.SECRET_MISSING,
        `the ${input.what} has no credentials for its write endpoints: set ${input.credentialHint} from a secret, ` +
          "or pass --insecure-open-api to leave them open to anyone who can reach the port",
        { details: { what: input.what } },
      );
    }
  }
  if (open === "insecure-open-api") {
    log?.warn(
      { insecure_open_api: true, what: input.what, host: input.bindHost },
      `INSECURE: the ${input.what}'s write endpoints accept requests without credentials (--insecure-open-api); anyone who reaches ${input.bindHost} can change it`,
    );
  } else if (open === "demo" && !isLoopbackHost(input.bindHost)) {
    log?.warn(
      { demo: true, what: input.what, host: input.bindHost },
      `demo mode on ${input.bindHost}: the ${input.what}'s write endpoints need no credentials`,
    );
  }
  const explicit = input.allowedHosts?.map((h) => hostnameOf(h) ?? h.toLowerCase());
  const allowedHosts = explicit?.length
    ? [...new Set([...explicit, ...LOOPBACK_NAMES])]
    : isLoopbackHost(input.bindHost)
      ? LOOPBACK_NAMES
      : undefined;
  return {
    what: input.what,
    credentials: hasCredentials ? new Credentials({ token: input.token, basic: input.basic }) : undefined,
    open,
    protectedReads: open ? [] : (input.protectedReads ?? []),
    allowedHosts,
    allowedOrigins: (input.allowedOrigins ?? []).map((o) => o.toLowerCase()),
  };
}

/** The policy as /status shows it (never a secret). */
export function accessStatus(p: AccessPolicy): Record<string, unknown> {
  return {
    writes: p.open
      ? `open (${p.open === "demo" ? "demo" : "--insecure-open-api"})`
      : p.credentials!.kinds.join(" or "),
    insecure_open_api: p.open === "insecure-open-api",
    protected_reads: p.protectedReads,
    allowed_hosts: p.allowedHosts ?? "any",
    allowed_origins: p.allowedOrigins.length ? p.allowedOrigins : "same origin",
  };
}

const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Same origin: the Origin's host:port is the Host the request was sent to. */
function originAllowed(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return false;
  if (host !== undefined && u.host.toLowerCase() === host.toLowerCase()) return true;
  return allowed.includes(u.origin.toLowerCase());
}

function rejectedCounter(registry: Registry): Counter<"reason"> {
  const name = `${METRIC_PREFIX}http_rejected_total`;
  // `paystream up` puts several servers on one registry: one counter for all of them.
  return (
    (registry.getSingleMetric(name) as Counter<"reason"> | undefined) ??
    new Counter({
      name,
      help: "HTTP requests refused before any handler: unauthorized, forbidden_origin, misdirected_host",
      labelNames: ["reason"] as const,
      registers: [registry],
    })
  );
}

function installAccessControl(app: FastifyInstance, policy: AccessPolicy, rejected: Counter<"reason">): void {
  const refuse = (reply: FastifyReply, status: number, reason: string, error: string, text: string) => {
    rejected.inc({ reason });
    return reply.code(status).send({ error, reason: text });
  };
  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    const route = req.routeOptions.url;
    const path = route ?? req.url.split("?")[0] ?? "/";
    const write = !SAFE_METHODS.has(req.method);
    if (!write && route !== undefined && PROBE_PATHS.has(route)) return;
    const host = req.headers.host;
    if (policy.allowedHosts) {
      const name = hostnameOf(host);
      if (name === undefined || !policy.allowedHosts.includes(name)) {
        return refuse(
          reply,
          421,
          "misdirected_host",
          "misdirected_request",
          "this server does not answer for that Host (see --allowed-hosts)",
        );
      }
    }
    const origin = req.headers.origin;
    if (write && origin !== undefined && !originAllowed(origin, host, policy.allowedOrigins)) {
      return refuse(
        reply,
        403,
        "forbidden_origin",
        "forbidden",
        "cross-origin writes are refused (see --allowed-origins)",
      );
    }
    if (policy.open || !policy.credentials) return;
    if (!write && !policy.protectedReads.some((prefix) => path.startsWith(prefix))) return;
    if (await policy.credentials.verify(req.headers.authorization)) return;
    reply.header("www-authenticate", policy.credentials.challenges.join(", "));
    return refuse(
      reply,
      401,
      "unauthorized",
      "unauthorized",
      `missing or wrong credentials: send Authorization: ${policy.credentials.kinds.includes("bearer token") ? "Bearer <token>" : "Basic <user:password>"}`,
    );
  });
}

// ------------------------------------------------------------------------------ server

export function createServiceHttp(opts: ServiceHttpOptions): FastifyInstance {
  const limits: HttpLimits = {
    ...HttpDefaults,
    ...opts.limits,
    ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
  };
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyLimit,
    // A request whose headers and body do not arrive in time is answered 408 and closed,
    // and a socket idle that long is destroyed: a client cannot hold one open forever.
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      // Node checks the two timeouts above only this often (default 30 s).
      connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
    },
  });
  app.setValidatorCompiler(({ schema }) => {
    const validate = strictAjv.compile(schema);
    return (data) =>
      validate(data) ? { value: data } : { error: new Error(describeSchemaErrors(validate.errors)) };
  });
  // Fastify's own JSON parser (prototype-poisoning checks), behind a depth check.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, raw, done) => {
    const body = String(raw); // parseAs "string": already one
    if (jsonDepthExceeds(body, limits.maxJsonDepth)) {
      const err = Object.assign(new Error(`JSON nested deeper than ${limits.maxJsonDepth} levels`), {
        statusCode: 400,
      });
      done(err, undefined);
      return;
    }
    // Callback style (it answers through `done`); the type also allows a promise-returning parser.
    void parseJson(req, body, done);
  });
  app.addHook("onSend", async (_req, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      if (!reply.hasHeader(name)) reply.header(name, value);
    }
    // Status, config and metrics are live answers: no cache (or proxy) keeps a copy.
    if (!reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
    return payload;
  });
  if (opts.access) installAccessControl(app, opts.access, rejectedCounter(opts.registry));

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const failing: Record<string, string> = {};
    for (const r of opts.readiness ?? []) {
      const reason = r.check();
      if (reason !== undefined) failing[r.name] = reason;
    }
    if (Object.keys(failing).length > 0) return reply.code(503).send({ status: "not_ready", failing });
    return { status: "ready" };
  });
  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", opts.registry.contentType);
    return opts.registry.metrics();
  });
  // Bad input is the client's problem, not a crash: every parse/validation error becomes a 4xx
  // with a reason. An unexpected error says nothing of its insides to the client.
  app.setErrorHandler((err: { statusCode?: number; message: string; code?: string }, _req, reply) => {
    const known = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600;
    const status = known ? err.statusCode! : 500;
    void reply.code(status).send({
      error: status < 500 ? "bad_request" : "internal_error",
      reason: known ? err.message : "internal error",
    });
  });
  return app;
}

/** Listens, turning EADDRINUSE into an error a user can act on. */
export async function listen(
  app: FastifyInstance,
  host: string,
  port: number,
  what: string,
): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new PaystreamError(
        ErrorCodes.PORT_IN_USE,
        `${what} cannot listen on ${host}:${port}: the port is in use by another process (choose another with its --*-port flag)`,
        { cause: err, details: { host, port } },
      );
    }
    throw err;
  }
}

/**
 * HTTP helper shared by every service: a Fastify instance with /healthz, /readyz and
 * /metrics already mounted, and start-up errors that say what to do (port in use).
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";

export interface ReadinessCheck {
  name: string;
  /** Returns undefined when ready, or a short reason when not. */
  check: () => string | undefined;
}

export interface ServiceHttpOptions {
  registry: Registry;
  readiness?: ReadinessCheck[];
  bodyLimit?: number;
}

export function createServiceHttp(opts: ServiceHttpOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: opts.bodyLimit ?? 64 * 1024 });
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
  // Bad input is the client's problem, not a crash: every parse/validation error becomes a 4xx with a reason.
  app.setErrorHandler((err: { statusCode?: number; message: string; code?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    void reply
      .code(status)
      .send({ error: status < 500 ? "bad_request" : "internal_error", reason: err.message });
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

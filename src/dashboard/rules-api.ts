/**
 * The rules API on the dashboard (docs/rules.md, "API"): the versions on the rules log,
 * validation, publish, rollback, diff, and what shadow rules would have raised.
 *
 *   GET  /api/rules                   current version, history (newest first), shadow counts
 *   POST /api/rules/validate          {document} → {ok, rules} | 422 {ok: false, errors}
 *   POST /api/rules                   {document, comment?} → 201 {version} | 200 unchanged | 422 {errors}
 *   POST /api/rules/rollback          {version, comment?} → 201 {version} | 404
 *   GET  /api/rules/diff?from=N&to=M  per-rule changes between two versions
 *   GET  /api/rules/shadow?limit=50   shadow alerts per rule and the latest ones
 *
 * Writes go through the server's access policy like every POST (credentials outside demo);
 * the caller's identity is recorded as the version's author. A document is validated with
 * the processors' window before anything is published: an invalid one changes nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AlertFeed } from "../contracts/ports.ts";
import { type RulesLog, ruleVersionToJson } from "../contracts/rules-log.ts";
import { isPaystreamError } from "../core/errors.ts";
import { diffRuleDocuments, documentDigest } from "../core/rule-versions.ts";
import { parseRules } from "../core/rules.ts";

export interface RulesApiDeps {
  /** Absent: every route answers 503 (this dashboard was started without a rules log). */
  rulesLog: RulesLog | undefined;
  /** The processors' window: no rule may look further back (parseRules' maxWindowMs). */
  maxWindowMs: number;
  /** Where shadow alerts are read from (its shadowSummary); absent: none shown. */
  alerts?: AlertFeed;
}

/**
 * Who is calling, for `author` and `by` fields: the Basic-auth user name, "token" for a
 * bearer token, "demo" without credentials (only possible where the policy lets a write
 * through without them). The access policy has verified the header before any handler runs.
 */
export function callerIdentity(req: FastifyRequest): string {
  const header = req.headers.authorization;
  if (typeof header === "string") {
    const [scheme, value] = header.trim().split(/\s+/, 2);
    if (scheme?.toLowerCase() === "basic" && value) {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const user = decoded.slice(0, Math.max(0, decoded.indexOf(":")));
      if (user) return user.slice(0, 64);
    }
    if (scheme?.toLowerCase() === "bearer") return "token";
  }
  return "demo";
}

/** The parser's message, one entry per line (a message may name several problems). */
function validationErrors(err: unknown): string[] {
  const msg = isPaystreamError(err) || err instanceof Error ? err.message : String(err);
  return msg.split("\n").filter((l) => l.trim() !== "");
}

function validate(
  doc: unknown,
  maxWindowMs: number,
): { ok: true; rules: string[] } | { ok: false; errors: string[] } {
  try {
    return { ok: true, rules: parseRules(doc, { maxWindowMs }).rules.map((r) => r.id) };
  } catch (err) {
    return { ok: false, errors: validationErrors(err) };
  }
}

const COMMENT = { type: "string", maxLength: 500 } as const;
const DOCUMENT_BODY = {
  type: "object",
  required: ["document"],
  additionalProperties: false,
  properties: { document: {}, comment: COMMENT },
} as const;
const ROLLBACK_BODY = {
  type: "object",
  required: ["version"],
  additionalProperties: false,
  properties: { version: { type: "integer", minimum: 1 }, comment: COMMENT },
} as const;

function positiveInt(raw: unknown): number | undefined {
  if (typeof raw !== "string" || !/^\d{1,9}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= 1 ? n : undefined;
}

async function shadowSummary(alerts: AlertFeed | undefined, limit: number) {
  if (!alerts?.shadowSummary) return { byRule: {}, latest: [] as unknown[] };
  return alerts.shadowSummary(limit);
}

export function registerRulesApi(app: FastifyInstance, deps: RulesApiDeps): void {
  const { rulesLog, maxWindowMs } = deps;
  if (rulesLog === undefined) {
    const unavailable = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply
        .code(503)
        .send({ error: "this dashboard has no rules log (start it with the processors' Kafka)" });
    for (const path of ["/api/rules", "/api/rules/diff", "/api/rules/shadow"]) app.get(path, unavailable);
    for (const path of ["/api/rules", "/api/rules/validate", "/api/rules/rollback"])
      app.post(path, unavailable);
    return;
  }

  app.get("/api/rules", async () => {
    const [history, shadow] = await Promise.all([rulesLog.history(), shadowSummary(deps.alerts, 1)]);
    const current = history.at(-1);
    return {
      current: current ? ruleVersionToJson(current) : null,
      history: history.map(ruleVersionToJson).reverse(),
      shadow: { by_rule: shadow.byRule },
    };
  });

  app.post("/api/rules/validate", { schema: { body: DOCUMENT_BODY } }, async (req, reply) => {
    const res = validate((req.body as { document: unknown }).document, maxWindowMs);
    return reply.code(res.ok ? 200 : 422).send(res);
  });

  app.post("/api/rules", { schema: { body: DOCUMENT_BODY } }, async (req, reply) => {
    const { document, comment } = req.body as { document: unknown; comment?: string };
    const res = validate(document, maxWindowMs);
    if (!res.ok) return reply.code(422).send({ errors: res.errors });
    const current = (await rulesLog.history()).at(-1);
    if (current && current.sha256 === documentDigest(document)) {
      return reply.code(200).send({ version: ruleVersionToJson(current), unchanged: true });
    }
    const v = await rulesLog.publish({
      document,
      author: callerIdentity(req),
      source: "api",
      ...(comment ? { comment } : {}),
    });
    return reply.code(201).send({ version: ruleVersionToJson(v) });
  });

  app.post("/api/rules/rollback", { schema: { body: ROLLBACK_BODY } }, async (req, reply) => {
    const { version, comment } = req.body as { version: number; comment?: string };
    const target = (await rulesLog.history()).find((v) => v.version === version);
    if (!target) return reply.code(404).send({ error: `no version ${version} on the rules log` });
    // Still checked: the processors' window may have shrunk since that version was published.
    const res = validate(target.document, maxWindowMs);
    if (!res.ok) return reply.code(422).send({ errors: res.errors });
    const v = await rulesLog.publish({
      document: target.document,
      author: callerIdentity(req),
      source: "rollback",
      rollbackOf: version,
      ...(comment ? { comment } : {}),
    });
    return reply.code(201).send({ version: ruleVersionToJson(v) });
  });

  app.get(
    "/api/rules/diff",
    async (req: FastifyRequest<{ Querystring: Record<string, string> }>, reply: FastifyReply) => {
      const from = positiveInt(req.query.from);
      const to = positiveInt(req.query.to);
      if (from === undefined || to === undefined) {
        return reply.code(400).send({ error: "from and to must be version numbers (positive integers)" });
      }
      const history = await rulesLog.history();
      const a = history.find((v) => v.version === from);
      const b = history.find((v) => v.version === to);
      if (!a || !b) return reply.code(404).send({ error: `no version ${!a ? from : to} on the rules log` });
      return {
        from,
        to,
        changes: diffRuleDocuments(a.document, b.document).map((c) => ({
          rule_id: c.ruleId,
          kind: c.kind,
          fields: c.fields.map((f) => ({ field: f.field, from: f.from ?? null, to: f.to ?? null })),
        })),
      };
    },
  );

  app.get(
    "/api/rules/shadow",
    async (req: FastifyRequest<{ Querystring: Record<string, string> }>, reply: FastifyReply) => {
      const limit = req.query.limit === undefined ? 50 : positiveInt(req.query.limit);
      if (limit === undefined || limit > 1000) {
        return reply.code(400).send({ error: "limit must be an integer from 1 to 1000" });
      }
      const s = await shadowSummary(deps.alerts, limit);
      return { by_rule: s.byRule, latest: s.latest };
    },
  );
}

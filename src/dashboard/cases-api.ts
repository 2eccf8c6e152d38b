/**
 * The cases API on the dashboard (docs/cases.md, "API"): the analyst's queue, one case, its
 * status workflow, and precision per rule from the resolutions.
 *
 *   GET  /api/cases?status=&limit=100  queue: unresolved first, then severity, then oldest
 *   GET  /api/cases/precision          {rules: [{rule_id, fraud, legitimate, precision}]}
 *   GET  /api/cases/:id                one case | 404
 *   POST /api/cases/:id                {status, note?} → the case | 400 transition refused | 404
 *
 * Writes go through the server's access policy like every POST; the caller is recorded as the
 * change's `by`. With a registry, precision is also exported at scrape time as
 * paystream_rule_precision{rule} and paystream_cases_resolved{rule,resolution}.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { Gauge, type Registry } from "prom-client";
import { CASE_STATUSES, type CaseStatus } from "../contracts/case.ts";
import type { CaseStore } from "../contracts/ports.ts";
import { caseToJson, precisionOf } from "../core/cases.ts";
import { ErrorCodes, isPaystreamError } from "../core/errors.ts";
import { scrubText } from "../core/pii-scrub.ts";
import { METRIC_PREFIX as P } from "../lib/metrics.ts";
import { callerIdentity } from "./rules-api.ts";

export interface CasesApiDeps {
  /** Absent: every route answers 503 (this dashboard has no case store). */
  caseStore: CaseStore | undefined;
  /** Where the precision gauges go (the dashboard's /metrics); absent: not exported. */
  registry?: Registry;
}

const MAX_LIMIT = 1000;
const MAX_NOTE = 500;

const UPDATE_BODY = {
  type: "object",
  required: ["status"],
  additionalProperties: false,
  properties: {
    status: { type: "string" },
    note: { type: "string", maxLength: MAX_NOTE },
  },
} as const;

async function precisionRows(store: CaseStore) {
  const res = await store.resolutions();
  return [...res]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([rule, r]) => ({
      rule_id: rule,
      fraud: r.fraud,
      legitimate: r.legitimate,
      precision: precisionOf(r),
    }));
}

/** The precision gauges on `registry`, read from `store` at scrape time (once per registry). */
export function registerCaseMetrics(registry: Registry, store: CaseStore): void {
  const precisionName = `${P}rule_precision`;
  // `paystream up` may mount a second dashboard on one registry: one pair of gauges for all.
  if (registry.getSingleMetric(precisionName)) return;
  // Both gauges are collected concurrently in one scrape: they share one read of the store,
  // so a scrape never shows a precision computed from other counts than the ones beside it.
  let read: { at: number; rows: ReturnType<typeof precisionRows> } | undefined;
  const rows = () => {
    const now = Date.now();
    if (read === undefined || now - read.at > 1000) read = { at: now, rows: precisionRows(store) };
    return read.rows;
  };
  new Gauge({
    name: precisionName,
    help: "Per rule: cases resolved as fraud ÷ cases resolved (each case counted once per rule it hit)",
    labelNames: ["rule"] as const,
    registers: [registry],
    async collect() {
      const all = await rows();
      this.reset();
      for (const r of all) if (r.precision !== null) this.set({ rule: r.rule_id }, r.precision);
    },
  });
  new Gauge({
    name: `${P}cases_resolved`,
    help: "Cases resolved by analysts per rule hit, by current resolution (fraud, legitimate)",
    labelNames: ["rule", "resolution"] as const,
    registers: [registry],
    async collect() {
      const all = await rows();
      this.reset();
      for (const r of all) {
        this.set({ rule: r.rule_id, resolution: "fraud" }, r.fraud);
        this.set({ rule: r.rule_id, resolution: "legitimate" }, r.legitimate);
      }
    },
  });
}

export function registerCasesApi(app: FastifyInstance, deps: CasesApiDeps): void {
  const store = deps.caseStore;
  if (store && deps.registry) registerCaseMetrics(deps.registry, store);

  const unavailable = (reply: FastifyReply) =>
    reply.code(503).send({ error: "unavailable", reason: "this dashboard has no case store" });

  app.get("/api/cases", async (req, reply) => {
    if (!store) return unavailable(reply);
    const q = req.query as { status?: string; limit?: string };
    if (q.status !== undefined && !CASE_STATUSES.includes(q.status as CaseStatus)) {
      return reply.code(400).send({ error: `status must be one of ${CASE_STATUSES.join(", ")}` });
    }
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      return reply.code(400).send({ error: `limit must be an integer from 1 to ${MAX_LIMIT}` });
    }
    const cases = await store.list({ limit, ...(q.status ? { status: q.status as CaseStatus } : {}) });
    return { cases: cases.map(caseToJson) };
  });

  app.get("/api/cases/precision", async (_req, reply) => {
    if (!store) return unavailable(reply);
    return { rules: await precisionRows(store) };
  });

  app.get("/api/cases/:id", async (req, reply) => {
    if (!store) return unavailable(reply);
    const c = await store.get((req.params as { id: string }).id);
    if (!c) return reply.code(404).send({ error: "no such case" });
    return caseToJson(c);
  });

  app.post("/api/cases/:id", { schema: { body: UPDATE_BODY } }, async (req, reply) => {
    if (!store) return unavailable(reply);
    const body = req.body as { status: string; note?: string };
    if (!CASE_STATUSES.includes(body.status as CaseStatus)) {
      return reply.code(400).send({ error: `status must be one of ${CASE_STATUSES.join(", ")}` });
    }
    // A note is free text an analyst types, often pasted from the case: card numbers (cut to
    // BIN + last 4), emails and IP addresses are scrubbed before it is stored or shown.
    const note = body.note === undefined ? undefined : scrubText(body.note.trim()).text;
    try {
      const c = await store.setStatus((req.params as { id: string }).id, {
        status: body.status as CaseStatus,
        by: callerIdentity(req),
        atMs: Date.now(),
        ...(note ? { note } : {}),
      });
      if (!c) return reply.code(404).send({ error: "no such case" });
      return caseToJson(c);
    } catch (err) {
      if (isPaystreamError(err) && err.code === ErrorCodes.CASE_TRANSITION) {
        return reply.code(400).send({ error: err.message });
      }
      throw err;
    }
  });
}

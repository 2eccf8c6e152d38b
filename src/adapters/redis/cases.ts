/**
 * Cases in Redis. The filing and workflow logic is core/cases.ts, run here in the process;
 * Redis makes it atomic with optimistic concurrency: read what a change depends on, compute,
 * then one Lua script per account (or per status change) writes only if nothing it read has
 * changed since — otherwise that account is read and computed again. Two processors filing
 * the same account at once (a rebalance) or a processor and an analyst therefore never split
 * a case or lose a status change. Layout:
 *
 *   fraud:case:<caseId>               hash {json, rev}, TTL   — the case (FraudCase JSON) and its revision
 *   fraud:case:account:<accountId>    string, TTL             — the account's current case id
 *   fraud:case:alert:<alertId>        string, TTL             — alert → case: refiling is a no-op
 *   fraud:cases:<status>              sorted set              — the queue per status (core queueScore)
 *   fraud:cases:expiry                sorted set, score = ms  — when each case's keys expire
 *   fraud:cases:resolved:<resolution> hash rule → count       — precision counters, per current resolution
 *   fraud:cases:changed               sorted set, score = ms  — change feed: when each case's status last changed
 *
 * Memory: every key of a case expires `resolvedTtlMs` (default 30 days) after the case was
 * resolved, or `openTtlMs` (default 90 days) after its last hit or status change while it is
 * unresolved. The queue sets drop expired ids as each write sweeps `fraud:cases:expiry`.
 * The counters (one field per rule) are kept: precision covers every resolution made.
 *
 * The change feed (changedSince) is what the processor syncs into the warehouse. A status
 * change adds its case inside the same script that writes the change, scored with Redis's
 * own clock (TIME): one clock, and scripts run one at a time, so entries are added in score
 * order and a reader's cursor never passes a change that is still to be recorded. Entries
 * older than 30 days are trimmed by the same script.
 */
import type { Alert } from "../../contracts/alert.ts";
import {
  CASE_STATUSES,
  type CaseStatus,
  type CaseStatusChange,
  type FraudCase,
} from "../../contracts/case.ts";
import type { CaseStore, RuleResolutions } from "../../contracts/ports.ts";
import {
  applyStatus,
  checkFeedLimit,
  compareCases,
  DEFAULT_CASE_GAP_MS,
  feedCursor,
  fileAlert,
  isResolved,
  queueScore,
  resolutionDelta,
} from "../../core/cases.ts";
import type { Redis } from "./client.ts";

/** Milliseconds of a TIME reply: [seconds, microseconds] as strings. */
function redisTimeMs(reply: unknown): number {
  const [sec, usec] = reply as [string, string];
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

export const CaseKeys = {
  case: (id: string) => `fraud:case:${id}`,
  account: (id: string) => `fraud:case:account:${id}`,
  alert: (id: string) => `fraud:case:alert:${id}`,
  queue: (s: CaseStatus) => `fraud:cases:${s}`,
  expiry: "fraud:cases:expiry",
  resolved: (r: "fraud" | "legitimate") => `fraud:cases:resolved:${r}`,
  changed: "fraud:cases:changed",
} as const;

const DAY = 86_400_000;
/** How long the change feed keeps a status change. */
const FEED_TTL_MS = 30 * DAY;
/** A pointer check meaning "this write does not move the account's current case". */
const ANY = "\u0000any";

/*
 * KEYS[1] account pointer, KEYS[2] expiry zset, KEYS[3..] the cases written.
 * ARGV: expected pointer (ANY: not checked), new pointer (ANY: unchanged), now ms, pointer ttl ms,
 * then per case: expected rev ("0": must not exist), json, old status ("" if new), status,
 * score, ttl ms, alert count, alert ids...; then delta count, then per delta: rule, fraud, legitimate;
 * then "1" to record the (single) case in the change feed, else "0".
 * Returns 0 (and writes nothing) when something read before has changed.
 */
const WRITE_CASES = `
local any = '\\0any'
local expect = ARGV[1]
if expect ~= any then
  local cur = redis.call('GET', KEYS[1]) or ''
  if cur ~= expect then return 0 end
end
local i = 5
for k = 3, #KEYS do
  local rev = redis.call('HGET', KEYS[k], 'rev') or '0'
  if rev ~= ARGV[i] then return 0 end
  i = i + 7 + tonumber(ARGV[i + 6])
end
local now = tonumber(ARGV[3])
local statuses = {'open', 'acknowledged', 'resolved_fraud', 'resolved_legitimate'}
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 200)
for _, id in ipairs(old) do
  for _, s in ipairs(statuses) do redis.call('ZREM', 'fraud:cases:' .. s, id) end
  redis.call('ZREM', 'fraud:cases:changed', id)
  redis.call('ZREM', KEYS[2], id)
end
i = 5
for k = 3, #KEYS do
  local id = string.sub(KEYS[k], 12)
  local ttl = tonumber(ARGV[i + 5])
  redis.call('HSET', KEYS[k], 'json', ARGV[i + 1], 'rev', tonumber(ARGV[i]) + 1)
  redis.call('PEXPIRE', KEYS[k], ttl)
  if ARGV[i + 2] ~= '' and ARGV[i + 2] ~= ARGV[i + 3] then
    redis.call('ZREM', 'fraud:cases:' .. ARGV[i + 2], id)
  end
  redis.call('ZADD', 'fraud:cases:' .. ARGV[i + 3], tonumber(ARGV[i + 4]), id)
  redis.call('ZADD', KEYS[2], now + ttl, id)
  local n = tonumber(ARGV[i + 6])
  for j = 1, n do
    redis.call('SET', 'fraud:case:alert:' .. ARGV[i + 6 + j], id, 'PX', ttl)
  end
  i = i + 7 + n
end
if ARGV[2] ~= any then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[4]))
end
local nd = tonumber(ARGV[i])
for d = 1, nd do
  local b = i + (d - 1) * 3
  local f = tonumber(ARGV[b + 2])
  local l = tonumber(ARGV[b + 3])
  if f ~= 0 then redis.call('HINCRBY', 'fraud:cases:resolved:fraud', ARGV[b + 1], f) end
  if l ~= 0 then redis.call('HINCRBY', 'fraud:cases:resolved:legitimate', ARGV[b + 1], l) end
end
if ARGV[i + 3 * nd + 1] == '1' then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', 'fraud:cases:changed', ms, string.sub(KEYS[3], 12))
  redis.call('ZREMRANGEBYSCORE', 'fraud:cases:changed', '-inf', '(' .. (ms - ${FEED_TTL_MS}))
end
return 1
`;

export interface RedisCaseStoreOptions {
  gapMs?: number;
  /** How long an unresolved case is kept after its last hit or status change (default 90 days). */
  openTtlMs?: number;
  /** How long a resolved case is kept after its resolution (default 30 days). */
  resolvedTtlMs?: number;
  now?: () => number;
}

interface Stored {
  readonly c: FraudCase;
  readonly rev: string;
}

/** One case write: what it was read as, and what it becomes. */
interface CaseWrite {
  before: Stored | undefined;
  after: FraudCase;
  /** Alert ids newly filed into it. */
  alertIds: string[];
}

export class RedisCaseStore implements CaseStore {
  readonly #redis: Redis;
  readonly #gapMs: number;
  readonly #openTtl: number;
  readonly #resolvedTtl: number;
  readonly #now: () => number;
  #sha: string | undefined;

  constructor(redis: Redis, opts: RedisCaseStoreOptions = {}) {
    this.#redis = redis;
    this.#gapMs = opts.gapMs ?? DEFAULT_CASE_GAP_MS;
    this.#openTtl = opts.openTtlMs ?? 90 * DAY;
    this.#resolvedTtl = opts.resolvedTtlMs ?? 30 * DAY;
    this.#now = opts.now ?? Date.now;
  }

  async fileAlerts(alerts: readonly Alert[]): Promise<FraudCase[]> {
    const byAccount = new Map<string, Alert[]>();
    for (const a of alerts) {
      const list = byAccount.get(a.accountId);
      if (list) list.push(a);
      else byAccount.set(a.accountId, [a]);
    }
    const touched = new Map<string, FraudCase>();
    let pending = [...byAccount.keys()];
    // Each round writes every account whose reads still hold; a conflicting one is read again.
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt === 50) throw new Error(`case filing kept conflicting for ${pending.length} account(s)`);
      pending = await this.#fileRound(pending, byAccount, touched);
    }
    return [...touched.values()];
  }

  async #fileRound(
    accounts: string[],
    byAccount: Map<string, Alert[]>,
    touched: Map<string, FraudCase>,
  ): Promise<string[]> {
    const r = this.#redis;
    const alertIds = accounts.flatMap((acc) => byAccount.get(acc)!.map((a) => a.alertId));
    const reads = r.multi();
    for (const acc of accounts) reads.get(CaseKeys.account(acc));
    for (const id of alertIds) reads.exists(CaseKeys.alert(id));
    const replies = (await reads.execAsPipeline()) as unknown as (string | number | null)[];
    const pointers = replies.slice(0, accounts.length) as (string | null)[];
    const filed = new Set(alertIds.filter((_, i) => Number(replies[accounts.length + i]) > 0));
    const current = await this.#read(pointers.filter((p): p is string => p !== null));

    const plans: { account: string; pointer: string; next: string; writes: Map<string, CaseWrite> }[] = [];
    for (let i = 0; i < accounts.length; i++) {
      const account = accounts[i]!;
      const pointer = pointers[i] ?? "";
      const writes = new Map<string, CaseWrite>();
      let cur: FraudCase | undefined = pointer ? current.get(pointer)?.c : undefined;
      let next = pointer;
      for (const a of byAccount.get(account)!) {
        if (filed.has(a.alertId)) continue;
        const f = fileAlert(cur, a, this.#gapMs);
        if (f.outcome === "known") continue;
        const id = f.case.caseId;
        const w = writes.get(id);
        if (w) {
          w.after = f.case;
          w.alertIds.push(a.alertId);
        } else {
          const before = f.outcome === "joined" ? current.get(id) : undefined;
          writes.set(id, { before, after: f.case, alertIds: [a.alertId] });
        }
        if (f.current) {
          cur = f.case;
          next = id;
        }
      }
      if (writes.size > 0) plans.push({ account, pointer, next, writes });
    }
    if (plans.length === 0) return [];
    const results = await this.#eval((pipe, sha) => {
      for (const p of plans) {
        pipe.evalSha(
          sha,
          this.#script(CaseKeys.account(p.account), p.pointer, p.next, [...p.writes.values()]),
        );
      }
    });
    const retry: string[] = [];
    results.forEach((ok, i) => {
      const p = plans[i]!;
      if (Number(ok) === 1) for (const w of p.writes.values()) touched.set(w.after.caseId, w.after);
      else retry.push(p.account);
    });
    return retry;
  }

  #ttl(c: FraudCase): number {
    return isResolved(c.status) ? this.#resolvedTtl : this.#openTtl;
  }

  #script(
    pointerKey: string,
    expectPointer: string,
    nextPointer: string,
    writes: CaseWrite[],
    feed = false,
  ): { keys: string[]; arguments: string[] } {
    const now = this.#now();
    const keys = [pointerKey, CaseKeys.expiry];
    const args = [expectPointer, nextPointer, String(now), String(this.#openTtl)];
    const deltas = new Map<string, RuleResolutions>();
    for (const w of writes) {
      keys.push(CaseKeys.case(w.after.caseId));
      args.push(
        w.before?.rev ?? "0",
        JSON.stringify(w.after),
        w.before?.c.status ?? "",
        w.after.status,
        String(queueScore(w.after)),
        String(this.#ttl(w.after)),
        String(w.alertIds.length),
        ...w.alertIds,
      );
      for (const [rule, d] of resolutionDelta(w.before?.c, w.after)) {
        const cur = deltas.get(rule) ?? { fraud: 0, legitimate: 0 };
        deltas.set(rule, { fraud: cur.fraud + d.fraud, legitimate: cur.legitimate + d.legitimate });
      }
    }
    args.push(String(deltas.size));
    for (const [rule, d] of deltas) args.push(rule, String(d.fraud), String(d.legitimate));
    args.push(feed ? "1" : "0");
    return { keys, arguments: args };
  }

  async #eval(
    add: (pipe: ReturnType<Redis["multi"]>, sha: string) => void,
  ): Promise<(string | number | null)[]> {
    for (let attempt = 0; ; attempt++) {
      this.#sha ??= await this.#redis.scriptLoad(WRITE_CASES);
      const pipe = this.#redis.multi();
      add(pipe, this.#sha);
      try {
        return (await pipe.execAsPipeline()) as unknown as (string | number | null)[];
      } catch (err) {
        // A restarted Redis has lost its script cache; load it again once.
        if (attempt > 0 || !String((err as Error).message).includes("NOSCRIPT")) throw err;
        this.#sha = undefined;
      }
    }
  }

  /** The cases stored under `ids` (missing ones absent), with their revisions. */
  async #read(ids: readonly string[]): Promise<Map<string, Stored>> {
    const out = new Map<string, Stored>();
    if (ids.length === 0) return out;
    const pipe = this.#redis.multi();
    for (const id of ids) pipe.hmGet(CaseKeys.case(id), ["json", "rev"]);
    const replies = (await pipe.execAsPipeline()) as unknown as (string | null)[][];
    replies.forEach(([json, rev], i) => {
      if (json && rev) out.set(ids[i]!, { c: JSON.parse(json) as FraudCase, rev });
    });
    return out;
  }

  async list(opts: { status?: CaseStatus; limit?: number } = {}): Promise<FraudCase[]> {
    const limit = opts.limit ?? 100;
    const statuses = opts.status ? [opts.status] : CASE_STATUSES;
    const pipe = this.#redis.multi();
    for (const s of statuses) pipe.zRange(CaseKeys.queue(s), 0, limit - 1);
    const ids = ((await pipe.execAsPipeline()) as unknown as string[][]).flat();
    const cases = [...(await this.#read(ids)).values()].map((s) => s.c);
    return cases.sort(compareCases).slice(0, limit);
  }

  async get(caseId: string): Promise<FraudCase | undefined> {
    return (await this.#read([caseId])).get(caseId)?.c;
  }

  async setStatus(caseId: string, change: CaseStatusChange): Promise<FraudCase | undefined> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const before = (await this.#read([caseId])).get(caseId);
      if (before === undefined) return undefined;
      const after = applyStatus(before.c, change);
      const w: CaseWrite = { before, after, alertIds: after.hits.map((h) => h.alertId) };
      const [ok] = await this.#eval((pipe, sha) => {
        // The alert index is rewritten so it keeps the case's (possibly new) TTL.
        pipe.evalSha(sha, this.#script(CaseKeys.account(after.accountId), ANY, ANY, [w], true));
      });
      if (Number(ok) === 1) return after;
    }
    throw new Error(`case ${caseId}: status change kept conflicting`);
  }

  async changedSince(sinceMs: number, limit: number): Promise<{ cases: FraudCase[]; cursor: number }> {
    checkFeedLimit(limit);
    // One transaction: the clock and the page are one snapshot, which feedCursor relies on.
    const [time, entries] = (await this.#redis
      .multi()
      .time()
      .zRangeWithScores(CaseKeys.changed, sinceMs, "+inf", {
        BY: "SCORE",
        LIMIT: { offset: 0, count: limit },
      })
      .exec()) as unknown as [unknown, { value: string; score: number }[]];
    const page = entries.map((e) => ({ caseId: e.value, atMs: e.score }));
    const { cursor, wholeMs } = feedCursor(page, limit, sinceMs, redisTimeMs(time));
    const ids =
      wholeMs === undefined
        ? page.map((e) => e.caseId)
        : await this.#redis.zRange(CaseKeys.changed, wholeMs, wholeMs, { BY: "SCORE" });
    const stored = await this.#read(ids);
    // A case whose keys expired leaves its feed entry until the next sweep: nothing to sync.
    const cases = ids.flatMap((id) => {
      const c = stored.get(id)?.c;
      return c ? [c] : [];
    });
    return { cases, cursor };
  }

  async resolutions(): Promise<Map<string, RuleResolutions>> {
    const [fraud, legit] = await Promise.all([
      this.#redis.hGetAll(CaseKeys.resolved("fraud")),
      this.#redis.hGetAll(CaseKeys.resolved("legitimate")),
    ]);
    const out = new Map<string, RuleResolutions>();
    for (const rule of new Set([...Object.keys(fraud), ...Object.keys(legit)])) {
      const r = { fraud: Number(fraud[rule] ?? 0), legitimate: Number(legit[rule] ?? 0) };
      if (r.fraud + r.legitimate > 0) out.set(rule, r);
    }
    return out;
  }

  async close(): Promise<void> {}
}

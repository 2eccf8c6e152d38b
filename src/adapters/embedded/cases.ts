/**
 * In-process case store for `paystream up`: the CaseStore port on plain maps, filing through
 * the same core functions as the Redis store (core/cases.ts), so both file an alert sequence
 * into the same cases. Bounded: beyond `maxCases`, the oldest resolved cases go first, then
 * the oldest of any status, with their alert index entries. Status changes are also kept in a
 * change feed (changedSince) for 30 days, like the Redis store's.
 */
import type { Alert } from "../../contracts/alert.ts";
import type { CaseStatus, CaseStatusChange, FraudCase } from "../../contracts/case.ts";
import type { CaseStore, RuleResolutions } from "../../contracts/ports.ts";
import {
  applyStatus,
  checkFeedLimit,
  compareCases,
  compareFeed,
  DEFAULT_CASE_GAP_MS,
  type FeedEntry,
  feedCursor,
  fileAlert,
  isResolved,
  resolutionDelta,
} from "../../core/cases.ts";

/** How long the change feed keeps a status change (the Redis store's too). */
const FEED_TTL_MS = 30 * 86_400_000;

/** The cases themselves; several EmbeddedCaseStore views (different gaps) may share one. */
export class EmbeddedCaseState {
  readonly cases = new Map<string, FraudCase>();
  readonly current = new Map<string, string>();
  readonly byAlert = new Map<string, string>();
  readonly resolutions = new Map<string, RuleResolutions>();
  /** Case id → when its status last changed: the change feed. */
  readonly changed = new Map<string, number>();
  /** The feed's clock never goes back (see feedCursor), even if the wall clock does. */
  lastChangeMs = 0;
  readonly maxCases: number;

  constructor(maxCases = 100_000) {
    this.maxCases = maxCases;
  }

  put(before: FraudCase | undefined, after: FraudCase): void {
    this.cases.set(after.caseId, after);
    for (const h of after.hits) this.byAlert.set(h.alertId, after.caseId);
    for (const [rule, d] of resolutionDelta(before, after)) {
      const r = this.resolutions.get(rule) ?? { fraud: 0, legitimate: 0 };
      this.resolutions.set(rule, { fraud: r.fraud + d.fraud, legitimate: r.legitimate + d.legitimate });
    }
  }

  trim(): void {
    if (this.cases.size <= this.maxCases) return;
    // Maps iterate in insertion order: the oldest cases first, resolved ones preferred.
    const victims = [...this.cases.values()].sort(
      (a, b) => Number(isResolved(b.status)) - Number(isResolved(a.status)),
    );
    for (const c of victims) {
      if (this.cases.size <= this.maxCases) break;
      this.cases.delete(c.caseId);
      this.changed.delete(c.caseId);
      for (const h of c.hits) this.byAlert.delete(h.alertId);
      if (this.current.get(c.accountId) === c.caseId) this.current.delete(c.accountId);
    }
  }
}

export class EmbeddedCaseStore implements CaseStore {
  readonly #s: EmbeddedCaseState;
  readonly #gapMs: number;
  readonly #now: () => number;

  constructor(opts: { gapMs?: number; state?: EmbeddedCaseState; now?: () => number } = {}) {
    this.#s = opts.state ?? new EmbeddedCaseState();
    this.#gapMs = opts.gapMs ?? DEFAULT_CASE_GAP_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** The feed clock: the wall clock, held at its last value while the wall clock goes back. */
  #clock(): number {
    const s = this.#s;
    s.lastChangeMs = Math.max(s.lastChangeMs, this.#now());
    return s.lastChangeMs;
  }

  async fileAlerts(alerts: readonly Alert[]): Promise<FraudCase[]> {
    const s = this.#s;
    const touched = new Map<string, FraudCase>();
    for (const a of alerts) {
      if (s.byAlert.has(a.alertId)) continue;
      const curId = s.current.get(a.accountId);
      const cur = curId === undefined ? undefined : s.cases.get(curId);
      const filed = fileAlert(cur, a, this.#gapMs);
      if (filed.outcome === "known") continue;
      s.put(filed.outcome === "joined" ? cur : undefined, filed.case);
      if (filed.current) s.current.set(a.accountId, filed.case.caseId);
      touched.set(filed.case.caseId, filed.case);
    }
    s.trim();
    return [...touched.values()];
  }

  async list(opts: { status?: CaseStatus; limit?: number } = {}): Promise<FraudCase[]> {
    const all = [...this.#s.cases.values()].filter((c) => !opts.status || c.status === opts.status);
    return all.sort(compareCases).slice(0, opts.limit ?? 100);
  }

  async get(caseId: string): Promise<FraudCase | undefined> {
    return this.#s.cases.get(caseId);
  }

  async setStatus(caseId: string, change: CaseStatusChange): Promise<FraudCase | undefined> {
    const before = this.#s.cases.get(caseId);
    if (before === undefined) return undefined;
    const after = applyStatus(before, change);
    this.#s.put(before, after);
    const s = this.#s;
    const at = this.#clock();
    // Re-inserted so the map stays in change order; trimming then stops at the first young entry.
    s.changed.delete(caseId);
    s.changed.set(caseId, at);
    for (const [id, ms] of s.changed) {
      if (ms >= at - FEED_TTL_MS) break;
      s.changed.delete(id);
    }
    return after;
  }

  async changedSince(sinceMs: number, limit: number): Promise<{ cases: FraudCase[]; cursor: number }> {
    checkFeedLimit(limit);
    const s = this.#s;
    const now = this.#clock();
    const due: FeedEntry[] = [];
    for (const [caseId, atMs] of s.changed) if (atMs >= sinceMs) due.push({ caseId, atMs });
    due.sort(compareFeed);
    const page = due.slice(0, limit);
    const { cursor, wholeMs } = feedCursor(page, limit, sinceMs, now);
    const taken = wholeMs === undefined ? page : due.filter((e) => e.atMs === wholeMs);
    const cases: FraudCase[] = [];
    for (const e of taken) {
      const c = s.cases.get(e.caseId);
      if (c) cases.push(c);
    }
    return { cases, cursor };
  }

  async resolutions(): Promise<Map<string, RuleResolutions>> {
    const out = new Map<string, RuleResolutions>();
    for (const [rule, r] of this.#s.resolutions) if (r.fraud + r.legitimate > 0) out.set(rule, { ...r });
    return out;
  }

  async close(): Promise<void> {}
}

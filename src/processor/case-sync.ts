/**
 * The case status sync: analysts change a case's status in the case store (the dashboard's
 * POST /api/cases/:id), which holds no warehouse credentials; the processor, which does,
 * copies those changes into the warehouse's fraud_cases. Every few seconds it reads the case
 * store's change feed from its cursor and upserts the changed cases. The upsert's per-group
 * guards (schema.ts, upsertCasesSql) make the order against the processor's own filing writes
 * irrelevant, and rewriting a case is idempotent, so:
 *
 * - the cursor starts a day back: a restart rewrites the last day's changes (human-rate, a
 *   few thousand rows at most) rather than keeping a cursor anywhere;
 * - every replica syncs: they write the same rows;
 * - a failed pass keeps its cursor and the next tick reads the same changes again.
 */
import type { CaseStore, Warehouse } from "../contracts/ports.ts";
import type { Logger } from "../lib/log.ts";
import type { DependencyHealth } from "./health.ts";
import type { ProcessorMetrics } from "./metrics.ts";

/** Cases read from the feed per page. */
export const CASE_SYNC_PAGE = 500;
/** How far back a starting replica reads the feed. */
export const CASE_SYNC_LOOKBACK_MS = 24 * 3_600_000;

export interface CaseSyncDeps {
  store: CaseStore;
  warehouse: Warehouse;
  health: DependencyHealth;
  metrics: ProcessorMetrics;
  log: Logger;
  now: () => number;
  intervalMs: number;
}

export class CaseStatusSync {
  readonly #d: CaseSyncDeps;
  #cursor: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pass: Promise<unknown> | undefined;
  #stopped = false;

  constructor(deps: CaseSyncDeps) {
    this.#d = deps;
    this.#cursor = deps.now() - CASE_SYNC_LOOKBACK_MS;
  }

  /** Where the next pass reads the feed from. */
  get cursor(): number {
    return this.#cursor;
  }

  start(): void {
    this.#schedule();
  }

  /** Stops the timer and waits for a pass in progress (its retries end once the processor is closed). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#pass;
  }

  #schedule(): void {
    if (this.#stopped) return;
    // A timeout re-armed after each pass, not an interval: passes never overlap.
    this.#timer = setTimeout(() => {
      this.#pass = this.pass().finally(() => {
        this.#pass = undefined;
        this.#schedule();
      });
    }, this.#d.intervalMs);
    this.#timer.unref();
  }

  /**
   * Reads the feed from the cursor and writes what changed, page after page while pages come
   * back full. Never rejects: a failure is logged, and the cursor stays where the failed page
   * began. Resolves with the cases written.
   */
  async pass(): Promise<number> {
    const { store, warehouse, health, metrics, log } = this.#d;
    const writeCases = warehouse.writeCases?.bind(warehouse);
    if (writeCases === undefined) return 0;
    const sink = `${warehouse.name}_cases`;
    let written = 0;
    try {
      for (;;) {
        const page = await health.retry("case_store", () => store.changedSince(this.#cursor, CASE_SYNC_PAGE));
        if (page.cases.length > 0) await health.timed(sink, () => writeCases(page.cases));
        this.#cursor = page.cursor;
        written += page.cases.length;
        metrics.caseStatusSynced.inc(page.cases.length);
        if (page.cases.length < CASE_SYNC_PAGE || this.#stopped) break;
      }
      if (written > 0) log.debug({ cases: written, cursor: this.#cursor }, "case status changes synced");
    } catch (err) {
      if (!this.#stopped) {
        log.warn(
          { err: (err as Error).message, cursor: this.#cursor },
          "case status sync failed; retrying from the same changes next tick",
        );
      }
    }
    return written;
  }
}

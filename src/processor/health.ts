/**
 * Dependency health and retries: every write the processor makes is retried until it
 * succeeds (outages are waited out, offsets are held meanwhile) while the dependency is
 * reported not ready (/readyz, paystream_dependency_up). Non-retriable errors are rethrown:
 * the processor stops and Kubernetes restarts it (docs/processor.md, "Failure behaviour").
 */
import { isPaystreamError } from "../core/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ProcessorMetrics } from "./metrics.ts";

/** Why the processor is not ready, per dependency; empty when ready. */
export type Health = Map<string, string>;

/** First retry after 100 ms, doubling up to maxBackoffMs. */
const BASE_BACKOFF_MS = 50;

export class DependencyHealth {
  /** The processor's readiness (Processor.health is this map). */
  readonly health: Health = new Map();
  readonly #metrics: ProcessorMetrics;
  readonly #log: Logger;
  readonly #maxBackoffMs: number;
  /** True once the processor is closing: retries stop and the last error is rethrown. */
  readonly #stopped: () => boolean;

  constructor(metrics: ProcessorMetrics, log: Logger, maxBackoffMs: number, stopped: () => boolean) {
    this.#metrics = metrics;
    this.#log = log;
    this.#maxBackoffMs = maxBackoffMs;
    this.#stopped = stopped;
  }

  /** Marks dependencies up before anything has been tried (the gauge exists from start-up). */
  up(...dependencies: string[]): void {
    for (const dependency of dependencies) this.#metrics.dependencyUp.set({ dependency }, 1);
  }

  /**
   * A dependency's state as its client reports it (the record source's onHealth): failing
   * with `problem`, or fine (undefined). Logged on change only.
   */
  report(dependency: string, problem: string | undefined): void {
    if (problem === undefined) {
      if (this.#set(dependency, undefined)) this.#log.info({ dependency }, "dependency recovered");
      return;
    }
    if (!this.health.has(dependency))
      this.#log.warn({ dependency, err: problem }, "dependency failing, retrying");
    this.#set(dependency, problem);
    this.#metrics.sinkErrors.inc({ sink: dependency });
  }

  /**
   * Runs fn until it succeeds, reporting `what` as not ready while it fails and backing off
   * exponentially (capped). Non-retriable errors, and any error once stopped, are rethrown.
   */
  async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let attempt = 0;
    for (;;) {
      try {
        const v = await fn();
        if (attempt > 0) {
          this.#set(what, undefined);
          this.#log.info({ dependency: what, attempts: attempt + 1 }, "dependency recovered");
        }
        return v;
      } catch (err) {
        if (this.#stopped() || (isPaystreamError(err) && !err.retriable)) throw err;
        attempt++;
        this.#metrics.sinkErrors.inc({ sink: what });
        this.#set(what, (err as Error).message);
        if (attempt === 1 || attempt % 20 === 0) {
          this.#log.warn(
            { dependency: what, attempt, err: (err as Error).message },
            "write failed, retrying",
          );
        }
        await new Promise((r) =>
          setTimeout(r, Math.min(this.#maxBackoffMs, BASE_BACKOFF_MS * 2 ** Math.min(attempt, 10))),
        );
      }
    }
  }

  /** A write retried until it succeeds, its duration observed per sink. */
  async timed(sink: string, fn: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    await this.retry(sink, fn);
    this.#metrics.sinkLatency.observe({ sink }, (performance.now() - t0) / 1000);
  }

  /** Records a dependency failing (problem) or fine (undefined); true if that changed it. */
  #set(dependency: string, problem: string | undefined): boolean {
    const was = this.health.has(dependency);
    if (problem === undefined) this.health.delete(dependency);
    else this.health.set(dependency, problem);
    this.#metrics.dependencyUp.set({ dependency }, problem === undefined ? 1 : 0);
    return was !== (problem !== undefined);
  }
}

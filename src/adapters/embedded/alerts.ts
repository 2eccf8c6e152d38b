/**
 * In-process alert store for `paystream up`: the same port as the Redis store, with the
 * same idempotence (keyed by alert id) and a bounded feed of recent alerts for the
 * dashboard. Subscribers get each new alert once, like Redis PUBLISH. EmbeddedAlertReader
 * reads it back through the same port as the Redis reader.
 */
import { EventEmitter } from "node:events";
import { type Alert, alertToJson } from "../../contracts/alert.ts";
import type { AlertReader, AlertStore, ShadowSummary } from "../../contracts/ports.ts";

export class EmbeddedAlertStore implements AlertStore {
  readonly #byId = new Map<string, Alert>();
  readonly #feed: Alert[] = [];
  readonly #maxAlerts: number;
  readonly #activeAccounts = new Map<string, number>();
  /** Shadow rules' alerts: apart from the live feed, never emitted to subscribers. */
  readonly #shadowIds = new Set<string>();
  readonly #shadowFeed: Alert[] = [];
  readonly #shadowByRule = new Map<string, number>();
  readonly events = new EventEmitter();

  constructor(maxAlerts = 100_000) {
    this.#maxAlerts = maxAlerts;
  }

  async writeAlerts(alerts: Alert[]): Promise<void> {
    for (const a of alerts) {
      const fresh = !this.#byId.has(a.alertId);
      this.#byId.set(a.alertId, a);
      this.#activeAccounts.set(
        a.accountId,
        Math.max(this.#activeAccounts.get(a.accountId) ?? 0, a.detectedAtMs),
      );
      if (!fresh) continue;
      this.#feed.push(a);
      if (this.#feed.length > this.#maxAlerts) {
        const old = this.#feed.shift()!;
        this.#byId.delete(old.alertId);
      }
      this.events.emit("alert", a);
    }
  }

  async writeShadowAlerts(alerts: Alert[]): Promise<void> {
    for (const a of alerts) {
      if (this.#shadowIds.has(a.alertId)) continue;
      this.#shadowIds.add(a.alertId);
      this.#shadowByRule.set(a.ruleId, (this.#shadowByRule.get(a.ruleId) ?? 0) + 1);
      this.#shadowFeed.push(a);
      if (this.#shadowFeed.length > this.#maxAlerts)
        this.#shadowIds.delete(this.#shadowFeed.shift()!.alertId);
    }
  }

  shadowSummary(limit: number): ShadowSummary {
    return {
      byRule: Object.fromEntries(this.#shadowByRule),
      latest: this.#shadowFeed
        .slice(-limit)
        .reverse()
        .map((a) => JSON.parse(alertToJson(a)) as unknown),
    };
  }

  get(alertId: string): Alert | undefined {
    return this.#byId.get(alertId);
  }

  /** Newest first. */
  recent(limit: number): Alert[] {
    return this.#feed.slice(-limit).reverse();
  }

  get size(): number {
    return this.#byId.size;
  }

  activeAccounts(sinceMs: number): number {
    let n = 0;
    for (const t of this.#activeAccounts.values()) if (t >= sinceMs) n++;
    return n;
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
  }
}

export class EmbeddedAlertReader implements AlertReader {
  readonly source = "embedded alert store";
  readonly #store: EmbeddedAlertStore;

  constructor(store: EmbeddedAlertStore) {
    this.#store = store;
  }

  async latest(limit: number): Promise<unknown[]> {
    return this.#store.recent(limit).map((a) => JSON.parse(alertToJson(a)) as unknown);
  }

  async activeAccounts(sinceMs: number): Promise<number> {
    return this.#store.activeAccounts(sinceMs);
  }

  async existing(ids: readonly string[]): Promise<Set<string>> {
    return new Set(ids.filter((id) => this.#store.get(id) !== undefined));
  }

  async shadowSummary(limit: number): Promise<ShadowSummary> {
    return this.#store.shadowSummary(limit);
  }
}

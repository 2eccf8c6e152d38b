/**
 * The RulesLog port on the embedded log (`paystream up`): versions are records of a
 * one-partition topic, as on Kafka, so the processor and the dashboard of one process follow
 * and publish exactly as they do against a broker. Nothing survives the process.
 */
import type { InRecord } from "../../contracts/ports.ts";
import type { RulesFollower, RulesLog, RuleVersion, RuleVersionDraft } from "../../contracts/rules-log.ts";
import {
  decodeRuleVersion,
  encodeRuleVersion,
  latestPerVersion,
  ruleVersionKey,
  toRuleVersion,
} from "../../core/rule-versions.ts";
import type { EmbeddedLog } from "./log.ts";

export class EmbeddedRulesLog implements RulesLog {
  readonly #log: EmbeddedLog;
  readonly #topic: string;
  readonly #followers = new Set<{ stop: () => void }>();

  constructor(log: EmbeddedLog, topic: string) {
    this.#log = log;
    this.#topic = topic;
    log.createTopic(topic, 1);
  }

  #read(from: bigint): { versions: RuleVersion[]; next: bigint } {
    const out: InRecord[] = [];
    const next = this.#log.read(this.#topic, 0, from, Number.MAX_SAFE_INTEGER, out);
    const versions: RuleVersion[] = [];
    for (const r of out) {
      const v = decodeRuleVersion(r.value);
      if (v !== undefined) versions.push(v);
    }
    return { versions, next };
  }

  async history(): Promise<RuleVersion[]> {
    return latestPerVersion(this.#read(0n).versions);
  }

  /** Read-then-append is atomic here: one process, and no await between the two. */
  async publish(draft: RuleVersionDraft): Promise<RuleVersion> {
    const versions = this.#read(0n).versions;
    const newest = versions.reduce((n, v) => Math.max(n, v.version), 0);
    const v = toRuleVersion(draft, newest + 1, Date.now());
    this.#log.append([{ topic: this.#topic, key: ruleVersionKey(v.version), value: encodeRuleVersion(v) }]);
    return v;
  }

  async follow(onVersion: (v: RuleVersion) => void): Promise<RulesFollower> {
    const first = this.#read(0n);
    for (const v of first.versions) onVersion(v);
    let next = first.next;
    let running = true;
    const follower = {
      stop: () => {
        running = false;
      },
    };
    this.#followers.add(follower);
    const loop = (async () => {
      while (running) {
        await this.#log.waitForData(this.#topic, 250);
        if (!running) break;
        const got = this.#read(next);
        next = got.next;
        for (const v of got.versions) onVersion(v);
      }
    })();
    return {
      close: async () => {
        follower.stop();
        this.#followers.delete(follower);
        await loop;
      },
    };
  }

  async close(): Promise<void> {
    for (const f of this.#followers) f.stop();
    this.#followers.clear();
  }
}

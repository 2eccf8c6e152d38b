/**
 * The RulesLog port on Kafka: one version per record of the compacted, one-partition topic
 * `payments.rules` (key `v<version, zero padded>`, value the RuleVersion as JSON). One
 * partition gives one total order of versions; compaction keeps every version (each has its
 * own key) and drops nothing a follower needs.
 *
 * Reads are plain ListOffsets and Fetch requests (replay.ts's readRange), never a consumer
 * group: every replica reads the whole log from its start, and no reader moves any offset.
 * Following polls the end offset; a new version is delivered within POLL_MS + a fetch.
 *
 * Publishing reads the newest version and appends the next with the idempotent producer.
 * Publishes of one process are serialised; two processes publishing in the same instant can
 * both take the same number, and then the later record wins for every follower (and for
 * compaction), the earlier document being replaced as a whole: a race costs one version,
 * never a mixed document.
 */
import type { RulesFollower, RulesLog, RuleVersion, RuleVersionDraft } from "../../contracts/rules-log.ts";
import { ErrorCodes, PaystreamError } from "../../core/errors.ts";
import {
  decodeRuleVersion,
  encodeRuleVersion,
  latestPerVersion,
  ruleVersionKey,
  toRuleVersion,
} from "../../core/rule-versions.ts";
import {
  createConsumer,
  createProducer,
  type KafkaConnection,
  type RawConsumer,
  type StringProducer,
} from "./client.ts";
import { readRange } from "./replay.ts";

/** Under the 1 s a published version has to reach every replica, with a fetch to spare. */
const POLL_MS = 250;

export class KafkaRulesLog implements RulesLog {
  readonly #conn: KafkaConnection;
  readonly #topic: string;
  #consumer: RawConsumer | undefined;
  #producer: StringProducer | undefined;
  #publishing: Promise<unknown> = Promise.resolve();
  readonly #followers = new Set<{ stop: () => Promise<void> }>();
  #closed = false;

  constructor(conn: KafkaConnection, topic: string) {
    this.#conn = conn;
    this.#topic = topic;
  }

  get topic(): string {
    return this.#topic;
  }

  #reader(): RawConsumer {
    // The group id is never joined: fetches and offset listings need none.
    this.#consumer ??= createConsumer(
      { brokers: this.#conn.brokers, clientId: `${this.#conn.clientId}-rules` },
      `paystream-rules-reader-${process.pid}`,
    );
    return this.#consumer;
  }

  #fail(what: string, err: unknown): PaystreamError {
    return new PaystreamError(
      ErrorCodes.KAFKA_UNREACHABLE,
      `cannot ${what} the rules log ${this.#topic} on ${this.#conn.brokers.join(",")}: ${(err as Error)?.message ?? String(err)}`,
      { cause: err, retriable: true, details: { topic: this.#topic, brokers: this.#conn.brokers } },
    );
  }

  async #endOffset(): Promise<bigint> {
    const ends = await this.#reader().listOffsets({ topics: [this.#topic] });
    return ends.get(this.#topic)?.[0] ?? 0n;
  }

  /** Versions in [from, end offset now), and the offset to read from next. */
  async #readFrom(from: bigint): Promise<{ versions: RuleVersion[]; next: bigint }> {
    const end = await this.#endOffset();
    const versions: RuleVersion[] = [];
    if (end > from) {
      await readRange(this.#reader(), this.#topic, 0, from, end, (records) => {
        for (const r of records) {
          const v = decodeRuleVersion(r.value);
          if (v !== undefined) versions.push(v);
        }
      });
    }
    return { versions, next: end > from ? end : from };
  }

  async history(): Promise<RuleVersion[]> {
    try {
      return latestPerVersion((await this.#readFrom(0n)).versions);
    } catch (err) {
      throw this.#fail("read", err);
    }
  }

  publish(draft: RuleVersionDraft): Promise<RuleVersion> {
    const p = this.#publishing.then(
      () => this.#publish(draft),
      () => this.#publish(draft),
    );
    this.#publishing = p.catch(() => {});
    return p;
  }

  async #publish(draft: RuleVersionDraft): Promise<RuleVersion> {
    const history = await this.history();
    const v = toRuleVersion(draft, (history.at(-1)?.version ?? 0) + 1, Date.now());
    try {
      this.#producer ??= createProducer({
        brokers: this.#conn.brokers,
        clientId: `${this.#conn.clientId}-rules`,
      });
      await this.#producer.send({
        messages: [{ topic: this.#topic, key: ruleVersionKey(v.version), value: encodeRuleVersion(v) }],
      });
    } catch (err) {
      throw this.#fail("publish to", err);
    }
    return v;
  }

  async follow(onVersion: (v: RuleVersion) => void): Promise<RulesFollower> {
    let next = 0n;
    try {
      const first = await this.#readFrom(0n);
      for (const v of latestPerVersion(first.versions)) onVersion(v);
      next = first.next;
    } catch (err) {
      throw this.#fail("read", err);
    }
    let running = true;
    let wake: (() => void) | undefined;
    const loop = (async () => {
      while (running) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, POLL_MS).unref();
        });
        if (!running) break;
        try {
          const got = await this.#readFrom(next);
          next = got.next;
          for (const v of got.versions) if (running) onVersion(v);
        } catch {
          // The broker away for a while: the replica keeps its rules and reads on when it is back.
        }
      }
    })();
    const follower = {
      stop: async () => {
        running = false;
        wake?.();
        await loop;
      },
    };
    this.#followers.add(follower);
    return {
      close: async () => {
        this.#followers.delete(follower);
        await follower.stop();
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#followers].map((f) => f.stop()));
    this.#followers.clear();
    await this.#publishing;
    await this.#producer?.close().catch(() => {});
    await this.#consumer?.close(true).catch(() => {});
  }
}

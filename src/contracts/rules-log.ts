/**
 * Rules as versioned documents on a log (Kafka's compacted `payments.rules`, or the embedded
 * log in `paystream up`). Every processor replica follows the log and applies the newest
 * version; the dashboard and `paystream rules` publish, list, diff and roll back.
 *
 * A version is immutable and never reused: rollback publishes the old document again as a
 * new version (`rollbackOf` names the one restored), so "the version an alert was raised
 * under" always means one document.
 */

/** Where a version came from: the bootstrap/GitOps file, the dashboard API, the CLI, or a rollback. */
export const RULE_VERSION_SOURCES = ["file", "api", "cli", "rollback"] as const;
export type RuleVersionSource = (typeof RULE_VERSION_SOURCES)[number];

export interface RuleVersion {
  /** 1, 2, 3...: the order of publication. */
  readonly version: number;
  /** The rules document (the same shape as the rules file), already validated by parseRules. */
  readonly document: unknown;
  /** SHA-256 (hex) of the document's canonical JSON: equal documents, equal digests. */
  readonly sha256: string;
  readonly publishedAtMs: number;
  /** Who published it: "file:<path>", or the authenticated caller / CLI user. Never a secret. */
  readonly author: string;
  readonly source: RuleVersionSource;
  readonly comment?: string;
  /** For a rollback: the version whose document this one restores. */
  readonly rollbackOf?: number;
}

/** What a publisher supplies; the log assigns version, digest and time. */
export interface RuleVersionDraft {
  readonly document: unknown;
  readonly author: string;
  readonly source: RuleVersionSource;
  readonly comment?: string;
  readonly rollbackOf?: number;
}

export interface RulesFollower {
  close(): Promise<void>;
}

/** The rules control log. Callers validate documents before publishing (the log does not parse rules). */
export interface RulesLog {
  /** Every version on the log, oldest first. */
  history(): Promise<RuleVersion[]>;
  /** Appends the next version; resolves with it once durable. */
  publish(draft: RuleVersionDraft): Promise<RuleVersion>;
  /**
   * Calls `onVersion` for every version in order, from the oldest, then for each new one as
   * it is published (within 1 s). Resolves once the versions already on the log were delivered.
   */
  follow(onVersion: (v: RuleVersion) => void): Promise<RulesFollower>;
  close(): Promise<void>;
}

/** The JSON shape of a version outside the process (dashboard API, `paystream rules --json`). */
export function ruleVersionToJson(v: RuleVersion): Record<string, unknown> {
  return {
    version: v.version,
    document: v.document,
    sha256: v.sha256,
    published_at: new Date(v.publishedAtMs).toISOString(),
    author: v.author,
    source: v.source,
    ...(v.comment !== undefined ? { comment: v.comment } : {}),
    ...(v.rollbackOf !== undefined ? { rollback_of: v.rollbackOf } : {}),
  };
}

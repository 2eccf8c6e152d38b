/**
 * The rules file and the rules log. The file is the bootstrap/GitOps path: at start-up and
 * on every change (or SIGHUP) it is validated and, when it differs from the newest version
 * that came from the file, published to the rules log as a new version. Every replica then
 * applies what the log says (followRules), so a publish through the API or the CLI is not
 * undone by a restart, while an edited file is.
 *
 * Without a rules log (tests, tools), the file is applied directly, as before the log
 * existed. Either way a bad edit never replaces good rules: the error (naming rule and
 * field) is logged and counted, and the processor keeps running on the last good set.
 */
import { type FSWatcher, watch } from "node:fs";
import type { RulesLog, RuleVersion } from "../contracts/rules-log.ts";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import { documentDigest } from "../core/rule-versions.ts";
import { parseRules, type RuleSet } from "../core/rules.ts";
import { readDocument } from "../lib/config.ts";

export interface RulesFileContent {
  /** The document as written (what is published). */
  document: unknown;
  rules: RuleSet;
}

export function readRulesFile(path: string, maxWindowMs: number): RulesFileContent {
  const document = readDocument(path, "rules file", ErrorCodes.RULES_INVALID);
  try {
    return { document, rules: parseRules(document, { maxWindowMs }) };
  } catch (err) {
    throw new PaystreamError(ErrorCodes.RULES_INVALID, `rules file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export function loadRulesFile(path: string, maxWindowMs: number): RuleSet {
  return readRulesFile(path, maxWindowMs).rules;
}

/** The author a file publish is recorded under. */
export function fileAuthor(path: string): string {
  return `file:${path}`;
}

/**
 * Publishes the file's document unless the newest version that came from a file has the
 * same digest. Resolves with the version published, or undefined when nothing changed.
 */
export async function publishRulesFile(
  rulesLog: RulesLog,
  path: string,
  document: unknown,
): Promise<RuleVersion | undefined> {
  const history = await rulesLog.history();
  const fromFile = history.filter((v) => v.source === "file").at(-1);
  if (fromFile !== undefined && fromFile.sha256 === documentDigest(document)) return undefined;
  return rulesLog.publish({ document, author: fileAuthor(path), source: "file" });
}

export interface FollowRulesOptions {
  rulesLog: RulesLog;
  maxWindowMs: number;
  /** Called with each version applied (already validated). */
  apply: (rules: RuleSet, v: RuleVersion) => void;
  /** A version this replica cannot apply (invalid here, e.g. windowMs above its window). */
  refused: (v: RuleVersion, err: Error) => void;
}

export interface RulesFollowing {
  /** The version applied, undefined while none could be. */
  readonly current: RuleVersion | undefined;
  close(): Promise<void>;
}

/**
 * Follows the rules log. Resolves once the log's current version is applied: the newest
 * version this replica can apply (a newer one it refuses is reported, and the one before it
 * used, so a replica never starts on no rules while the log has valid ones). Afterwards each
 * new version is applied as it arrives, or refused with the previous rules kept.
 */
export async function followRules(opts: FollowRulesOptions): Promise<RulesFollowing> {
  let current: RuleVersion | undefined;
  let caughtUp = false;
  const backlog: RuleVersion[] = [];
  const tryApply = (v: RuleVersion): boolean => {
    let rules: RuleSet;
    try {
      rules = parseRules(v.document, { maxWindowMs: opts.maxWindowMs });
    } catch (err) {
      opts.refused(v, err as Error);
      return false;
    }
    current = v;
    opts.apply(rules, v);
    return true;
  };
  const onVersion = (v: RuleVersion) => {
    if (!caughtUp) {
      backlog.push(v);
      return;
    }
    // Older numbers, and the same version delivered again, change nothing; the same number
    // with another document is a publish race the later record won (see the Kafka adapter).
    if (
      current !== undefined &&
      (v.version < current.version || (v.version === current.version && v.sha256 === current.sha256))
    )
      return;
    tryApply(v);
  };
  const follower = await opts.rulesLog.follow(onVersion);
  caughtUp = true;
  for (let i = backlog.length - 1; i >= 0; i--) if (tryApply(backlog[i]!)) break;
  return {
    get current() {
      return current;
    },
    close: () => follower.close(),
  };
}

export interface RulesWatcherOptions {
  path: string;
  maxWindowMs: number;
  /** The validated rules, and the document as written (what a publish sends). */
  onLoad: (rules: RuleSet, document: unknown) => void;
  onError: (err: Error) => void;
}

/** Watches the file (debounced: editors write in several steps) and listens for SIGHUP. */
export function watchRules(opts: RulesWatcherOptions): { reload: () => boolean; close: () => void } {
  const reload = (): boolean => {
    try {
      const { rules, document } = readRulesFile(opts.path, opts.maxWindowMs);
      opts.onLoad(rules, document);
      return true;
    } catch (err) {
      opts.onError(err as Error);
      return false;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.path, () => {
      clearTimeout(timer);
      timer = setTimeout(reload, 200);
    });
  } catch {
    // Some filesystems (and ConfigMap symlink swaps) do not support watching; SIGHUP still works.
  }
  const onHup = () => reload();
  process.on("SIGHUP", onHup);
  return {
    reload,
    close: () => {
      clearTimeout(timer);
      watcher?.close();
      process.off("SIGHUP", onHup);
    },
  };
}

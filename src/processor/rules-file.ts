/**
 * Loads the rules file and keeps it current: reload on SIGHUP or when the file changes.
 * A bad edit never replaces good rules: the error (naming rule and field) is logged and
 * counted, and the processor keeps running on the last good set.
 */
import { type FSWatcher, watch } from "node:fs";
import { ErrorCodes, PaystreamError } from "../core/errors.ts";
import { parseRules, type RuleSet } from "../core/rules.ts";
import { readDocument } from "../lib/config.ts";

export function loadRulesFile(path: string, maxWindowMs: number): RuleSet {
  const doc = readDocument(path, "rules file", ErrorCodes.RULES_INVALID);
  try {
    return parseRules(doc, { maxWindowMs });
  } catch (err) {
    throw new PaystreamError(ErrorCodes.RULES_INVALID, `rules file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export interface RulesWatcherOptions {
  path: string;
  maxWindowMs: number;
  onLoad: (rules: RuleSet) => void;
  onError: (err: Error) => void;
}

/** Watches the file (debounced: editors write in several steps) and listens for SIGHUP. */
export function watchRules(opts: RulesWatcherOptions): { reload: () => boolean; close: () => void } {
  const reload = (): boolean => {
    try {
      opts.onLoad(loadRulesFile(opts.path, opts.maxWindowMs));
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

/**
 * Rule documents as versions (contracts/rules-log.ts): the digest that says whether two
 * documents are the same, and the per-rule diff between two versions that the dashboard and
 * `paystream rules diff` show. Pure: no I/O.
 */
import { createHash } from "node:crypto";
import { RULE_VERSION_SOURCES, type RuleVersion, type RuleVersionDraft } from "../contracts/rules-log.ts";

/**
 * JSON with object keys sorted at every level: two documents that differ only in key order
 * (a YAML file re-saved by an editor, a JSON body built by a browser) are the same rules.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      // JSON drops undefined members; the digest must agree with what the log stores.
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** SHA-256 (hex) of the canonical JSON: equal documents, equal digests. */
export function documentDigest(doc: unknown): string {
  return createHash("sha256").update(canonicalJson(doc)).digest("hex");
}

export interface FieldChange {
  readonly field: string;
  /** The value in the older document; undefined when the field was absent there. */
  readonly from: unknown;
  readonly to: unknown;
}

export interface RuleChange {
  readonly ruleId: string;
  readonly kind: "added" | "removed" | "changed";
  /** For "changed": each field whose value differs; for added/removed: every field of the rule. */
  readonly fields: readonly FieldChange[];
}

function rulesById(doc: unknown): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const list = (doc as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(list)) return out;
  for (const r of list) {
    if (typeof r !== "object" || r === null) continue;
    const id = (r as Record<string, unknown>)["id"];
    if (typeof id === "string") out.set(id, r as Record<string, unknown>);
  }
  return out;
}

/**
 * What changed from `a` to `b`, per rule id: rules only in `b` are added, only in `a`
 * removed, in both with a field of another (canonical) value changed. Fields are compared
 * as written, so a field spelled out with its default value differs from one left out;
 * reordering rules is not a change. Added rules first, then changed, then removed, each in
 * document order.
 */
export function diffRuleDocuments(a: unknown, b: unknown): RuleChange[] {
  const before = rulesById(a);
  const after = rulesById(b);
  const added: RuleChange[] = [];
  const changed: RuleChange[] = [];
  const removed: RuleChange[] = [];
  for (const [id, rule] of after) {
    const old = before.get(id);
    if (old === undefined) {
      added.push({
        ruleId: id,
        kind: "added",
        fields: Object.keys(rule).map((f) => ({ field: f, from: undefined, to: rule[f] })),
      });
      continue;
    }
    const fields: FieldChange[] = [];
    const names = new Set([...Object.keys(old), ...Object.keys(rule)]);
    for (const f of names) {
      if (canonicalJson(old[f]) !== canonicalJson(rule[f]))
        fields.push({ field: f, from: old[f], to: rule[f] });
    }
    if (fields.length > 0) changed.push({ ruleId: id, kind: "changed", fields });
  }
  for (const [id, rule] of before) {
    if (after.has(id)) continue;
    removed.push({
      ruleId: id,
      kind: "removed",
      fields: Object.keys(rule).map((f) => ({ field: f, from: rule[f], to: undefined })),
    });
  }
  return [...added, ...changed, ...removed];
}

/** The record key of a version on the compacted log: zero padded, so keys sort as versions do. */
export function ruleVersionKey(version: number): string {
  return `v${String(version).padStart(10, "0")}`;
}

/** The version a draft becomes once the log has given it a number and a time. */
export function toRuleVersion(draft: RuleVersionDraft, version: number, publishedAtMs: number): RuleVersion {
  return {
    version,
    document: draft.document,
    sha256: documentDigest(draft.document),
    publishedAtMs,
    author: draft.author,
    source: draft.source,
    ...(draft.comment !== undefined && draft.comment !== "" ? { comment: draft.comment } : {}),
    ...(draft.rollbackOf !== undefined ? { rollbackOf: draft.rollbackOf } : {}),
  };
}

export function encodeRuleVersion(v: RuleVersion): string {
  return JSON.stringify(v);
}

/**
 * A log record's value as a version, or undefined for anything else (a tombstone, a record
 * written by something else): a follower skips what it cannot read instead of stopping.
 */
export function decodeRuleVersion(value: Buffer | string | undefined): RuleVersion | undefined {
  if (value === undefined || value.length === 0) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(typeof value === "string" ? value : value.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (
    !Number.isSafeInteger(r["version"]) ||
    (r["version"] as number) < 1 ||
    typeof r["sha256"] !== "string" ||
    typeof r["publishedAtMs"] !== "number" ||
    typeof r["author"] !== "string" ||
    !(RULE_VERSION_SOURCES as readonly unknown[]).includes(r["source"]) ||
    !("document" in r)
  )
    return undefined;
  return r as unknown as RuleVersion;
}

/**
 * Versions as a follower sees them, oldest first: a number published twice (two publishers
 * racing for it) keeps its last record, as compaction of the log will.
 */
export function latestPerVersion(records: readonly RuleVersion[]): RuleVersion[] {
  const byVersion = new Map<number, RuleVersion>();
  for (const r of records) byVersion.set(r.version, r);
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Alert, alertToJson } from "../../../src/contracts/alert.ts";
import { ErrorCodes, isPaystreamError } from "../../../src/core/errors.ts";
import {
  canonicalJson,
  decodeRuleVersion,
  diffRuleDocuments,
  documentDigest,
  encodeRuleVersion,
  latestPerVersion,
  ruleVersionKey,
  toRuleVersion,
} from "../../../src/core/rule-versions.ts";
import { parseRules } from "../../../src/core/rules.ts";
import { defaultRulesDoc } from "../../helpers/fixtures.ts";

const doc = (rules: Record<string, unknown>[]) => ({ version: 1, rules });

describe("rule document digest", () => {
  it("is the same whatever the key order, and differs when a value does", () => {
    const a = doc([{ id: "v", type: "velocity_count", threshold: 5 }]);
    const b = { rules: [{ threshold: 5, type: "velocity_count", id: "v" }], version: 1 };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(documentDigest(a), documentDigest(b));
    assert.match(documentDigest(a), /^[0-9a-f]{64}$/);
    assert.notEqual(
      documentDigest(a),
      documentDigest(doc([{ id: "v", type: "velocity_count", threshold: 6 }])),
    );
  });

  it("keeps rule order significant (rules are evaluated in document order)", () => {
    const r1 = { id: "a", type: "amount_sum" };
    const r2 = { id: "b", type: "velocity_count" };
    assert.notEqual(documentDigest(doc([r1, r2])), documentDigest(doc([r2, r1])));
  });
});

describe("diffRuleDocuments", () => {
  it("reports added, changed (field by field) and removed rules by id", () => {
    const before = doc([
      { id: "velocity", type: "velocity_count", threshold: 10 },
      { id: "sum", type: "amount_sum", threshold: "10000.00", enabled: true },
      { id: "gone", type: "merchant_spread" },
    ]);
    const after = doc([
      { id: "sum", type: "amount_sum", threshold: "5000.00", shadow: true },
      { id: "velocity", type: "velocity_count", threshold: 10 },
      { id: "new", type: "card_testing", minSmallCount: 3 },
    ]);
    assert.deepEqual(diffRuleDocuments(before, after), [
      {
        ruleId: "new",
        kind: "added",
        fields: [
          { field: "id", from: undefined, to: "new" },
          { field: "type", from: undefined, to: "card_testing" },
          { field: "minSmallCount", from: undefined, to: 3 },
        ],
      },
      {
        ruleId: "sum",
        kind: "changed",
        fields: [
          { field: "threshold", from: "10000.00", to: "5000.00" },
          { field: "enabled", from: true, to: undefined },
          { field: "shadow", from: undefined, to: true },
        ],
      },
      {
        ruleId: "gone",
        kind: "removed",
        fields: [
          { field: "id", from: "gone", to: undefined },
          { field: "type", from: "merchant_spread", to: undefined },
        ],
      },
    ]);
  });

  it("finds nothing between a document and itself reordered", () => {
    const d = defaultRulesDoc() as { version: number; rules: unknown[] };
    assert.deepEqual(diffRuleDocuments(d, { ...d, rules: [...d.rules].reverse() }), []);
  });
});

describe("rule versions on the log", () => {
  it("round-trip through the record value, with a zero-padded key that sorts as versions do", () => {
    const v = toRuleVersion(
      { document: doc([]), author: "cli:ana", source: "cli", comment: "why" },
      12,
      1_700_000_000_000,
    );
    assert.equal(v.sha256, documentDigest(doc([])));
    assert.deepEqual(decodeRuleVersion(Buffer.from(encodeRuleVersion(v))), v);
    assert.equal(ruleVersionKey(12), "v0000000012");
    assert.ok(ruleVersionKey(9) < ruleVersionKey(10));
    assert.equal(
      toRuleVersion({ document: doc([]), author: "a", source: "api", comment: "" }, 1, 0).comment,
      undefined,
    );
  });

  it("skips what is not a version (tombstones, foreign records) instead of failing", () => {
    assert.equal(decodeRuleVersion(undefined), undefined);
    assert.equal(decodeRuleVersion(Buffer.alloc(0)), undefined);
    assert.equal(decodeRuleVersion("not json"), undefined);
    assert.equal(decodeRuleVersion(JSON.stringify({ version: 0, document: {} })), undefined);
    assert.equal(
      decodeRuleVersion(
        JSON.stringify({
          version: 1,
          document: {},
          sha256: "x",
          publishedAtMs: 1,
          author: "a",
          source: "mail",
        }),
      ),
      undefined,
    );
  });

  it("a version number written twice keeps its last record, as compaction does", () => {
    const mk = (version: number, author: string) =>
      toRuleVersion({ document: doc([]), author, source: "api" }, version, 0);
    const got = latestPerVersion([mk(1, "a"), mk(2, "b"), mk(2, "c"), mk(3, "d")]);
    assert.deepEqual(
      got.map((v) => [v.version, v.author]),
      [
        [1, "a"],
        [2, "c"],
        [3, "d"],
      ],
    );
  });
});

describe("the shadow field", () => {
  it("defaults to false and lists enabled shadow rules in the set", () => {
    const set = parseRules(
      doc([
        { id: "live", type: "velocity_count" },
        { id: "quiet", type: "amount_sum", shadow: true },
        { id: "off", type: "merchant_spread", shadow: true, enabled: false },
      ]),
    );
    assert.deepEqual(
      set.rules.map((r) => [r.id, r.shadow]),
      [
        ["live", false],
        ["quiet", true],
        ["off", true],
      ],
    );
    assert.deepEqual(
      set.compiled.map((c) => [c.id, c.shadow]),
      [
        ["live", false],
        ["quiet", true],
      ],
    );
    assert.deepEqual([...set.shadowIds], ["quiet"]);
  });

  it("must be a boolean, named like any other field error", () => {
    assert.throws(
      () => parseRules(doc([{ id: "x", type: "velocity_count", shadow: "yes" }])),
      (e: unknown) =>
        isPaystreamError(e) &&
        e.code === ErrorCodes.RULES_INVALID &&
        e.message === 'rule "x": field "shadow" must be true or false',
    );
  });
});

describe("alert JSON", () => {
  it("carries the rule set version (null when unversioned) and whether it is a shadow alert", () => {
    const base: Alert = {
      alertId: "a".repeat(32),
      ruleId: "r",
      ruleType: "velocity_count",
      severity: "high",
      accountId: "acct",
      transactionId: "t",
      eventTimeMs: 0,
      detectedAtMs: 0,
      figures: {},
    };
    const plain = JSON.parse(alertToJson(base));
    assert.equal(plain.rule_set_version, null);
    assert.equal(plain.shadow, false);
    const stamped = JSON.parse(alertToJson({ ...base, ruleSetVersion: 7, shadow: true }));
    assert.equal(stamped.rule_set_version, 7);
    assert.equal(stamped.shadow, true);
  });
});

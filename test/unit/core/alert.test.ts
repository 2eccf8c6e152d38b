import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { alertId } from "../../../src/core/alert.ts";

describe("alertId", () => {
  it("is 32 hex chars and the same for the same (rule, account, transaction)", () => {
    const id = alertId("velocity_count", "acct-1", "7b0e4c1e-8f3a-4c52-9d7e-2f1a3b4c5d6e");
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(id, alertId("velocity_count", "acct-1", "7b0e4c1e-8f3a-4c52-9d7e-2f1a3b4c5d6e"));
  });

  it("is a truncated SHA-256 of the length-prefixed triple (stable across versions)", () => {
    const expected = createHash("sha256").update("1:r1:a1:t").digest("hex").slice(0, 32);
    assert.equal(alertId("r", "a", "t"), expected);
    // Pinned: changing the derivation would give every replayed alert a new id after an
    // upgrade, i.e. duplicate alerts.
    assert.equal(alertId("velocity_count", "acct-1", "tx-1"), "3aa4938044770cc4e738d77d8f339bfb");
  });

  it("differs when any part differs, with no ambiguity between parts", () => {
    const ids = new Set([
      alertId("r", "a", "t"),
      alertId("r2", "a", "t"),
      alertId("r", "a2", "t"),
      alertId("r", "a", "t2"),
      alertId("a:b", "c", "t"),
      alertId("a", "b:c", "t"),
      alertId("ab", "", "t"),
      alertId("a", "b", "t"),
    ]);
    assert.equal(ids.size, 8);
  });
});

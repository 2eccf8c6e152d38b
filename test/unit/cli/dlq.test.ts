/**
 * `paystream dlq`: its option parsers, `--help` for each subcommand, and the usage errors
 * that stop it before any connection (a redrive without a key or without a selection).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { parseInstant, parseOffsets, parsePreviousKeys } from "../../../src/cli/options/dlq.ts";

const ROOT = resolve(import.meta.dirname, "../../..");

function paystream(args: string[], env: Record<string, string> = {}) {
  return spawnSync(join(ROOT, "bin/paystream"), args, {
    cwd: ROOT,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? ROOT, ...env },
    timeout: 30_000,
  });
}

describe("paystream dlq options", () => {
  it("reads --since/--until as a duration ago or an ISO date-time", () => {
    const now = Date.UTC(2026, 0, 2, 12, 0, 0);
    assert.equal(parseInstant("10m", now), now - 600_000);
    assert.equal(parseInstant("2026-01-02T11:00:00Z", now), now - 3_600_000);
    assert.equal(parseInstant("2026-01-02T12:00:00+01:00", now), now - 3_600_000);
    assert.equal(parseInstant("2026-01-02", now), Date.UTC(2026, 0, 2));
    for (const bad of ["10", "yesterday", "2026-01-02T11:00:00", "2026-13-45T00:00:00Z"]) {
      assert.throws(() => parseInstant(bad, now), /duration ago|ISO/, bad);
    }
  });

  it("reads --offsets as partition:offset entries and refuses anything else", () => {
    assert.deepEqual(parseOffsets("3:1207, 0:5,3:1207"), ["3:1207", "0:5"]);
    for (const bad of ["3", "3:", "a:1", "1:2:3", ""]) assert.throws(() => parseOffsets(bad));
  });

  it("reads previous keys as [id=]<64 hex digits>", () => {
    assert.deepEqual(parsePreviousKeys(`old=${"a".repeat(64)},${"b".repeat(64)}`), [
      `old=${"a".repeat(64)}`,
      "b".repeat(64),
    ]);
    assert.throws(() => parsePreviousKeys("old=abc"));
  });
});

describe("paystream dlq (command)", () => {
  it("documents each subcommand in --help", () => {
    const top = paystream(["dlq", "--help"]);
    assert.equal(top.status, 0);
    assert.match(top.stdout, /list .*--reason/);
    assert.match(top.stdout, /show .*<partition>:<offset>/);
    assert.match(top.stdout, /redrive .*--offsets/);
    const list = paystream(["dlq", "list", "--help"]);
    assert.equal(list.status, 0);
    for (const flag of ["--reason", "--since", "--until", "--limit", "--dlq-topic", "--kafka", "--json"]) {
      assert.ok(list.stdout.includes(flag), flag);
    }
    const redrive = paystream(["dlq", "redrive", "--help"]);
    for (const flag of [
      "--offsets",
      "--dry-run",
      "--dlq-key",
      "--dlq-key-id",
      "--dlq-previous-keys",
      "--max-amount",
    ]) {
      assert.ok(redrive.stdout.includes(flag), flag);
    }
    assert.match(redrive.stdout, /still_invalid/);
    assert.match(paystream(["dlq", "show", "--help"]).stdout, /show <partition>:<offset>/);
    const main = paystream(["--help"]);
    assert.match(main.stdout, /\bdlq\b/);
  });

  it("refuses a redrive without a key or without a selection, before connecting (exit 2)", () => {
    const noKey = paystream(["dlq", "redrive", "--reason", "bad_json", "--kafka", "127.0.0.1:1"]);
    assert.equal(noKey.status, 2, noKey.stderr);
    assert.match(noKey.stderr, /PAYSTREAM_DLQ_KEY.*\[PS_SECRET_MISSING\]/);
    const noSelection = paystream(["dlq", "redrive"], { PAYSTREAM_DLQ_KEY: "ab".repeat(32) });
    assert.equal(noSelection.status, 2);
    assert.match(noSelection.stderr, /--reason and\/or --offsets/);
    const badKey = paystream(["dlq", "redrive", "--reason", "bad_json"], {
      PAYSTREAM_DLQ_KEY: "not-a-key-0123456789",
    });
    assert.equal(badKey.status, 2);
    assert.ok(!badKey.stderr.includes("not-a-key-0123456789"), "the secret is not echoed");
    const unknownReason = paystream(["dlq", "list", "--reason", "bad-json"]);
    assert.equal(unknownReason.status, 2);
    assert.match(unknownReason.stderr, /not a DLQ reason/);
    assert.equal(paystream(["dlq", "frob"]).status, 2);
    assert.equal(paystream(["dlq", "show"]).status, 2);
  });
});

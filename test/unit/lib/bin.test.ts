/** bin/paystream before `npm ci`: one line saying what to run, not a Node stack trace. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = resolve(import.meta.dirname, "../../..");

/** A checkout with bin/paystream and nothing installed. */
function bareCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), "ps-bin-"));
  mkdirSync(join(dir, "bin"));
  copyFileSync(join(ROOT, "bin/paystream"), join(dir, "bin/paystream"));
  chmodSync(join(dir, "bin/paystream"), 0o755);
  return dir;
}

function run(dir: string, args: string[], path = process.env.PATH ?? "/usr/bin:/bin") {
  return spawnSync(join(dir, "bin/paystream"), args, {
    cwd: dir,
    encoding: "utf8",
    env: { PATH: path, HOME: dir },
  });
}

describe("bin/paystream", () => {
  it("without node_modules, says to run npm ci in one line and exits 1", () => {
    const dir = bareCheckout();
    const r = run(dir, ["up", "--duration", "5s"]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `paystream: dependencies are not installed: run \`npm ci\` in ${dir} first\n`);
  });

  it("with dependencies but no pinned node and an old system node, says so instead of a syntax error", () => {
    const dir = bareCheckout();
    mkdirSync(join(dir, "node_modules"));
    const fakeBin = join(dir, "fake-bin");
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, "node"), "#!/bin/sh\necho 20\n");
    chmodSync(join(fakeBin, "node"), 0o755);
    const r = run(dir, ["up"], `${fakeBin}:/usr/bin:/bin`);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^paystream: needs Node >= 24 \(found v20\): run `npm ci` in .* to install the pinned one\n$/,
    );
  });

  it("installed, runs the CLI", () => {
    const r = spawnSync(join(ROOT, "bin/paystream"), ["--help"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: paystream <command>/);
  });
});

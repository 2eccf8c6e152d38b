/**
 * src/cli/main.ts with a half-installed node_modules (bin/paystream covers the case of none):
 * one line saying to run `npm ci`, not a Node stack trace. A missing file of our own is a bug
 * and keeps its stack.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { missingDependency } from "../../../src/cli/missing-deps.ts";

const ROOT = resolve(import.meta.dirname, "../../..");

/** The error a real failed import raises. */
async function importError(specifier: string): Promise<unknown> {
  try {
    await import(specifier);
  } catch (err) {
    return err;
  }
  throw new Error(`${specifier} imported`);
}

describe("missingDependency", () => {
  it("names a package that cannot be found", async () => {
    assert.equal(
      missingDependency(await importError("paystream-no-such-package")),
      "paystream-no-such-package",
    );
  });

  it("names a file missing inside an installed package (an interrupted install)", async () => {
    const url = pathToFileURL(join(ROOT, "node_modules", "pino", "no-such-file.js")).href;
    assert.equal(missingDependency(await importError(url)), "pino/no-such-file.js");
  });

  it("finds it as the cause of a wrapping error", async () => {
    const wrapped = new Error("warehouse open failed", {
      cause: await importError("paystream-no-such-package"),
    });
    assert.equal(missingDependency(wrapped), "paystream-no-such-package");
  });

  it("leaves a missing file of our own, and any other error, alone", async () => {
    assert.equal(missingDependency(await importError("./no-such-module.ts")), undefined);
    assert.equal(missingDependency(new Error("Cannot find package 'x'")), undefined);
    assert.equal(missingDependency("Cannot find package 'x'"), undefined);
  });
});

describe("paystream with node_modules missing a package", () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A copy of the source whose node_modules has every installed package except `missing`. */
  function checkoutWithout(missing: string): string {
    const dir = mkdtempSync(join(tmpdir(), "ps-deps-"));
    dirs.push(dir);
    cpSync(join(ROOT, "src"), join(dir, "src"), { recursive: true });
    cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
    mkdirSync(join(dir, "node_modules"));
    for (const name of readdirSync(join(ROOT, "node_modules"))) {
      if (name !== missing && name !== ".bin") {
        symlinkSync(join(ROOT, "node_modules", name), join(dir, "node_modules", name));
      }
    }
    return dir;
  }

  const run = (dir: string, args: string[]) =>
    spawnSync(process.execPath, [join(dir, "src/cli/main.ts"), ...args], { cwd: dir, encoding: "utf8" });

  it("says to run npm ci in one line and exits 1", () => {
    const dir = checkoutWithout("pino");
    const r = run(dir, ["processor", "--help"]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `paystream: dependencies are incomplete (cannot load pino): run \`npm ci\` in ${dir}\n`,
    );
  });

  it("still lists the commands, which need no package", () => {
    const r = run(checkoutWithout("pino"), ["--help"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: paystream <command>/);
  });
});

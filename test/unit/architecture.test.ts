/**
 * The import direction of docs/architecture.md is enforced by `npm run lint` (Biome's
 * noRestrictedImports, one override per folder in biome.json). These tests run the
 * project's Biome with the project's biome.json, copied unchanged into a scratch tree, on
 * deliberately wrong imports, one per rule of the layering, and on imports the layering
 * allows. A scratch tree rather than a file in src/: other work in the same checkout (its
 * lint, its typecheck) never sees the wrong imports.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");
const BIOME = join(ROOT, "node_modules", ".bin", "biome");
const RULE = "lint/style/noRestrictedImports";

interface Diagnostic {
  rule: string;
  /** Absolute. */
  file: string;
  message: string;
}

/** A file of the scratch tree that imports `from` once (used, so no other rule objects). */
function importing(from: string): string {
  return `import * as m from "${from}";\n\nexport const used = m;\n`;
}

/** [file, import, what the diagnostic must say] — one for each edge the layering forbids. */
const WRONG: [string, string, RegExp][] = [
  ["src/processor/wrong.ts", "../adapters/kafka/log.ts", /a service never imports an adapter/],
  ["src/verify/wrong.ts", "../adapters/redis/client.ts", /a service never imports an adapter/],
  ["src/dashboard/wrong.ts", "../adapters/embedded/alerts.ts", /a service never imports an adapter/],
  ["src/collector/wrong.ts", "../adapters/kafka/client.ts", /a service never imports an adapter/],
  ["src/verify/wrong-client.ts", "@platformatic/kafka", /only src\/adapters talks to Kafka/],
  ["src/processor/wrong-client.ts", "redis", /only src\/adapters talks to Kafka, Redis/],
  ["src/dashboard/wrong-service.ts", "../processor/service.ts", /never imports another service/],
  ["src/verify/wrong-service.ts", "../collector/generator.ts", /never imports another service/],
  ["src/processor/wrong-app.ts", "../app/graph.ts", /only src\/cli imports src\/app/],
  ["src/adapters/redis/wrong.ts", "../../processor/processor.ts", /an adapter implements ports/],
  ["src/adapters/kafka/wrong.ts", "../../app/log.ts", /an adapter implements ports/],
  ["src/core/wrong.ts", "../lib/log.ts", /src\/core is the pure domain/],
  ["src/core/wrong-io.ts", "node:fs", /src\/core does no I\/O/],
  ["src/core/wrong-client.ts", "pino", /src\/core does no I\/O/],
  ["src/contracts/wrong.ts", "../core/errors.ts", /src\/contracts is the bottom layer/],
  ["src/contracts/wrong-lib.ts", "ajv", /no libraries, no node modules/],
  ["src/lib/wrong.ts", "../collector/service.ts", /src\/lib is process plumbing/],
  ["src/app/wrong.ts", "../cli/up.ts", /nothing imports src\/cli/],
  ["src/cli/wrong.ts", "../adapters/warehouse/index.ts", /src\/cli stays thin/],
];

/** Edges the layering allows, from every layer. */
const ALLOWED: [string, string][] = [
  ["src/contracts/ok.ts", "./alert.ts"],
  ["src/core/ok.ts", "../contracts/ports.ts"],
  ["src/core/ok-crypto.ts", "node:crypto"],
  ["src/core/ok-ajv.ts", "ajv"],
  ["src/lib/ok.ts", "../core/errors.ts"],
  ["src/lib/ok-fastify.ts", "fastify"],
  ["src/adapters/kafka/ok.ts", "@platformatic/kafka"],
  ["src/adapters/redis/ok.ts", "../../contracts/ports.ts"],
  ["src/adapters/warehouse/ok.ts", "../../lib/log.ts"],
  ["src/adapters/embedded/ok.ts", "../../core/dedup.ts"],
  ["src/processor/ok.ts", "../contracts/ports.ts"],
  ["src/processor/ok-core.ts", "../core/dedup.ts"],
  ["src/processor/ok-lib.ts", "../lib/http.ts"],
  ["src/processor/ok-own.ts", "./processor.ts"],
  ["src/verify/ok.ts", "./reconcile.ts"],
  ["src/dashboard/ok.ts", "fastify"],
  ["src/collector/ok.ts", "prom-client"],
  ["src/app/ok.ts", "../adapters/kafka/log.ts"],
  ["src/app/ok-service.ts", "../processor/service.ts"],
  ["src/cli/ok.ts", "../app/up.ts"],
  ["src/cli/ok-config.ts", "../processor/config.ts"],
];

function scratchTree(files: [string, string][]): string {
  const dir = mkdtempSync(join(tmpdir(), "ps-arch-"));
  copyFileSync(join(ROOT, "biome.json"), join(dir, "biome.json"));
  for (const [path, from] of files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), importing(from));
  }
  return dir;
}

/** Biome as the project runs it; a scratch tree is no git checkout, so without the VCS integration. */
function biome(cwd: string, args: string[]): { code: number | null; out: string } {
  const vcs = cwd === ROOT ? [] : ["--vcs-enabled=false"];
  const r = spawnSync(BIOME, [...args, ...vcs], { cwd, encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The rule's findings under `path`, read from the GitHub reporter (one stable line per finding). */
function layeringDiagnostics(cwd: string, path: string): Diagnostic[] {
  const r = biome(cwd, ["lint", "--only=style/noRestrictedImports", "--reporter=github", path]);
  const found: Diagnostic[] = [];
  for (const line of r.out.split("\n")) {
    const m = /^::error title=([^,]+),file=([^,]+),.*?::(.*)$/.exec(line);
    if (m) found.push({ rule: m[1]!, file: m[2]!, message: m[3]! });
  }
  return found;
}

describe("import layering (biome.json noRestrictedImports)", () => {
  let dir: string;
  /** Every finding in the scratch tree, from one run. */
  let findings: Diagnostic[];
  const at = (file: string) => findings.filter((d) => d.file === join(dir, file));
  before(() => {
    dir = scratchTree([...WRONG.map(([f, i]) => [f, i] as [string, string]), ...ALLOWED]);
    findings = layeringDiagnostics(dir, "src");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the project's lint command fails on a service importing an adapter, naming the rule", () => {
    const lint = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.lint as string;
    assert.equal(lint, "biome check .", "the lint script this test mirrors");
    const r = biome(dir, ["check", "src/processor/wrong.ts"]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /src\/processor\/wrong\.ts:1:\d+ lint\/style\/noRestrictedImports/);
    assert.match(r.out, /a service never imports an adapter/);
    const ok = biome(dir, ["check", "src/processor/ok.ts"]);
    assert.equal(ok.code, 0, `the same file with an allowed import passes:\n${ok.out}`);
  });

  for (const [file, from, says] of WRONG) {
    it(`refuses ${file} importing ${from}`, () => {
      const found = at(file);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.equal(found[0]!.rule, RULE);
      assert.equal(found[0]!.file, join(dir, file));
      assert.match(found[0]!.message, says);
      assert.match(
        found[0]!.message,
        /docs\/architecture\.md/,
        "the message says where the rule is explained",
      );
    });
  }

  it("allows every edge the layering permits, and finds nothing else", () => {
    const found = ALLOWED.flatMap(([file]) => at(file));
    assert.deepEqual(found, []);
    assert.equal(findings.length, WRONG.length, JSON.stringify(findings, null, 2));
  });

  it("holds for the source tree as it is", () => {
    const r = biome(ROOT, ["lint", "--only=style/noRestrictedImports", "src"]);
    assert.equal(r.code, 0, r.out);
  });
});

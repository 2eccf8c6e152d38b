/**
 * The rules log on the real broker: the Kafka adapter (compacted one-partition topic,
 * versions in order, followers told of a publish from another process) and `paystream
 * rules` as an operator runs it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createAdmin, describeTopics } from "../../src/adapters/kafka/client.ts";
import { openRulesLog } from "../../src/app/rules-log.ts";
import type { RulesLog, RuleVersion } from "../../src/contracts/rules-log.ts";
import { documentDigest } from "../../src/core/rule-versions.ts";
import { waitFor } from "../helpers/fixtures.ts";
import { conn } from "../helpers/pipeline.ts";
import { services, uniqueName } from "../helpers/services.ts";

const doc = (threshold: number) => ({
  version: 1,
  rules: [{ id: "velocity_count", type: "velocity_count", threshold }],
});

const topics: string[] = [];
after(async () => {
  const admin = createAdmin(conn);
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.close();
});

describe("Kafka rules log", () => {
  const logs: RulesLog[] = [];
  after(async () => {
    for (const l of logs) await l.close();
  });

  it("keeps versions in order on a compacted topic and tells every follower of a publish", async () => {
    const topic = uniqueName("it-rules-log");
    topics.push(topic);
    const open = async (id: string) => {
      const l = await openRulesLog({ brokers: services.kafka, clientId: `it-rules-${id}`, topic });
      logs.push(l);
      return l;
    };
    const a = await open("a");
    const d = (await describeTopics(conn, [topic])).get(topic);
    assert.equal(d?.partitions, 1);
    assert.equal(d?.cleanupPolicy, "compact");
    assert.deepEqual(await a.history(), []);

    const seen: RuleVersion[] = [];
    const follower = await a.follow((v) => seen.push(v));
    const v1 = await a.publish({ document: doc(10), author: "file:rules.yaml", source: "file" });
    assert.equal(v1.version, 1);
    assert.equal(v1.sha256, documentDigest(doc(10)));

    // Another process (its own client) publishes next: its number follows, and A's follower sees it.
    const b = await open("b");
    const v2 = await b.publish({ document: doc(8), author: "ana", source: "api", comment: "lower" });
    assert.equal(v2.version, 2);
    await waitFor(() => seen.length >= 2, 15_000, "follower saw both versions");
    assert.deepEqual(
      seen.map((v) => [v.version, v.source, v.author, v.comment]),
      [
        [1, "file", "file:rules.yaml", undefined],
        [2, "api", "ana", "lower"],
      ],
    );
    await follower.close();

    // A late follower gets the whole history first, before follow() resolves.
    const late: number[] = [];
    const f2 = await b.follow((v) => late.push(v.version));
    assert.deepEqual(late, [1, 2]);
    await f2.close();
    assert.deepEqual(
      (await a.history()).map((v) => [v.version, v.sha256]),
      [
        [1, v1.sha256],
        [2, v2.sha256],
      ],
    );
  });
});

describe("paystream rules", () => {
  const dir = mkdtempSync(join(tmpdir(), "ps-rules-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const topic = uniqueName("it-rules-cli");
  topics.push(topic);
  const run = (...args: string[]) => {
    const r = spawnSync("bin/paystream", ["rules", ...args], { encoding: "utf8", timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const onLog = ["--kafka", services.kafka.join(","), "--rules-topic", topic];

  it("documents every subcommand with --help", () => {
    const top = run("--help");
    assert.equal(top.code, 0);
    for (const sub of ["list", "show", "validate", "publish", "rollback", "diff", "backtest"]) {
      assert.match(top.out, new RegExp(`^  ${sub} `, "m"), `${sub} in the usage`);
    }
    for (const sub of ["list", "show", "validate", "publish", "rollback", "diff"]) {
      const h = run(sub, "--help");
      assert.equal(h.code, 0, `${sub} --help`);
      assert.match(h.out, new RegExp(`^Usage: paystream rules ${sub} `), sub);
    }
    assert.match(run("publish", "--help").out, /--comment/);
    assert.match(run("list", "--help").out, /--rules-topic/);
    assert.equal(run("nope").code, 2);
  });

  it("validates, publishes, lists, shows, diffs and rolls back against the broker", () => {
    const good = join(dir, "good.yaml");
    const lower = join(dir, "lower.json");
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      good,
      "version: 1\nrules:\n  - id: velocity_count\n    type: velocity_count\n    threshold: 10\n",
    );
    writeFileSync(lower, JSON.stringify(doc(8)));
    writeFileSync(
      bad,
      "version: 1\nrules:\n  - id: velocity_count\n    type: velocity_count\n    threshold: 0\n",
    );

    const ok = run("validate", good);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /valid: 1 rule\(s\): velocity_count/);
    const refused = run("validate", bad);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /rule "velocity_count": field "threshold" must be a positive integer <= 10000/);
    const wide = join(dir, "wide.yaml");
    writeFileSync(wide, "version: 1\nrules:\n  - id: v\n    type: velocity_count\n    windowMs: 60000\n");
    const tooLong = run("validate", "--window", "30s", wide);
    assert.equal(tooLong.code, 1, "a 60 s rule window exceeds a 30 s processor window");
    assert.match(tooLong.err, /field "windowMs"/);

    assert.equal(run("list", ...onLog).code, 0);
    const badPublish = run("publish", bad, ...onLog);
    assert.equal(badPublish.code, 1);
    assert.match(badPublish.err, /nothing was published/);

    const p1 = run("publish", good, "--comment", "first", ...onLog);
    assert.equal(p1.code, 0, p1.err);
    assert.match(p1.out, /published version 1/);
    const again = run("publish", good, ...onLog);
    assert.equal(again.code, 0);
    assert.match(again.out, /unchanged: the document is version 1/);
    assert.match(run("publish", lower, ...onLog).out, /published version 2/);

    const listed = run("list", ...onLog);
    assert.equal(listed.code, 0, listed.err);
    const lines = listed.out.trim().split("\n");
    assert.match(lines[0]!, /^VERSION\s+PUBLISHED\s+AUTHOR\s+SOURCE/);
    assert.match(lines[1]!, /^2\*\s+\S+\s+cli:\S+\s+cli\s/);
    assert.match(lines[2]!, /^1\s+\S+\s+cli:\S+\s+cli\s+[0-9a-f]{12}\s+first$/);

    const shown = JSON.parse(run("show", "1", ...onLog).out);
    assert.equal(shown.version, 1);
    assert.equal(shown.source, "cli");
    assert.equal(shown.comment, "first");
    assert.deepEqual(shown.document, doc(10));
    assert.equal(JSON.parse(run("show", ...onLog).out).version, 2, "show without a number: the current one");
    assert.equal(run("show", "9", ...onLog).code, 1);

    const diff = run("diff", "1", "2", ...onLog);
    assert.equal(diff.code, 0, diff.err);
    assert.match(diff.out, /~ velocity_count \(changed\)\n {4}threshold: 10 -> 8/);

    const rb = run("rollback", "1", "--comment", "too noisy", ...onLog);
    assert.equal(rb.code, 0, rb.err);
    assert.match(rb.out, /published version 3: the document of version 1/);
    const v3 = JSON.parse(run("show", "3", ...onLog).out);
    assert.equal(v3.source, "rollback");
    assert.equal(v3.rollback_of, 1);
    assert.equal(v3.sha256, shown.sha256);
    assert.equal(run("rollback", "42", ...onLog).code, 1);
    assert.match(run("diff", "1", "3", ...onLog).out, /versions 1 and 3 have the same rules/);
  });
});

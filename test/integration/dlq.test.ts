/**
 * The DLQ on the real broker, end to end: invalid records go through the real Processor and
 * land in the DLQ masked — no card digits beyond BIN + last 4, no name, email or IP of the
 * inputs in any DLQ value or header — with their originals sealed; `paystream dlq list` and
 * `show` (the real command, a child process) show them; and a record refused for a reason
 * that goes away is redriven and processed, once however often it is redriven.
 *
 * The fixable refusal is a real one: a payment whose event_time is ahead of the processor's
 * clock by more than the allowed skew (a producer clock running ahead) is refused as
 * event_time_in_future; once its time has come it is valid, and redriving it then gets it
 * processed. The skew is 2 s here (5 min by default) so the test waits seconds, not minutes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProducer } from "../../src/adapters/kafka/client.ts";
import { DlqKey } from "../../src/core/dlq-crypto.ts";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { parseRules } from "../../src/core/rules.ts";
import { txJson } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  type ReadRecord,
  readTopic,
  startTestProcessor,
  type TestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { services } from "../helpers/services.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const KEY_HEX = "7d".repeat(32);
const SKEW_MS = 2000;
const REDRIVE_ENV = {
  PAYSTREAM_DLQ_KEY: KEY_HEX,
  PAYSTREAM_DLQ_KEY_ID: "it-key",
  PAYSTREAM_MAX_FUTURE_SKEW: "2s",
};
const SELECT = ["--reason", "event_time_in_future,bad_json,luhn_invalid"];

const rules = parseRules({
  version: 1,
  rules: [{ id: "velocity_count", type: "velocity_count", threshold: 50, severity: "high" }],
});

/** PII unique to this run: none of it may appear in the DLQ. */
const tag = Math.random().toString(36).slice(2, 8);
const PAN = "4556737586899855";
const PII = {
  cardholder_name: `Zed Quixote ${tag}`,
  email: `zq.${tag}@example.net`,
  ip_address: "203.0.113.77",
  card_number: PAN,
};
const FORBIDDEN = [PAN, PAN.slice(0, 12), "4556 7375 8689", PII.cardholder_name, PII.email, PII.ip_address];

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(join(ROOT, "bin/paystream"), args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? ROOT, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

function assertNoPii(what: string, text: string): void {
  for (const s of FORBIDDEN) assert.ok(!text.includes(s), `${what} holds ${s}: ${text.slice(0, 300)}`);
  assert.deepEqual(findLuhnDigitRuns(text), [], `${what}: a card number`);
}

describe("DLQ: masked on the real broker, listed and redriven by `paystream dlq`", () => {
  let topics: TestTopics;
  let proc: TestProcessor | undefined;
  let dlq: ReadRecord[];
  const futureId = randomUUID();
  let futureAt = 0;
  let base: string[];
  let early: Awaited<ReturnType<typeof run>>;

  before(async () => {
    topics = await createTestTopics("it-dlq", 3);
    base = ["--kafka", services.kafka.join(","), "--dlq-topic", topics.dlq];
    proc = await startTestProcessor(topics, rules, {
      dlqKey: new DlqKey(Buffer.from(KEY_HEX, "hex"), "it-key"),
      options: { maxFutureSkewMs: SKEW_MS },
    });
    futureAt = Date.now() + 20_000;
    const now = new Date(Date.now() - 1000).toISOString();
    const records = [
      // Ahead of the processor's clock by ~20 s: refused now, valid once its time has come.
      {
        key: "acct-f",
        value: txJson({
          ...PII,
          transaction_id: futureId,
          account_id: "acct-f",
          event_time: new Date(futureAt).toISOString(),
        }),
      },
      {
        key: "acct-j",
        value: txJson({ ...PII, transaction_id: randomUUID(), account_id: "acct-j", event_time: now }).slice(
          0,
          -40,
        ),
      },
      {
        key: "acct-l",
        value: txJson({
          ...PII,
          card_number: "4556737586899856",
          transaction_id: randomUUID(),
          account_id: "acct-l",
          event_time: now,
        }),
      },
      {
        key: "acct-s",
        value: txJson({
          ...PII,
          card_number: "4556 7375 8689 9855",
          transaction_id: randomUUID(),
          account_id: "acct-s",
          event_time: now,
        }),
      },
      {
        key: "acct-o",
        // A batch where one record is expected (not_object), plus loose card, email and IP.
        value: `[${txJson({ ...PII, transaction_id: randomUUID(), account_id: "acct-o" })},"${PII.card_number}","${PII.email} at ${PII.ip_address}"]`,
      },
      {
        key: "acct-ok",
        value: txJson({ transaction_id: randomUUID(), account_id: "acct-ok", event_time: now }),
      },
    ];
    const producer = createProducer(conn);
    await producer.send({
      messages: records.map((r) => ({ topic: topics.input, key: r.key, value: r.value })),
    });
    await producer.close();
    const p = proc;
    await waitFor(() => p.processor.totals.records >= records.length, 60_000, "every record processed");
    await p.processor.drain();
    dlq = await readTopic(topics.dlq, 5, 30_000);
    // While the future record is still ahead of the clock (by ~20 s minus the set-up).
    early = await run(["dlq", "redrive", ...base, ...SELECT, "--dry-run", "--json"], REDRIVE_ENV);
  });

  after(async () => {
    await proc?.close();
    if (topics) await deleteTopics(topics);
  });

  it("dead-letters each invalid record masked, in its value and every header, with the original sealed", () => {
    assert.equal(dlq.length, 5);
    assert.deepEqual(dlq.map((r) => r.headers.get("reason")).sort(), [
      "bad_json",
      "event_time_in_future",
      "luhn_invalid",
      "not_object",
      "schema_violation",
    ]);
    for (const r of dlq) {
      const reason = r.headers.get("reason");
      assertNoPii(`${reason} value`, r.value);
      for (const [name, value] of r.headers)
        if (name !== "raw_enc") assertNoPii(`${reason} header ${name}`, value);
      // The sealed original is ciphertext: not even base64 of the plaintext shows through.
      assertNoPii(
        `${reason} raw_enc decoded`,
        Buffer.from(r.headers.get("raw_enc") ?? "", "base64").toString("latin1"),
      );
      assert.equal(r.headers.get("raw_key_id"), "it-key");
      const v = JSON.parse(r.value) as { dlq_value: number; raw_encrypted: boolean; format: string };
      assert.equal(v.dlq_value, 1);
      assert.equal(v.raw_encrypted, true);
    }
  });

  it("`paystream dlq list` and `show` print them masked", async () => {
    const listed = await run(["dlq", "list", ...base, "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    assertNoPii("dlq list --json", listed.stdout);
    const out = JSON.parse(listed.stdout) as {
      entries: { entry: string; reason: string; transaction_id: string | null }[];
    };
    assert.equal(out.entries.length, 5);
    const future = out.entries.find((e) => e.reason === "event_time_in_future");
    assert.equal(future?.transaction_id, futureId);
    const table = await run(["dlq", "list", ...base, "--reason", "event_time_in_future"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      new RegExp(`${future!.entry}\\s+\\S+\\s+event_time_in_future\\s+${topics.input}`),
    );
    assert.match(table.stdout, /sealed it-key/);
    const shown = await run(["dlq", "show", future!.entry, ...base]);
    assert.equal(shown.code, 0, shown.stderr);
    assertNoPii("dlq show", shown.stdout);
    assert.equal(JSON.parse(shown.stdout).reason, "event_time_in_future");
    const none = await run(["dlq", "list", ...base, "--since", "1h", "--until", "59m"]);
    assert.match(none.stdout, /^0 matching of 5 DLQ records/m);
  });

  it("redrives the record once its time has come; it is processed, and a second redrive adds no row", async () => {
    const p = proc!;
    const env = REDRIVE_ENV;
    // Too early (run in before()): still in the future; the others will never pass.
    assert.equal(early.code, 1, early.stderr);
    const earlyOut = JSON.parse(early.stdout) as { results: { status: string; nowReason?: string }[] };
    assert.deepEqual(earlyOut.results.map((r) => `${r.status}:${r.nowReason}`).sort(), [
      "still_invalid:bad_json",
      "still_invalid:event_time_in_future",
      "still_invalid:luhn_invalid",
    ]);

    await new Promise((r) => setTimeout(r, Math.max(0, futureAt - SKEW_MS + 500 - Date.now())));
    const rowsBefore = await p.warehouse.countTransactions();
    const first = await run(["dlq", "redrive", ...base, "--reason", "event_time_in_future"], env);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    assert.match(first.stdout, /redriven 1; 1 record\(s\) produced/);
    await waitFor(
      async () => ((await p.warehouse.countByKey("transactions", [futureId])).get(futureId) ?? 0) === 1,
      30_000,
      "the redriven record processed into the warehouse",
    );
    assert.equal(await p.warehouse.countTransactions(), rowsBefore + 1);

    const dups = p.processor.totals.duplicates;
    const entry = dlq.find((r) => r.headers.get("reason") === "event_time_in_future")!;
    const second = await run(
      ["dlq", "redrive", ...base, "--offsets", `${entry.partition}:${entry.offset}`],
      env,
    );
    assert.equal(second.code, 0, second.stderr);
    await waitFor(
      () => p.processor.totals.duplicates === dups + 1,
      30_000,
      "the second copy dropped as a duplicate",
    );
    await p.processor.drain();
    assert.equal((await p.warehouse.countByKey("transactions", [futureId])).get(futureId), 1, "one row");
    assert.equal(await p.warehouse.countTransactions(), rowsBefore + 1);
  });

  it("says why a redrive cannot run without the key, and what a wrong key id is", async () => {
    const noKey = await run(["dlq", "redrive", ...base, "--reason", "luhn_invalid"]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /PS_SECRET_MISSING/);
    const otherKey = await run(["dlq", "redrive", ...base, "--reason", "luhn_invalid", "--json"], {
      PAYSTREAM_DLQ_KEY: "11".repeat(32),
    });
    assert.equal(otherKey.code, 1);
    assert.equal(JSON.parse(otherKey.stdout).results[0].status, "wrong_key_id");
  });
});

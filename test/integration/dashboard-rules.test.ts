/**
 * The rules page as a fraud analyst uses it, in Chromium on `paystream up` (a demo on
 * loopback: the embedded log is the rules log the processor follows): an invalid edit shows the
 * parser's field error and publishes nothing; a valid one publishes the next version, which the
 * API then serves; the history diffs and rolls back; a backtest of an unpublished edit shows
 * per-rule results next to the live version's. Then the standalone `paystream dashboard` on the
 * real Kafka, with its token: a publish from the page lands on its rules topic.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "puppeteer-core";
import { createAdmin, ensureTopics } from "../../src/adapters/kafka/client.ts";
import { KafkaRulesLog } from "../../src/adapters/kafka/rules-log.ts";
import { Topics } from "../../src/contracts/topics.ts";
import {
  type ConsoleProblem,
  launchBrowser,
  openPage,
  retype,
  startUpProcess,
  stopService,
  textOf,
  type UpRun,
  unexpectedProblems,
  waitRunning,
} from "../helpers/chromium.ts";
import { conn } from "../helpers/pipeline.ts";
import { freePort, type Service, startService, waitUntil } from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

interface RuleVersionJson {
  version: number;
  document: { version: number; rules: ({ id: string; type: string } & Record<string, unknown>)[] };
  author: string;
  source: string;
  comment?: string;
  rollback_of?: number;
}
interface RulesAnswer {
  current: RuleVersionJson | null;
  history: RuleVersionJson[];
}

const rule = (id: string) => `[data-testid="rule"][data-rule-id="${id}"]`;

async function rulesOf(base: string, headers: Record<string, string> = {}): Promise<RulesAnswer> {
  const res = await fetch(`${base}/api/rules`, { headers });
  assert.equal(res.status, 200);
  return (await res.json()) as RulesAnswer;
}

async function waitForMessage(page: Page, re: RegExp, timeoutMs = 10_000): Promise<string> {
  await page.waitForFunction(
    (src: string) =>
      new RegExp(src).test(document.querySelector('[data-testid="rules-message"]')?.textContent ?? ""),
    { timeout: timeoutMs },
    re.source,
  );
  return textOf(page, '[data-testid="rules-message"]');
}

describe("rules page in `paystream up`, in Chromium", () => {
  let browser: Browser;
  let run: UpRun;
  let page: Page;
  let problems: ConsoleProblem[];

  before(async () => {
    run = startUpProcess(["--rate", "500", "--scenario-rate", "0.5"]);
    browser = await launchBrowser();
    await waitRunning(run.up);
    ({ page, problems } = await openPage(browser, `${run.base}/#/rules`));
  });

  after(async () => {
    await browser?.close();
    if (run) await stopService(run.up);
  });

  it("shows the live version and its rules, each with an edit form of its type", async () => {
    await page.waitForSelector('[data-testid="current-version"][data-version]', { timeout: 15_000 });
    const api = await rulesOf(run.base);
    assert.ok(api.current, "the rules file was published as the first version");
    const shown = await page.$eval('[data-testid="current-version"]', (el) =>
      el.getAttribute("data-version"),
    );
    assert.equal(Number(shown), api.current.version);
    const ids = await page.$$eval('[data-testid="rule"]', (els) =>
      els.map((e) => e.getAttribute("data-rule-id")),
    );
    assert.deepEqual(
      ids,
      api.current.document.rules.map((r) => r.id),
    );
    // Per type: its own fields, plus the common ones.
    assert.ok(await page.$(`${rule("velocity_count")} [data-testid="field-threshold"]`));
    assert.ok(await page.$(`${rule("card_testing")} [data-testid="field-largeAmountMin"]`));
    assert.ok(await page.$(`${rule("geo_velocity")} [data-testid="field-maxSpeedKmh-off"]`));
    assert.ok(await page.$(`${rule("amount_spike")} [data-testid="field-multiplier"]`));
    assert.ok(await page.$(`${rule("amount_sum")} [data-testid="field-cooldownMs"]`));
    assert.equal(
      await page.$eval(
        `${rule("velocity_count")} [data-testid="field-threshold"]`,
        (el) => (el as HTMLInputElement).value,
      ),
      "10",
    );
    assert.deepEqual(problems, [], "no console errors");
  });

  it("refuses an invalid threshold with the field error and publishes nothing; publishes a valid one", async () => {
    const before = await rulesOf(run.base);
    const threshold = `${rule("velocity_count")} [data-testid="field-threshold"]`;

    await retype(page, threshold, "0");
    await page.click('[data-testid="rules-validate"]');
    await page.waitForSelector(`${rule("velocity_count")} [data-testid="rule-errors"]`, { timeout: 10_000 });
    const validateErrors = await textOf(page, `${rule("velocity_count")} [data-testid="rule-errors"]`);
    assert.match(validateErrors, /rule "velocity_count": field "threshold" must be/);

    // Publish refuses it too, with the same message, and the log is untouched.
    await page.click('[data-testid="rules-publish"]');
    await waitForMessage(page, /not published/);
    assert.match(
      await textOf(page, `${rule("velocity_count")} [data-testid="rule-errors"]`),
      /field "threshold" must be/,
    );
    const unchanged = await rulesOf(run.base);
    assert.equal(unchanged.current?.version, before.current?.version, "nothing published");
    assert.equal(unchanged.history.length, before.history.length);

    await retype(page, threshold, "25");
    await page.click('[data-testid="rules-validate"]');
    await waitForMessage(page, /^valid/);
    assert.equal(
      await page.$(`${rule("velocity_count")} [data-testid="rule-errors"]`),
      null,
      "the error is gone",
    );
    await retype(page, '[data-testid="rules-comment"]', "fewer velocity alerts");
    await page.click('[data-testid="rules-publish"]');
    const message = await waitForMessage(page, /published version \d+/);
    const published = Number(/published version (\d+)/.exec(message)![1]);
    assert.equal(published, before.current!.version + 1);
    await page.waitForSelector(`[data-testid="current-version"][data-version="${published}"]`, {
      timeout: 10_000,
    });

    const after = await rulesOf(run.base);
    assert.equal(after.current?.version, published);
    assert.equal(after.current?.source, "api");
    assert.equal(after.current?.author, "demo", "loopback demo: no credentials, so no name");
    assert.equal(after.current?.comment, "fewer velocity alerts");
    const velocity = after.current?.document.rules.find((r) => r.id === "velocity_count");
    assert.equal(velocity?.threshold, 25);
    assert.equal(after.history[0]?.version, published, "history is newest first");

    const expected = [/\/api\/rules(\/validate)?Failed to load resource: .*status of 422/];
    assert.deepEqual(unexpectedProblems(problems, expected), [], "only the deliberate 422s were logged");
  });

  it("diffs a version against its predecessor and rolls back to an earlier one", async () => {
    const { current } = await rulesOf(run.base);
    const v = current!.version;
    await page.click(`[data-testid="history-row"][data-version="${v}"] [data-testid="history-diff"]`);
    await page.waitForSelector('[data-testid="diff"]', { timeout: 10_000 });
    const diff = await textOf(page, '[data-testid="diff"]');
    assert.match(diff, /changed\s*velocity_count/);
    assert.match(diff, /threshold: 10 → 25/);

    await page.click(`[data-testid="history-row"][data-version="${v - 1}"] [data-testid="history-rollback"]`);
    const message = await waitForMessage(page, /rolled back: version \d+ restores/);
    assert.match(message, new RegExp(`version ${v + 1} restores ${v - 1}`));
    const after = await rulesOf(run.base);
    assert.equal(after.current?.version, v + 1, "a rollback is a new version");
    assert.equal(after.current?.rollback_of, v - 1);
    assert.equal(after.current?.document.rules.find((r) => r.id === "velocity_count")?.threshold, 10);
    await page.waitForSelector(`[data-testid="current-version"][data-version="${v + 1}"]`, {
      timeout: 10_000,
    });
    assert.equal(
      await page.$eval(
        `${rule("velocity_count")} [data-testid="field-threshold"]`,
        (el) => (el as HTMLInputElement).value,
      ),
      "10",
      "the editor starts again from the live document",
    );
  });

  it("backtests the edited, unpublished rules next to the live ones, per rule", async () => {
    const before = await rulesOf(run.base);
    await retype(page, `${rule("velocity_count")} [data-testid="field-threshold"]`, "3");
    await page.click(`${rule("merchant_spread")} [data-testid="rule-shadow"]`);
    await retype(page, '[data-testid="backtest-minutes"]', "5");
    await page.click('[data-testid="backtest-run"]');
    await page.waitForSelector('[data-testid="backtest-row"]', { timeout: 60_000 });

    const rows = await page.$$eval('[data-testid="backtest-row"]', (els) =>
      els.map((e) => ({
        id: e.getAttribute("data-rule-id") ?? "",
        cells: Array.from(e.querySelectorAll("td"), (td) => td.textContent ?? ""),
      })),
    );
    assert.deepEqual(
      rows.map((r) => r.id).sort(),
      before.current!.document.rules.map((r) => r.id).sort(),
      "one row per rule",
    );
    for (const r of rows) {
      assert.equal(r.cells.length, 9, `${r.id}: rule, then alerts/accounts/recall/precision twice`);
      for (const n of [r.cells[1]!, r.cells[2]!, r.cells[5]!, r.cells[6]!])
        assert.match(n, /^[\d,]+$/, `${r.id}: ${n}`);
    }
    const num = (s: string) => Number(s.replace(/,/g, ""));
    const velocity = rows.find((r) => r.id === "velocity_count")!;
    assert.ok(
      num(velocity.cells[1]!) >= num(velocity.cells[5]!),
      `a lower threshold raises at least as many alerts: ${velocity.cells.join(" | ")}`,
    );
    assert.match(
      rows.find((r) => r.id === "merchant_spread")!.cells[0]!,
      /shadow/,
      "the edited shadow flag was backtested",
    );
    assert.match(await textOf(page, '[data-testid="backtest-span"]'), /[\d,]+ records from/);

    const after = await rulesOf(run.base);
    assert.equal(after.current?.version, before.current?.version, "a backtest publishes nothing");
  });
});

describe("rules page on `paystream dashboard` standalone, on the real Kafka", () => {
  const TOKEN = "dashboard-rules-token-0123456789abcdef";
  const rulesTopic = uniqueName("it-dash-rules");
  let dashboard: Service;
  let browser: Browser | undefined;

  before(async () => {
    const port = freePort();
    dashboard = startService(
      "dashboard",
      [
        "dashboard",
        "--kafka",
        services.kafka.join(","),
        "--rules-topic",
        rulesTopic,
        "--redis",
        services.redis,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
      ],
      port,
      { PAYSTREAM_DASHBOARD_TOKEN: TOKEN },
    );
    await waitUntil(
      () => dashboard.output().includes("paystream dashboard on") || dashboard.child.exitCode !== null,
      30_000,
      "dashboard listening",
    );
    assert.equal(dashboard.child.exitCode, null, dashboard.output());
  });

  after(async () => {
    await browser?.close();
    if (dashboard) await stopService(dashboard);
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics: [rulesTopic] }).catch(() => {});
    await admin.close();
  });

  it("refuses to start on a bad --kafka naming the field, and on an unreachable Kafka naming the address", () => {
    const env = { ...process.env, PAYSTREAM_DASHBOARD_TOKEN: TOKEN, PAYSTREAM_LOG_LEVEL: "warn" };
    const port = String(freePort());
    const bad = spawnSync("bin/paystream", ["dashboard", "--kafka", "not a broker", "--port", port], {
      env,
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /invalid config kafka\.brokers: .*\(from --kafka\)/);
    const down = spawnSync("bin/paystream", ["dashboard", "--kafka", "127.0.0.1:1", "--port", port], {
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(down.status, 1);
    assert.match(down.stderr, /cannot reach Kafka at 127\.0\.0\.1:1/);
  });

  it("asks for the token, publishes the first version from the page, and the version is on the topic", async () => {
    const base = `http://127.0.0.1:${dashboard.port}`;
    assert.equal((await fetch(`${base}/api/rules`)).status, 401, "reads need the token");
    const anonymous = await fetch(`${base}/api/rules`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ document: { version: 1, rules: [] } }),
    });
    assert.equal(anonymous.status, 401, "so do writes");

    browser = await launchBrowser();
    const { page } = await openPage(browser, `${base}/#/rules`);
    await page.waitForSelector('[data-testid="token-input"]', { timeout: 10_000 });
    await page.type('[data-testid="token-input"]', TOKEN);
    await page.click('[data-testid="token-submit"]');
    await page.waitForFunction(
      () =>
        /no version published yet/.test(
          document.querySelector('[data-testid="current-version"]')?.textContent ?? "",
        ),
      { timeout: 15_000 },
    );

    await page.select('[data-testid="add-rule-type"]', "velocity_count");
    await page.type('[data-testid="add-rule-id"]', "velocity_burst_10s");
    await page.click('[data-testid="add-rule"]');
    const added = rule("velocity_burst_10s");
    await page.waitForSelector(added);
    assert.equal(
      await page.$eval(`${added} [data-testid="rule-shadow"]`, (el) => (el as HTMLInputElement).checked),
      true,
      "a new rule starts in shadow",
    );
    await page.type(`${added} [data-testid="field-threshold"]`, "6");
    await page.type(`${added} [data-testid="field-windowMs"]`, "10000");
    await page.click('[data-testid="rules-publish"]');
    await waitForMessage(page, /published version 1$/, 15_000);

    const headers = { authorization: `Bearer ${TOKEN}` };
    const api = await rulesOf(base, headers);
    assert.equal(api.current?.version, 1);
    assert.equal(api.current?.author, "token");
    assert.deepEqual(api.current?.document, {
      version: 1,
      rules: [
        {
          id: "velocity_burst_10s",
          type: "velocity_count",
          enabled: true,
          shadow: true,
          threshold: 6,
          windowMs: 10000,
        },
      ],
    });

    // What every processor following this topic will read.
    await ensureTopics(conn, [Topics.rules], undefined, { [Topics.rules]: rulesTopic });
    const log = new KafkaRulesLog(conn, rulesTopic);
    try {
      const history = await log.history();
      assert.equal(history.length, 1);
      assert.equal(history[0]!.source, "api");
      assert.deepEqual(history[0]!.document, api.current?.document);
    } finally {
      await log.close();
    }
  });
});

/**
 * The cases page as an analyst uses it, in Chromium: `paystream up` raises alerts on injected
 * incidents, the processor groups them into cases, the page lists them in the API's order,
 * opens one with its timeline of masked transactions, and resolves it as fraud; the API then
 * says who and when, and the rules' precision follows. Once on the embedded pipeline, once on
 * the real Kafka and Redis.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "puppeteer-core";
import { createAdmin } from "../../src/adapters/kafka/client.ts";
import { KafkaTopicReader } from "../../src/adapters/kafka/reader.ts";
import { connectRedis } from "../../src/adapters/redis/client.ts";
import {
  assertNoCardNumbers,
  type ConsoleProblem,
  launchBrowser,
  openPage,
  startUpProcess,
  stopService,
  textOf,
  type UpRun,
  waitRunning,
} from "../helpers/chromium.ts";
import { conn } from "../helpers/pipeline.ts";
import { COLLECTOR_TOKEN, PII_KEY, waitUntil } from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

interface CaseJson {
  case_id: string;
  account_id: string;
  status: string;
  severity: string;
  first_seen: string;
  rule_ids: string[];
  hits: { alert_id: string; rule_id: string; transaction_id: string }[];
  history: { status: string; by: string; at: string; note?: string }[];
}

const CARD = /^\d{6} •+ \d{1,4}$/;

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

/** Incidents on demand: the collector's scenario API, so a case exists within seconds. */
async function injectIncidents(run: UpRun, token?: string): Promise<void> {
  for (const type of ["velocity_burst", "geo_velocity", "card_testing"]) {
    const res = await fetch(`http://127.0.0.1:${run.collectorPort}/scenarios/${type}`, {
      method: "POST",
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    assert.ok(res.status === 200 || res.status === 409, `inject ${type}: ${res.status}`);
  }
}

/**
 * Resolves a case of this run: `ours` says whether a case's transactions are this run's
 * (the real Redis also holds other runs' and other tests' cases, which are left alone).
 */
async function resolveOneCase(
  run: UpRun,
  page: Page,
  problems: ConsoleProblem[],
  ours: { refresh(): Promise<void>; has(c: CaseJson): boolean },
) {
  let target: CaseJson | undefined;
  await waitUntil(
    async () => {
      const { body } = await getJson<{ cases: CaseJson[] }>(`${run.base}/api/cases?status=open&limit=100`);
      await ours.refresh();
      target = body.cases.find((c) => c.hits.length > 0 && ours.has(c));
      return target !== undefined;
    },
    120_000,
    "a case filed from this run's alerts",
  );
  const caseId = target!.case_id;

  await page.waitForSelector(`[data-testid="case-row"][data-case-id="${caseId}"]`, { timeout: 15_000 });
  // The queue is the API's order, unresolved first.
  const { body: listed } = await getJson<{ cases: CaseJson[] }>(`${run.base}/api/cases?limit=100`);
  const rows = await page.$$eval('[data-testid="case-row"]', (els) =>
    els.map((e) => e.getAttribute("data-case-id")),
  );
  const shownOrder = rows.filter((id) => listed.cases.some((c) => c.case_id === id));
  assert.deepEqual(
    shownOrder.slice(0, 5),
    listed.cases
      .map((c) => c.case_id)
      .filter((id) => rows.includes(id))
      .slice(0, 5),
    "the queue keeps the API's order",
  );

  await page.click(`[data-testid="case-row"][data-case-id="${caseId}"] [data-testid="case-link"]`);
  await page.waitForSelector(`[data-testid="case-detail"][data-case-id="${caseId}"]`, { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.location.hash), `#/cases/${caseId}`);
  const detail = await textOf(page, '[data-testid="case-detail"]');
  assert.ok(detail.includes(target!.account_id), "the account is shown");
  const hits = await page.$$eval('[data-testid="case-hit"]', (els) => els.map((e) => e.textContent ?? ""));
  assert.ok(hits.length >= 1);
  for (const h of target!.hits)
    assert.ok(
      hits.some((t) => t.includes(h.transaction_id)),
      `hit ${h.transaction_id} listed`,
    );
  for (const card of await page.$$eval('[data-testid="case-hit-card"]', (els) =>
    els.map((e) => e.textContent ?? ""),
  )) {
    assert.match(card, CARD, "cards show BIN and last digits only");
  }
  assert.equal(
    await page.$eval('[data-testid="case-status"]', (el) => el.getAttribute("data-status")),
    "open",
  );

  // Only the transitions allowed from "open" are offered.
  assert.equal(await page.$('[data-testid="case-reopen"]'), null);
  await page.click('[data-testid="case-acknowledge"]');
  await page.waitForSelector('[data-testid="case-status"][data-status="acknowledged"]', { timeout: 10_000 });
  assert.equal(await page.$('[data-testid="case-acknowledge"]'), null, "no acknowledging twice");

  const clicked = Date.now();
  await page.type('[data-testid="case-note"]', "confirmed with the cardholder");
  await page.click('[data-testid="case-resolve-fraud"]');
  await page.waitForSelector('[data-testid="case-status"][data-status="resolved_fraud"]', {
    timeout: 10_000,
  });
  assert.match(await textOf(page, '[data-testid="case-status"]'), /resolved: fraud/);
  await page.waitForSelector('[data-testid="case-reopen"]');
  assert.match(
    await textOf(page, '[data-testid="case-history"]'),
    /resolved: fraud by demo — confirmed with the cardholder/,
  );

  const { status, body: stored } = await getJson<CaseJson>(`${run.base}/api/cases/${caseId}`);
  assert.equal(status, 200);
  assert.equal(stored.status, "resolved_fraud");
  assert.deepEqual(
    stored.history.map((h) => [h.status, h.by]),
    [
      ["acknowledged", "demo"],
      ["resolved_fraud", "demo"],
    ],
  );
  const last = stored.history.at(-1)!;
  assert.equal(last.status, "resolved_fraud");
  assert.equal(last.by, "demo", "loopback demo: no credentials, so no name");
  assert.equal(last.note, "confirmed with the cardholder");
  const at = Date.parse(last.at);
  assert.ok(at >= clicked - 1000 && at <= Date.now() + 1000, `resolved at ${last.at}`);

  // Precision: every rule of the case has a fraud resolution now, on the page and in the API.
  const { body: precision } = await getJson<{
    rules: { rule_id: string; fraud: number; precision: number | null }[];
  }>(`${run.base}/api/cases/precision`);
  for (const id of stored.rule_ids) {
    const row = precision.rules.find((r) => r.rule_id === id);
    assert.ok(row && row.fraud >= 1 && row.precision !== null && row.precision > 0, `precision of ${id}`);
    await page.waitForSelector(`[data-testid="precision-row"][data-rule-id="${id}"]`, { timeout: 10_000 });
    assert.match(
      await page.$eval(
        `[data-testid="precision-row"][data-rule-id="${id}"] [data-testid="precision-value"]`,
        (el) => el.textContent ?? "",
      ),
      /^\d+\.\d%$/,
    );
  }

  // The resolved case leaves the open queue.
  await page.select('[data-testid="cases-filter"]', "open");
  await page.waitForFunction(
    (id: string) => !document.querySelector(`[data-testid="case-row"][data-case-id="${id}"]`),
    { timeout: 10_000 },
    caseId,
  );
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, cells apart, is what a person sees
  assertNoCardNumbers(await page.evaluate(() => document.body.innerText), "the cases page");
  assert.deepEqual(problems, [], "no console errors");
}

describe("cases page in `paystream up`, in Chromium", () => {
  let browser: Browser;
  let run: UpRun;

  before(async () => {
    run = startUpProcess(["--rate", "300", "--scenario-rate", "0.5"]);
    browser = await launchBrowser();
    await waitRunning(run.up);
  });

  after(async () => {
    await browser?.close();
    if (run) await stopService(run.up);
  });

  it("lists the cases, opens one with its masked timeline, resolves it as fraud; the API has who and when", async () => {
    await injectIncidents(run);
    const { page, problems } = await openPage(browser, `${run.base}/#/cases`);
    await page.waitForSelector('[data-testid="cases-queue"]', { timeout: 10_000 });
    // The embedded store holds this run's cases only.
    await resolveOneCase(run, page, problems, { refresh: async () => {}, has: () => true });
  });
});

describe("cases page in `paystream up` on the real Kafka and Redis, in Chromium", () => {
  let browser: Browser;
  let run: UpRun;
  const topic = uniqueName("it-dash-cases-tx");
  // A logical database of its own: the queue shows this test's cases, not every run's since.
  const redisUrl = new URL(services.redis);
  redisUrl.pathname = "/11";

  before(async () => {
    const redis = await connectRedis({ url: redisUrl.toString() });
    try {
      await redis.flushDb();
    } finally {
      redis.destroy();
    }
    run = startUpProcess(
      [
        "--kafka",
        services.kafka.join(","),
        "--redis",
        redisUrl.toString(),
        "--topic",
        topic,
        "--group",
        uniqueName("it-dash-cases-group"),
        "--rate",
        "300",
        "--scenario-rate",
        "0.5",
      ],
      { PAYSTREAM_PII_KEY: PII_KEY, PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN },
    );
    browser = await launchBrowser();
    await waitRunning(run.up);
  });

  after(async () => {
    await browser?.close();
    if (run) await stopService(run.up);
    const admin = createAdmin(conn);
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.close();
  });

  it("resolves a case filed in Redis from the page", async () => {
    await injectIncidents(run, COLLECTOR_TOKEN);
    const { page, problems } = await openPage(browser, `${run.base}/#/cases`);
    await page.waitForSelector('[data-testid="cases-queue"]', { timeout: 10_000 });
    // This run's transactions are the ones on its own topic.
    const ids = new Set<string>();
    const reader = new KafkaTopicReader(conn);
    const ours = {
      refresh: async () => {
        await reader.readToEnd(
          topic,
          (r) => {
            const id = /"transaction_id":"([^"]+)"/.exec(r.value.toString("utf8"))?.[1];
            if (id) ids.add(id);
          },
          { timeoutMs: 30_000 },
        );
      },
      has: (c: CaseJson) => c.hits.every((h) => ids.has(h.transaction_id)),
    };
    await resolveOneCase(run, page, problems, ours);
  });
});

/**
 * The dashboard as people use it: a real Chromium (Debian's /usr/bin/chromium, driven by
 * puppeteer-core) on `paystream up` started as a child process (a demo on loopback: nothing
 * asks for credentials), and `paystream dashboard` standalone against the real local Redis and
 * a running pipeline's URLs, with its own token (the UI asks for it, keeps it in the tab's
 * sessionStorage and sends it with the event stream and the rate control) and the collector's.
 * Attacks on both are in http-hostile.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { connectRedis } from "../../src/adapters/redis/client.ts";
import { AlertKeys } from "../../src/contracts/redis.ts";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { buildUi } from "../../src/dashboard/bundle.ts";
import type { DashboardSnapshot, FeedAlert } from "../../src/dashboard/model.ts";
import { hashBasicPassword } from "../../src/lib/http.ts";
import {
  COLLECTOR_TOKEN,
  freePort,
  getJson,
  PII_KEY,
  type Service,
  startService,
  waitUntil,
} from "../helpers/processes.ts";
import { services } from "../helpers/services.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.PAYSTREAM_CHROMIUM ?? "/usr/bin/chromium";
const CARD = /^\d{6} •+ \d{1,4}$/;
const DASHBOARD_TOKEN = "dashboard-ui-token-0123456789abcdef";

async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

interface ConsoleProblem {
  text: string;
  url: string;
}

/** A page that records every console error and uncaught exception. */
async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: ConsoleProblem[] }> {
  const page = await browser.newPage();
  const problems: ConsoleProblem[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push({ text: m.text(), url: m.location().url ?? "" });
  });
  page.on("pageerror", (err) => problems.push({ text: `uncaught: ${String(err)}`, url }));
  await page.setViewport({ width: 1400, height: 1000 });
  const res = await page.goto(url, { waitUntil: "load" });
  assert.equal(res?.status(), 200);
  return { page, problems };
}

/** The number shown in a stat (its first text node: "2,004" of "2,004 tx/s"). */
async function statValue(page: Page, testId: string): Promise<number> {
  const text = await page.$eval(`[data-testid="${testId}"]`, (el) => el.childNodes[0]?.textContent ?? "");
  return Number(text.replace(/,/g, ""));
}

async function waitForStat(page: Page, testId: string, cond: string, timeoutMs: number): Promise<void> {
  await page.waitForFunction(
    `(() => { const el = document.querySelector('[data-testid="${testId}"]'); if (!el) return false;
      const v = Number((el.childNodes[0]?.textContent ?? "").replace(/,/g, "")); return ${cond}; })()`,
    { timeout: timeoutMs, polling: 200 },
  );
}

function assertNoCardNumbers(text: string, where: string): void {
  assert.deepEqual(findLuhnDigitRuns(text), [], `no Luhn-valid 12–19 digit run in ${where}`);
}

function startUp(extra: string[], env: Record<string, string> = {}) {
  const port = freePort();
  const collectorPort = freePort();
  const dir = mkdtempSync(join(tmpdir(), "ps-dash-"));
  const up = startService(
    "up",
    [
      "up",
      "--port",
      String(port),
      "--collector-port",
      String(collectorPort),
      "--rate",
      "2000",
      "--scenario-rate",
      "0.5",
      "--status-every",
      "0",
      "--warehouse",
      `duckdb:${join(dir, "dash.duckdb")}`,
      "--seed",
      String(Date.now() % 2_000_000_000),
      ...extra,
    ],
    port,
    env,
  );
  return { up, port, collectorPort };
}

async function waitRunning(s: Service): Promise<void> {
  await waitUntil(
    () => s.output().includes("Ctrl-C to stop") || s.child.exitCode !== null,
    30_000,
    `${s.name} running`,
  );
  assert.equal(s.child.exitCode, null, `${s.name} exited early:\n${s.output()}`);
}

async function stop(s: Service, timeoutMs = 20_000): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  s.child.kill("SIGTERM");
  const timer = setTimeout(() => s.child.kill("SIGKILL"), timeoutMs);
  const code = await s.exited;
  clearTimeout(timer);
  return code;
}

async function collectorTarget(port: number): Promise<number | undefined> {
  return (await getJson<{ messages_per_second: number }>(port, "/config")).body?.messages_per_second;
}

describe("dashboard in `paystream up`, in Chromium", () => {
  let browser: Browser;
  let run: ReturnType<typeof startUp>;
  let page: Page;
  let problems: ConsoleProblem[];

  before(async () => {
    run = startUp([]);
    browser = await launchBrowser();
    await waitRunning(run.up);
    assert.match(run.up.output(), new RegExp(`dashboard {9}http://127\\.0\\.0\\.1:${run.port}/`));
    ({ page, problems } = await openPage(browser, `http://127.0.0.1:${run.port}/`));
  });

  after(async () => {
    await browser?.close();
    if (run) await stop(run.up);
  });

  it("loads with no console errors and shows live, non-zero, increasing throughput", async () => {
    await waitForStat(page, "in-rate", "v > 0", 20_000);
    await waitForStat(page, "out-rate", "v > 0", 20_000);
    const first = await statValue(page, "processed-total");
    await new Promise((r) => setTimeout(r, 2500));
    const second = await statValue(page, "processed-total");
    assert.ok(second > first, `processed total went from ${first} to ${second}`);
    const points = await page.$eval("polyline.spark-out", (el) => el.getAttribute("points") ?? "");
    assert.ok(points.split(" ").length >= 2, "the sparkline has a history");
    assert.equal(await page.$eval('[data-testid="live"]', (el) => el.textContent), "live");
    assert.equal(await statValue(page, "target-rate"), 2000);
    assert.equal(await page.$('[data-testid="token-input"]'), null, "a demo on loopback asks for no token");
    assert.deepEqual(problems, [], "no console errors");
  });

  it("shows alerts in the feed with masked cards, and no card number anywhere in the page", async () => {
    await page.waitForSelector('[data-testid="alert-row"]', { timeout: 60_000 });
    const cards = await page.$$eval('[data-testid="alert-card"]', (els) =>
      els.map((e) => e.textContent ?? ""),
    );
    assert.ok(cards.length > 0);
    for (const c of cards) assert.match(c, CARD, `masked card ${c}`);
    const rows = await page.$$eval('[data-testid="alert-row"]', (els) => els.map((e) => e.textContent ?? ""));
    assert.ok(
      rows.every((r) => /acc_/.test(r)),
      "each alert names its account",
    );
    assert.ok((await statValue(page, "alerts-total")) > 0);
    const rules = await page.$eval('[data-testid="alerts-by-rule"]', (el) => el.textContent ?? "");
    assert.match(rules, /[a-z_]+\d/);
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, cells apart, is what a person sees
    assertNoCardNumbers(await page.evaluate(() => document.body.innerText), "the page text");
    assertNoCardNumbers(await page.content(), "the page HTML");
    const api = await fetch(`http://127.0.0.1:${run.port}/api/snapshot`).then((r) => r.text());
    assertNoCardNumbers(api, "/api/snapshot");
    assert.deepEqual(problems, [], "no console errors");
  });

  it("changes the collector's target rate from the UI, and the live throughput follows", async () => {
    await page.type('[data-testid="rate-input"]', "3456");
    await page.click('[data-testid="rate-submit"]');
    await page.waitForFunction(
      () =>
        /target set to 3,456/.test(document.querySelector('[data-testid="rate-message"]')?.textContent ?? ""),
      { timeout: 5000 },
    );
    assert.equal(await collectorTarget(run.collectorPort), 3456, "GET /config on the collector");
    await waitForStat(page, "target-rate", "v === 3456", 5000);
    await waitForStat(page, "in-rate", "v > 3000", 15_000);
    assert.deepEqual(problems, [], "no console errors");
  });

  it("shows the collector's 4xx reason for a bad rate and leaves the target unchanged", async () => {
    for (const [input, reason] of [
      ["2000000", /400: messages_per_second must be <= 100000$/],
      ["fast", /400: messages_per_second must be integer/],
    ] as const) {
      await page.type('[data-testid="rate-input"]', input);
      await page.click('[data-testid="rate-submit"]');
      await page.waitForFunction(
        (re: string) =>
          new RegExp(re).test(document.querySelector('[data-testid="rate-message"]')?.textContent ?? ""),
        { timeout: 5000 },
        reason.source,
      );
      assert.match(await page.$eval('[data-testid="rate-message"]', (el) => el.className), /error/);
      await page.$eval('[data-testid="rate-input"]', (el) => {
        (el as HTMLInputElement).select();
      });
      await page.keyboard.press("Backspace");
    }
    assert.equal(await collectorTarget(run.collectorPort), 3456);
    // The browser logs the deliberate 400 answers as failed resources; nothing else is allowed.
    const unexpected = problems.filter(
      (p) => !(p.url.endsWith("/api/collector/rate") && /status of 400/.test(p.text)),
    );
    assert.deepEqual(unexpected, []);
  });

  it("stops cleanly with the page's event stream still open", async () => {
    const code = await stop(run.up);
    assert.equal(code, 0, run.up.output().slice(-2000));
    assert.match(run.up.output(), /paystream stopped after/);
  });
});

describe("`paystream dashboard` standalone, on the real Redis", () => {
  let pipeline: ReturnType<typeof startUp>;
  let dashboard: Service;
  let browser: Browser | undefined;
  const startedAt = Date.now();
  const dead = freePort();

  before(async () => {
    // The pipeline writes its alerts to the real Redis; the dashboard reads them there.
    // The collector of this pipeline wants its token even on loopback (given, so enforced).
    pipeline = startUp(["--redis", services.redis], {
      PAYSTREAM_PII_KEY: PII_KEY,
      PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
    });
    await waitRunning(pipeline.up);
    const port = freePort();
    dashboard = startService(
      "dashboard",
      [
        "dashboard",
        "--redis",
        services.redis,
        "--collector-url",
        `http://127.0.0.1:${pipeline.collectorPort}`,
        "--processor-urls",
        `http://127.0.0.1:${pipeline.port},http://127.0.0.1:${dead}`,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--refresh",
        "500ms",
      ],
      port,
      // As the Helm chart passes them: the collector's token and the dashboard's own.
      { PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN, PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN },
    );
    await waitUntil(
      () => dashboard.output().includes("paystream dashboard on") || dashboard.child.exitCode !== null,
      20_000,
      "dashboard listening",
    );
    assert.equal(dashboard.child.exitCode, null, dashboard.output());
  });

  after(async () => {
    await browser?.close();
    if (dashboard) await stop(dashboard);
    if (pipeline) await stop(pipeline.up);
  });

  const authorized = { authorization: `Bearer ${DASHBOARD_TOKEN}` };
  const api = (path: string) => fetch(`http://127.0.0.1:${dashboard.port}${path}`, { headers: authorized });
  const snapshot = async () => (await (await api("/api/snapshot")).json()) as DashboardSnapshot;

  it("aggregates the collector, the processors' /status and /metrics, and the alerts in Redis", async () => {
    let s = await snapshot();
    await waitUntil(
      async () => {
        s = await snapshot();
        return (
          s.throughput.in_per_s > 0 &&
          s.throughput.out_per_s > 0 &&
          s.alerts.latest.some((a) => Date.parse(a.detected_at) >= startedAt) &&
          s.latency.p99_row_ms !== null
        );
      },
      60_000,
      "throughput, this run's alerts and latencies",
    );
    assert.equal(s.collector.target_rate, 2000);
    assert.ok(s.processed.total > 0 && s.processed.ok > 0);
    assert.ok(s.lag_records !== null);
    assert.ok(s.alerts.total > 0 && Object.keys(s.alerts.by_rule).length > 0);
    assert.ok(s.alerts.source.startsWith(`redis ${services.redis}`), s.alerts.source);
    const health = Object.fromEntries(s.health.map((h) => [h.name, h]));
    assert.equal(health.collector?.ok, true);
    assert.equal(health[`processor http://127.0.0.1:${pipeline.port}`]?.ok, true);
    const down = health[`processor http://127.0.0.1:${dead}`];
    assert.equal(down?.ok, false, "an unreachable processor is shown as down");
    assert.match(down!.detail, /ECONNREFUSED/);
    assert.equal(health["alert feed"]?.ok, true);

    // The feed is what the processors wrote to Redis, masked.
    const redis = await connectRedis({ url: services.redis });
    try {
      const mine = s.alerts.latest.filter((a) => Date.parse(a.detected_at) >= startedAt);
      for (const a of mine) {
        assert.match(a.card ?? "", CARD);
        const stored = await redis.hGetAll(AlertKeys.alert(a.alert_id));
        assert.equal(stored.rule_id, a.rule_id, `alert ${a.alert_id} is in Redis`);
        assert.equal(stored.account_id, a.account_id);
      }
    } finally {
      redis.destroy();
    }
    const alerts = await api("/api/alerts?limit=100").then((r) => r.text());
    assert.ok((JSON.parse(alerts) as FeedAlert[]).length > 0);
    assertNoCardNumbers(alerts, "/api/alerts");
    assertNoCardNumbers(JSON.stringify(s), "/api/snapshot");
    const bad = await api("/api/alerts?limit=1000");
    assert.equal(bad.status, 400);
    assert.equal((await fetch(`http://127.0.0.1:${dashboard.port}/api/snapshot`)).status, 401);
  });

  it("forwards an authenticated caller's rate changes to the collector, and returns its 4xx reason as is", async () => {
    const post = (body: unknown, auth: Record<string, string> = authorized) =>
      fetch(`http://127.0.0.1:${dashboard.port}/api/collector/rate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body: JSON.stringify(body),
      });
    const anonymous = await post({ messages_per_second: 2500 }, {});
    assert.equal(anonymous.status, 401);
    assert.equal(await collectorTarget(pipeline.collectorPort), 2000, "nothing reached the collector");
    const good = await post({ messages_per_second: 2500 });
    assert.equal(good.status, 200);
    assert.deepEqual(await good.json(), { messages_per_second: 2500, previous: 2000 });
    assert.equal(await collectorTarget(pipeline.collectorPort), 2500);
    const bad = await post({ messages_per_second: -1 });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: "bad_request", reason: "messages_per_second must be >= 0" });
    const extra = await post({ messages_per_second: 10, burst: true });
    assert.equal(extra.status, 400);
    assert.match(((await extra.json()) as { reason: string }).reason, /unknown field burst/);
    // Above the collector's --max-rate: the dashboard's check passes it, the collector's says no.
    const high = await post({ messages_per_second: 150_000 });
    assert.equal(high.status, 400);
    assert.match(((await high.json()) as { reason: string }).reason, /must be <= 100000/);
    assert.equal(await collectorTarget(pipeline.collectorPort), 2500);
  });

  it("serves the UI, which asks for the token, then renders the live feed and changes the rate with it", async () => {
    browser = await launchBrowser();
    const { page, problems } = await openPage(browser, `http://127.0.0.1:${dashboard.port}/`);
    // Without the token the event stream answers 401, and the UI asks for it.
    await page.waitForSelector('[data-testid="token-input"]', { timeout: 10_000 });
    assert.equal(await page.$('[data-testid="alert-row"]'), null, "no data before signing in");
    await page.type('[data-testid="token-input"]', "not-the-token-0123456789");
    await page.click('[data-testid="token-submit"]');
    await page.waitForSelector('[data-testid="token-refused"]', { timeout: 10_000 });
    await page.type('[data-testid="token-input"]', DASHBOARD_TOKEN);
    await page.click('[data-testid="token-submit"]');

    await page.waitForSelector('[data-testid="alert-row"]', { timeout: 20_000 });
    await waitForStat(page, "out-rate", "v > 0", 20_000);
    const health = await page.$eval('[data-testid="health"]', (el) => el.textContent ?? "");
    assert.match(health, new RegExp(`processor http://127\\.0\\.0\\.1:${dead}.*ECONNREFUSED`));
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, cells apart, is what a person sees
    assertNoCardNumbers(await page.evaluate(() => document.body.innerText), "the page text");
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("paystream.dashboard.token")),
      DASHBOARD_TOKEN,
      "kept for this tab only",
    );
    assert.equal(await page.evaluate(() => localStorage.length), 0, "never in localStorage");
    assert.equal((await page.cookies()).length, 0, "never in a cookie");

    // The rate control sends the token: the change reaches the collector.
    const before = (await collectorTarget(pipeline.collectorPort))!;
    const wanted = before === 2222 ? 2345 : 2222;
    await page.type('[data-testid="rate-input"]', String(wanted));
    await page.click('[data-testid="rate-submit"]');
    await page.waitForFunction(
      (n: string) =>
        new RegExp(`target set to ${n}`).test(
          document.querySelector('[data-testid="rate-message"]')?.textContent ?? "",
        ),
      { timeout: 5000 },
      wanted.toLocaleString("en-US"),
    );
    assert.equal(await collectorTarget(pipeline.collectorPort), wanted);
    await waitForStat(page, "target-rate", `v === ${wanted}`, 5000);

    // A reload keeps the token (same tab); forgetting it asks again.
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector('[data-testid="alert-row"]', { timeout: 20_000 });
    await page.click('[data-testid="token-forget"]');
    await page.waitForSelector('[data-testid="token-input"]', { timeout: 10_000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("paystream.dashboard.token")), null);

    // The only console errors are the refused requests for the event stream (401, no token yet).
    const unexpected = problems.filter(
      (p) => !(p.url.endsWith("/api/events") && /status of 401/.test(p.text)),
    );
    assert.deepEqual(unexpected, []);
  });

  it("with a Basic login only, the browser asks for it on the page and sends it with every request", async () => {
    const port = freePort();
    const basicOnly = startService(
      "dashboard",
      [
        "dashboard",
        "--redis",
        services.redis,
        "--collector-url",
        `http://127.0.0.1:${pipeline.collectorPort}`,
        "--processor-urls",
        `http://127.0.0.1:${pipeline.port}`,
        "--port",
        String(port),
      ],
      port,
      {
        PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
        PAYSTREAM_DASHBOARD_TOKEN: "",
        PAYSTREAM_DASHBOARD_BASIC_AUTH: hashBasicPassword("ops", "a long passphrase"),
      },
    );
    browser ??= await launchBrowser();
    // Its own context: no login or token from the tests before.
    const context = await browser.createBrowserContext();
    try {
      await waitUntil(
        () => basicOnly.output().includes("paystream dashboard on") || basicOnly.child.exitCode !== null,
        20_000,
        "dashboard listening",
      );
      const url = `http://127.0.0.1:${port}/`;
      // No login: the page itself is refused, with a Basic challenge.
      const anonymous = await fetch(url);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Basic realm="paystream"/);
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(m.text());
      });
      await page.authenticate({ username: "ops", password: "a long passphrase" });
      assert.equal((await page.goto(url, { waitUntil: "load" }))?.status(), 200);
      await waitForStat(page, "out-rate", "v > 0", 20_000);
      assert.equal(await page.$('[data-testid="token-input"]'), null, "no token asked for");
      const before = (await collectorTarget(pipeline.collectorPort))!;
      const wanted = before === 2100 ? 2200 : 2100;
      await page.type('[data-testid="rate-input"]', String(wanted));
      await page.click('[data-testid="rate-submit"]');
      await page.waitForFunction(
        (n: string) =>
          new RegExp(`target set to ${n}`).test(
            document.querySelector('[data-testid="rate-message"]')?.textContent ?? "",
          ),
        { timeout: 5000 },
        wanted.toLocaleString("en-US"),
      );
      assert.equal(await collectorTarget(pipeline.collectorPort), wanted);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await stop(basicOnly);
    }
  });

  it("with no collector (production: no --collector-url), shows no rate form and no collector outage", async () => {
    const port = freePort();
    const noCollector = startService(
      "dashboard",
      [
        "dashboard",
        "--redis",
        services.redis,
        "--processor-urls",
        `http://127.0.0.1:${pipeline.port}`,
        "--port",
        String(port),
      ],
      port,
      { PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN },
    );
    browser ??= await launchBrowser();
    const context = await browser.createBrowserContext();
    try {
      await waitUntil(
        () => noCollector.output().includes("paystream dashboard on") || noCollector.child.exitCode !== null,
        20_000,
        "dashboard listening",
      );
      assert.match(noCollector.output(), /collector {3}none/);
      const snap = (await (
        await fetch(`http://127.0.0.1:${port}/api/snapshot`, { headers: authorized })
      ).json()) as DashboardSnapshot;
      assert.equal(snap.collector.url, null);
      assert.ok(!snap.health.some((h) => h.name === "collector"), JSON.stringify(snap.health));
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/`, { waitUntil: "load" });
      await page.waitForSelector('[data-testid="token-input"]', { timeout: 10_000 });
      await page.type('[data-testid="token-input"]', DASHBOARD_TOKEN);
      await page.click('[data-testid="token-submit"]');
      await waitForStat(page, "out-rate", "v > 0", 20_000);
      assert.equal(await page.$('[data-testid="rate-input"]'), null, "no rate form without a collector");
      const text = await page.evaluate(() => document.body.textContent ?? "");
      assert.doesNotMatch(text, /collector unreachable/);
    } finally {
      await context.close();
      await stop(noCollector);
    }
  });

  it("refuses bad flags, naming the field, and an unreachable Redis, naming the address", async () => {
    for (const [args, re] of [
      [["--processor-urls", "processor:9464"], /invalid config processor\.urls: .*--processor-urls/],
      [["--collector-url", "ftp://c:1"], /invalid config collector\.url: must use http/],
      [["--port", "-1"], /invalid config http\.port/],
      [["--redis", "redis://127.0.0.1:1", "--port", "0"], /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/],
    ] as const) {
      const s = startService("dashboard", ["dashboard", ...args], 0, {
        PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN,
      });
      const code = await s.exited;
      assert.equal(code, 1, s.output());
      assert.match(s.output(), re);
    }
  });
});

describe("dashboard bundle", () => {
  it("is built from the UI sources and production dependencies only (the image installs no dev dependencies)", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    assert.ok(pkg.dependencies.esbuild, "esbuild builds the UI at start-up: a production dependency");
    const bundle = await buildUi();
    assert.ok(bundle.js.length > 10_000 && bundle.css.length > 0);
    assert.ok(bundle.buildMs < 5000, `built in ${Math.round(bundle.buildMs)} ms`);
    const prod = new Set(Object.keys(pkg.dependencies));
    // Transitive dependencies of production dependencies are installed too.
    for (const name of [...prod]) {
      const deps = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as {
        dependencies?: Record<string, string>;
      };
      for (const d of Object.keys(deps.dependencies ?? {})) prod.add(d);
    }
    const packages = new Set(
      bundle.inputs
        .filter((i) => i.startsWith("node_modules/"))
        .map((i) => {
          const parts = i.split("/");
          return parts[1]!.startsWith("@") ? `${parts[1]}/${parts[2]}` : parts[1]!;
        }),
    );
    assert.ok(packages.has("react") && packages.has("react-dom"));
    for (const p of packages) assert.ok(prod.has(p), `${p} is installed by npm ci --omit=dev`);
    for (const i of bundle.inputs.filter((x) => !x.startsWith("node_modules/"))) {
      assert.match(i, /^src\/dashboard\/ui\//, `bundle input ${i}`);
    }
    assertNoCardNumbers(bundle.js, "the bundle");
  });
});

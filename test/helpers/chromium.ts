/**
 * Driving the dashboard in the Debian Chromium (puppeteer-core) and running `paystream up` as
 * a child process for it, as the rules and cases page tests do.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findLuhnDigitRuns } from "../../src/core/pan.ts";
import { freePort, type Service, startService, waitUntil } from "./processes.ts";

const CHROMIUM = process.env.PAYSTREAM_CHROMIUM ?? "/usr/bin/chromium";

export function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

export interface ConsoleProblem {
  text: string;
  url: string;
}

/** A page that records every console error and uncaught exception. */
export async function openPage(
  browser: Browser,
  url: string,
): Promise<{ page: Page; problems: ConsoleProblem[] }> {
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

/** Replaces an input's text the way a person does: select all, type. */
export async function retype(page: Page, selector: string, text: string): Promise<void> {
  await page.$eval(selector, (el) => {
    (el as HTMLInputElement).focus();
    (el as HTMLInputElement).select();
  });
  await page.keyboard.press("Backspace");
  await page.type(selector, text);
}

export async function textOf(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (el) => el.textContent ?? "");
}

export function assertNoCardNumbers(text: string, where: string): void {
  assert.deepEqual(findLuhnDigitRuns(text), [], `no Luhn-valid 12–19 digit run in ${where}`);
}

export interface UpRun {
  up: Service;
  port: number;
  collectorPort: number;
  base: string;
}

/** `paystream up` on loopback (a demo: no credentials asked), embedded unless `extra` says otherwise. */
export function startUpProcess(extra: string[], env: Record<string, string> = {}): UpRun {
  const port = freePort();
  const collectorPort = freePort();
  const dir = mkdtempSync(join(tmpdir(), "ps-dash-pages-"));
  const up = startService(
    "up",
    [
      "up",
      "--port",
      String(port),
      "--collector-port",
      String(collectorPort),
      "--status-every",
      "0",
      "--warehouse",
      `duckdb:${join(dir, "pages.duckdb")}`,
      "--seed",
      String(Date.now() % 2_000_000_000),
      ...extra,
    ],
    port,
    env,
  );
  return { up, port, collectorPort, base: `http://127.0.0.1:${port}` };
}

export async function waitRunning(s: Service): Promise<void> {
  await waitUntil(
    () => s.output().includes("Ctrl-C to stop") || s.child.exitCode !== null,
    30_000,
    `${s.name} running`,
  );
  assert.equal(s.child.exitCode, null, `${s.name} exited early:\n${s.output()}`);
}

export async function stopService(s: Service, timeoutMs = 20_000): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  s.child.kill("SIGTERM");
  const timer = setTimeout(() => s.child.kill("SIGKILL"), timeoutMs);
  const code = await s.exited;
  clearTimeout(timer);
  return code;
}

/** Console errors other than the browser's log of answers the test provoked on purpose. */
export function unexpectedProblems(problems: ConsoleProblem[], expected: RegExp[]): ConsoleProblem[] {
  return problems.filter(
    (p) => !(/Failed to load resource/.test(p.text) && expected.some((re) => re.test(p.url + p.text))),
  );
}

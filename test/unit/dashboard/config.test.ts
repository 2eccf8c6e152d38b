import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../../src/core/errors.ts";
import { dashboardOptions, parseHttpUrlList, toDashboardConfig } from "../../../src/dashboard/config.ts";
import { loadConfig } from "../../../src/lib/config.ts";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  toDashboardConfig(loadConfig(dashboardOptions, { argv, env }).values);

describe("paystream dashboard config", () => {
  it("defaults to no collector (production runs none) and the local processor and Redis on port 3000", () => {
    const c = load([]);
    assert.equal(c.collectorUrl, undefined);
    assert.deepEqual(c.processorUrls, ["http://127.0.0.1:9464"]);
    assert.equal(c.redisUrl, "redis://127.0.0.1:6379");
    assert.equal(c.http.port, 3000);
    assert.equal(c.refreshMs, 1000);
    assert.equal(c.collectorToken, undefined);
  });

  it("reads flags and env vars; processor URLs are a comma list, trailing slashes dropped", () => {
    const c = load(["--processor-urls", "http://p-0:9464/, https://p-1:9464", "--port", "8080"], {
      PAYSTREAM_COLLECTOR_URL: "http://collector:5000/",
      PAYSTREAM_REDIS_URL: "rediss://redis:6380",
      PAYSTREAM_API_TOKEN: "0123456789abcdef0123",
    });
    assert.deepEqual(c.processorUrls, ["http://p-0:9464", "https://p-1:9464"]);
    assert.equal(c.collectorUrl, "http://collector:5000");
    assert.equal(c.redisUrl, "rediss://redis:6380");
    assert.equal(c.collectorToken, "0123456789abcdef0123");
    assert.equal(c.http.port, 8080);
  });

  it("names the field and the source of every bad value", () => {
    const cases: [string[], RegExp][] = [
      [
        ["--processor-urls", "p-0:9464"],
        /invalid config processor\.urls: .*(not a URL|http).*--processor-urls/,
      ],
      [["--processor-urls", "ftp://p:1"], /processor\.urls: "ftp:\/\/p:1" must use http/],
      [["--processor-urls", "http://a:1,http://a:1/"], /processor\.urls: .*listed twice/],
      [["--processor-urls", " , "], /processor\.urls: must list at least one/],
      [["--collector-url", "collector:5000"], /invalid config collector\.url/],
      [["--redis", "http://redis:6379"], /invalid config redis\.url: must use redis:\/\/ or rediss:\/\//],
      [["--port", "70000"], /invalid config http\.port: must be between 0 and 65535/],
      [["--refresh", "10ms"], /invalid config refresh: must be between 200ms and 10s, got 10ms/],
      // Bare numbers once meant milliseconds: refused rather than read as seconds.
      [["--refresh", "1000"], /invalid config refresh: "1000" has no unit: write 1000s/],
      [["--nope"], /--nope: unknown flag/],
    ];
    for (const [argv, re] of cases) {
      assert.throws(
        () => load(argv),
        (err: unknown) => err instanceof ConfigError && re.test(err.message),
        argv.join(" "),
      );
    }
  });

  it("never echoes the collector token", () => {
    assert.throws(
      () => load(["--collector-token", "short"]),
      (err: unknown) =>
        err instanceof ConfigError &&
        /collector\.token: is not valid/.test(err.message) &&
        !err.message.includes("short"),
    );
  });

  it("reads the refresh interval with a unit, as the Helm chart sets it", () => {
    assert.equal(load([], { PAYSTREAM_DASHBOARD_REFRESH: "1s" }).refreshMs, 1000);
    assert.equal(load(["--refresh", "500ms"]).refreshMs, 500);
    const chart = readFileSync(
      join(import.meta.dirname, "../../../deploy/helm/paystream/values.yaml"),
      "utf8",
    );
    const refresh = /^ {2}refresh: (\S+)/m.exec(chart)?.[1];
    assert.equal(
      load([], { PAYSTREAM_DASHBOARD_REFRESH: refresh }).refreshMs,
      1000,
      `values.yaml refresh: ${refresh}`,
    );
  });

  it("values are typed, and an unknown config-file key is refused by name", () => {
    const v = loadConfig(dashboardOptions, { argv: ["--processor-service", "svc:9464"], env: {} }).values;
    const service: { host: string; port: number } | undefined = v["processor.service"];
    const urls: string[] = v["processor.urls"];
    assert.deepEqual([service, urls], [{ host: "svc", port: 9464 }, ["http://127.0.0.1:9464"]]);
    const file = join(mkdtempSync(join(tmpdir(), "dcfg-")), "d.yaml");
    writeFileSync(file, "processor:\n  url: http://p:9464\n");
    assert.throws(
      () => load([], { PAYSTREAM_CONFIG: file }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === "processor.url" &&
        /did you mean processor\.urls\?/.test(err.message),
    );
  });

  it("parseHttpUrlList accepts arrays (config files)", () => {
    assert.deepEqual(parseHttpUrlList(["http://a:1", "http://b:2/"]), ["http://a:1", "http://b:2"]);
  });
});

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, PaystreamError } from "../../../src/core/errors.ts";
import { loadConfig, type OptionTable, p, parseDuration, renderHelp } from "../../../src/lib/config.ts";

const table: OptionTable = [
  {
    key: "kafka.brokers",
    flag: "kafka",
    env: "T_KAFKA",
    description: "brokers",
    parse: p.brokers(),
    default: ["127.0.0.1:9092"],
  },
  {
    key: "rate",
    flag: "rate",
    env: "T_RATE",
    description: "tx/s",
    parse: p.int(0, 1_000_000),
    default: 1000,
  },
  {
    key: "window",
    flag: "window",
    env: "T_WINDOW",
    description: "window",
    parse: p.duration(1000),
    default: 60_000,
  },
  {
    key: "secret",
    flag: "pii-key",
    env: "T_SECRET",
    description: "key",
    parse: p.string({ min: 16 }),
    secret: true,
    optional: true,
  },
  {
    key: "demo",
    flag: "demo",
    env: "T_DEMO",
    description: "demo",
    parse: p.bool(),
    default: false,
    boolean: true,
  },
];

describe("config", () => {
  it("uses defaults when nothing is given", () => {
    const { values } = loadConfig(table, { argv: [], env: {} });
    assert.deepEqual(values, {
      "kafka.brokers": ["127.0.0.1:9092"],
      rate: 1000,
      window: 60_000,
      secret: undefined,
      demo: false,
    });
  });

  it("applies precedence flag > env > file > default", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "rate: 10\nwindow: 30s\nkafka:\n  brokers: [a:1, b:2]\n");
    const { values } = loadConfig(table, { argv: ["--rate=30"], env: { T_WINDOW: "45s" }, file });
    assert.equal(values.rate, 30);
    assert.equal(values.window, 45_000);
    assert.deepEqual(values["kafka.brokers"], ["a:1", "b:2"]);
  });

  it("names the field and the source of a bad value", () => {
    assert.throws(
      () => loadConfig(table, { argv: [], env: { T_RATE: "fast" } }),
      (err: unknown) => err instanceof ConfigError && err.field === "rate" && /env T_RATE/.test(err.message),
    );
    assert.throws(
      () => loadConfig(table, { argv: ["--rate", "-1"], env: {} }),
      /invalid config rate: must be between 0/,
    );
    assert.throws(() => loadConfig(table, { argv: ["--kafka", "nohostport"], env: {} }), /kafka\.brokers/);
  });

  it("rejects unknown flags and flags without a value", () => {
    assert.throws(() => loadConfig(table, { argv: ["--nope"], env: {} }), /--nope: unknown flag/);
    assert.throws(() => loadConfig(table, { argv: ["--rate"], env: {} }), /--rate: needs a value/);
  });

  it("never echoes a secret's value in an error", () => {
    assert.throws(
      () => loadConfig(table, { argv: [], env: { T_SECRET: "short-secret" } }),
      (err: unknown) =>
        err instanceof ConfigError && err.field === "secret" && !err.message.includes("short-secret"),
    );
  });

  it("reports an unreadable or invalid config file", () => {
    assert.throws(
      () => loadConfig(table, { argv: ["--config", "/nonexistent.yaml"], env: {} }),
      PaystreamError,
    );
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    writeFileSync(join(dir, "bad.json"), "{nope");
    assert.throws(
      () => loadConfig(table, { argv: [], env: { PAYSTREAM_CONFIG: join(dir, "bad.json") } }),
      /not valid/,
    );
  });

  it("parses durations and booleans", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("2m"), 120_000);
    assert.equal(parseDuration("x"), undefined);
    assert.equal(loadConfig(table, { argv: ["--demo"], env: {} }).values.demo, true);
    assert.equal(loadConfig(table, { argv: ["--no-demo"], env: { T_DEMO: "true" } }).values.demo, false);
  });

  it("renders help listing every flag with its env var and default, hiding secrets", () => {
    const help = renderHelp("test", "summary", table);
    for (const o of table) {
      assert.match(help, new RegExp(`--${o.flag}`));
      assert.match(help, new RegExp(o.env));
    }
    assert.match(help, /secret, no default/);
  });
});

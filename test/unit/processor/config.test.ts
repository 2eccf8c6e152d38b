import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defaultRecoverySpanMs, ProcessorDefaults } from "../../../src/contracts/defaults.ts";
import { CONSUMER_GROUP, Topics } from "../../../src/contracts/topics.ts";
import { DEFAULT_LOCAL_TTL_MS, DEFAULT_SHARED_TTL_MS } from "../../../src/core/dedup.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { loadConfig, renderHelp } from "../../../src/lib/config.ts";
import {
  type ProcessorConfig,
  type ProcessorValues,
  processorOptions,
  toProcessorConfig,
} from "../../../src/processor/config.ts";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}, file?: string): ProcessorConfig =>
  toProcessorConfig(loadConfig(processorOptions, { argv, env, ...(file ? { file } : {}) }).values);

const PII = "0123456789abcdef0123456789abcdef";

describe("paystream processor config", () => {
  it("takes its defaults from src/contracts/defaults.ts", () => {
    const c = load([]);
    assert.deepEqual(c.kafka, {
      brokers: ["127.0.0.1:9092"],
      groupId: CONSUMER_GROUP,
      topic: Topics.transactions,
      dlqTopic: Topics.dlq,
      alertsTopic: Topics.alerts,
      rulesTopic: Topics.rules,
      groupProtocol: "consumer",
    });
    assert.equal(c.windowMs, ProcessorDefaults.windowMs);
    assert.equal(c.allowedLatenessMs, ProcessorDefaults.allowedLatenessMs);
    assert.equal(c.recoverySpanMs, 75_000);
    assert.equal(c.maxBatch, ProcessorDefaults.maxBatch);
    assert.equal(c.maxInFlight, ProcessorDefaults.maxInFlight);
    assert.equal(c.maxMessageBytes, ProcessorDefaults.maxMessageBytes);
    assert.equal(c.http.port, 9464);
    assert.equal(c.durationMs, 0);
    assert.equal(c.piiKey, undefined);
  });

  it("has one dedup horizon, 24 h as docs/processor.md states, shared with the in-memory store", () => {
    assert.equal(load([]).dedupTtlMs, 24 * 3_600_000);
    assert.equal(DEFAULT_SHARED_TTL_MS, ProcessorDefaults.dedupTtlMs);
    assert.equal(DEFAULT_LOCAL_TTL_MS, ProcessorDefaults.dedupLocalTtlMs);
    assert.ok(DEFAULT_LOCAL_TTL_MS < DEFAULT_SHARED_TTL_MS, "the local tier forgets first");
    assert.match(
      renderHelp("processor", "", processorOptions),
      /PAYSTREAM_DEDUP_TTL; key dedup\.ttlMs; default 1d/,
    );
  });

  it("derives the default recovery span from the window and lateness actually configured", () => {
    assert.equal(load(["--window", "2m"]).recoverySpanMs, defaultRecoverySpanMs(120_000, 10_000));
    assert.equal(load(["--window", "2m"]).recoverySpanMs, 135_000);
    assert.equal(load(["--window", "2m", "--recovery-span", "10m"]).recoverySpanMs, 600_000);
    assert.match(
      renderHelp("processor", "", processorOptions),
      /key recovery\.spanMs; default window \+ allowed lateness \+ 5s \(75s\)/,
    );
  });

  it("reads durations with units from flags, env and file; refuses bare numbers", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcfg-"));
    const file = join(dir, "p.yaml");
    writeFileSync(file, "window:\n  ms: 90s\n  latenessMs: 5s\ndedup:\n  ttlMs: 15m\nduration: 40s\n");
    const c = load([], {}, file);
    assert.deepEqual(
      [c.windowMs, c.allowedLatenessMs, c.dedupTtlMs, c.durationMs],
      [90_000, 5000, 900_000, 40_000],
    );
    assert.equal(load(["--duration", "40s"]).durationMs, 40_000);
    assert.equal(load([], { PAYSTREAM_DEDUP_TTL: "1h" }).dedupTtlMs, 3_600_000);
    for (const [argv, field] of [
      [["--duration", "40"], "duration"],
      [["--dedup-ttl", "60000"], "dedup.ttlMs"],
      [["--window", "60000"], "window.ms"],
      [["--recovery-span", "75000"], "recovery.spanMs"],
    ] as const) {
      assert.throws(
        () => load([...argv]),
        (err: unknown) =>
          err instanceof ConfigError && err.field === field && /has no unit/.test(err.message),
        argv.join(" "),
      );
    }
  });

  it("reads the case status sync interval as a duration (default 5s), refusing bad values by name", () => {
    assert.equal(load([]).caseSyncIntervalMs, ProcessorDefaults.caseSyncIntervalMs);
    assert.equal(ProcessorDefaults.caseSyncIntervalMs, 5000);
    assert.equal(load(["--case-sync-interval", "30s"]).caseSyncIntervalMs, 30_000);
    assert.equal(load([], { PAYSTREAM_CASE_SYNC_INTERVAL: "500ms" }).caseSyncIntervalMs, 500);
    for (const bad of ["5000", "0s", "2h", "soon"]) {
      assert.throws(
        () => load(["--case-sync-interval", bad]),
        (err: unknown) => err instanceof ConfigError && err.field === "cases.syncIntervalMs",
        bad,
      );
    }
    assert.match(
      renderHelp("processor", "", processorOptions),
      /--case-sync-interval[\s\S]*PAYSTREAM_CASE_SYNC_INTERVAL; key cases\.syncIntervalMs; default 5s/,
    );
  });

  it("refuses an unknown config-file key, naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcfg-"));
    const file = join(dir, "p.yaml");
    writeFileSync(file, "kafka:\n  brokers: [k:9092]\n  groupid: g\n");
    assert.throws(
      () => load([], {}, file),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === "kafka.groupid" &&
        /did you mean kafka\.groupId\?/.test(err.message),
    );
  });

  it("never echoes the PII key", () => {
    assert.equal(load([], { PAYSTREAM_PII_KEY: PII }).piiKey, PII);
    for (const opts of [{ PAYSTREAM_PII_KEY: "too-short" }]) {
      assert.throws(
        () => load([], opts),
        (err: unknown) =>
          err instanceof ConfigError && err.field === "pii.key" && !err.message.includes("too-short"),
      );
    }
    assert.doesNotMatch(renderHelp("processor", "", processorOptions), new RegExp(PII));
  });

  it("values are typed: the config is built without casts", () => {
    const v: ProcessorValues = loadConfig(processorOptions, {
      argv: ["--group-protocol", "classic"],
      env: {},
    }).values;
    const protocol: "consumer" | "classic" = v["kafka.groupProtocol"];
    const brokers: string[] = v["kafka.brokers"];
    const recovery: number | undefined = v["recovery.spanMs"];
    assert.deepEqual([protocol, brokers, recovery], ["classic", ["127.0.0.1:9092"], undefined]);
  });

  it("toProcessorConfig fills keys it is not given from the table (paystream up passes a subset)", () => {
    const c = toProcessorConfig({ "kafka.brokers": [], "redis.url": "", demo: true });
    assert.equal(c.maxBatch, ProcessorDefaults.maxBatch);
    assert.equal(c.kafka.dlqTopic, Topics.dlq);
    assert.equal(c.recoverySpanMs, 75_000);
    assert.equal(c.demo, true);
  });
});

/** The option tables of `paystream up`, `verify` and `topics` (src/cli/options/). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { topicsOptions } from "../../../src/cli/options/topics.ts";
import { toUpConfig, upOptions } from "../../../src/cli/options/up.ts";
import { verifyOptions } from "../../../src/cli/options/verify.ts";
import { collectorOptions } from "../../../src/collector/config.ts";
import { ProcessorDefaults } from "../../../src/contracts/defaults.ts";
import { Topics } from "../../../src/contracts/topics.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { loadConfig } from "../../../src/lib/config.ts";
import { processorOptions } from "../../../src/processor/config.ts";
import { DEFAULT_CHECKED_RULES } from "../../../src/verify/reconcile.ts";

const up = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  toUpConfig(loadConfig(upOptions, { argv, env }).values);

describe("paystream up options", () => {
  it("embedded by default: demo PII key, no Kafka, no Redis, the tables' own defaults elsewhere", () => {
    const c = up([]);
    assert.equal(c.embedded, true);
    assert.equal(c.brokers, undefined);
    assert.equal(c.redisUrl, undefined);
    assert.equal(c.processor.demo, true);
    assert.equal(c.processor.maxBatch, ProcessorDefaults.maxBatch);
    assert.equal(c.processor.dedupTtlMs, ProcessorDefaults.dedupTtlMs);
    assert.equal(c.collector.batchSize, 2000);
    assert.equal(c.collector.topic, Topics.transactions);
    assert.equal(c.processor.http.host, "127.0.0.1");
    assert.equal(c.processor.http.port, 3000);
    assert.equal(c.collector.http.port, 5000);
    assert.equal(c.statusEveryMs, 5000);
    assert.equal(c.logLevel, "warn");
  });

  it("with real services a PII key is required (demo stays off) and the collector writes the processor's topic", () => {
    const c = up(["--kafka", "k:9092", "--topic", "run-1"]);
    assert.equal(c.embedded, false);
    assert.deepEqual(c.brokers, ["k:9092"]);
    assert.equal(c.processor.demo, false);
    assert.equal(c.collector.topic, "run-1");
    assert.deepEqual(c.collector.brokers, ["k:9092"]);
  });

  it("its processor and collector options are those tables' own declarations", () => {
    for (const key of ["window.ms", "dedup.ttlMs", "pii.key", "warehouse"]) {
      assert.equal(
        upOptions.find((o) => o.key === key),
        processorOptions.find((o) => o.key === key),
      );
    }
    for (const key of ["rate", "lateMaxMs", "http.token"]) {
      assert.equal(
        upOptions.find((o) => o.key === key),
        collectorOptions.find((o) => o.key === key),
      );
    }
  });

  it("durations: --duration 20s, --status-every 2s or 0; a bare 40 is refused", () => {
    const c = up(["--duration", "20s", "--status-every", "0"]);
    assert.deepEqual([c.durationMs, c.statusEveryMs], [20_000, 0]);
    assert.throws(
      () => up(["--duration", "40"]),
      (err: unknown) =>
        err instanceof ConfigError && err.field === "duration" && /write 40s for seconds/.test(err.message),
    );
  });
});

describe("paystream verify options", () => {
  it("typed values: rules a list, timeout in ms, json a boolean", () => {
    const v = loadConfig(verifyOptions, {
      argv: ["--rules", "a, b,a", "--timeout", "2m", "--json"],
      env: {},
    }).values;
    const rules: string[] = v.rules;
    const timeout: number = v.timeout;
    const json: boolean = v.json;
    assert.deepEqual([rules, timeout, json], [["a", "b"], 120_000, true]);
    assert.deepEqual(loadConfig(verifyOptions, { argv: [], env: {} }).values.rules, [
      ...DEFAULT_CHECKED_RULES,
    ]);
  });

  it("refuses a stray argument and an unknown flag with the flag named", () => {
    assert.throws(() => loadConfig(verifyOptions, { argv: ["extra"], env: {} }), /unexpected argument/);
    assert.throws(
      () => loadConfig(verifyOptions, { argv: ["--no-such-flag"], env: {} }),
      /--no-such-flag: unknown flag/,
    );
    assert.throws(
      () => loadConfig(verifyOptions, { argv: ["--timeout", "120"], env: {} }),
      /invalid config timeout: "120" has no unit/,
    );
  });
});

describe("paystream topics options", () => {
  it("takes the shared --kafka and its replication factor", () => {
    const v = loadConfig(topicsOptions, { argv: ["--kafka", "a:1,b:2", "--replicas", "3"], env: {} }).values;
    const brokers: string[] = v["kafka.brokers"];
    const replicas: number | undefined = v["kafka.replicas"];
    assert.deepEqual([brokers, replicas], [["a:1", "b:2"], 3]);
  });

  it("leaves the replication factor to the cluster's size when not given (as the services do)", () => {
    const v = loadConfig(topicsOptions, { argv: ["--kafka", "a:1"], env: {} }).values;
    assert.equal(v["kafka.replicas"], undefined);
  });
});

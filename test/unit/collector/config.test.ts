import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type CollectorConfig, collectorOptions, toCollectorConfig } from "../../../src/collector/config.ts";
import { DEFAULT_FAULT_RATES, DEFAULT_LATE_MAX_MS } from "../../../src/collector/generator.ts";
import { DEFAULT_ACCOUNTS, DEFAULT_MERCHANTS } from "../../../src/collector/population.ts";
import { Topics } from "../../../src/contracts/topics.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { loadConfig } from "../../../src/lib/config.ts";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}, file?: string): CollectorConfig =>
  toCollectorConfig(loadConfig(collectorOptions, { argv, env, ...(file ? { file } : {}) }).values);

describe("paystream collector config", () => {
  it("defaults are the generator's and population's own", () => {
    const c = load([]);
    assert.deepEqual(c.faults, DEFAULT_FAULT_RATES);
    assert.equal(c.lateMaxMs, DEFAULT_LATE_MAX_MS);
    assert.equal(c.accounts, DEFAULT_ACCOUNTS);
    assert.equal(c.merchants, DEFAULT_MERCHANTS);
    assert.equal(c.topic, Topics.transactions);
    assert.equal(c.labelsTopic, Topics.labels);
    assert.equal(c.http.port, 5000);
    assert.equal(c.lingerMs, 5);
    assert.equal(c.http.token, undefined);
  });

  it("durations need a unit: --linger 5ms, --late-max 30s, --duration 40s", () => {
    const c = load(["--linger", "5ms", "--late-max", "1m", "--duration", "40s"]);
    assert.deepEqual([c.lingerMs, c.lateMaxMs, c.durationMs], [5, 60_000, 40_000]);
    for (const flag of ["--linger", "--late-max", "--duration"]) {
      assert.throws(
        () => load([flag, "40"]),
        (err: unknown) => err instanceof ConfigError && /"40" has no unit: write 40s/.test(err.message),
        flag,
      );
    }
  });

  it("refuses an unknown config-file key, naming it", () => {
    const file = join(mkdtempSync(join(tmpdir(), "ccfg-")), "c.yaml");
    writeFileSync(file, "rate: 500\nfaults:\n  duplicates: 0.1\n");
    assert.throws(
      () => load([], {}, file),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === "faults.duplicates" &&
        /did you mean faults\.duplicate\?/.test(err.message),
    );
  });

  it("never echoes the API token", () => {
    assert.throws(
      () => load(["--api-token", "tooshort"]),
      (err: unknown) =>
        err instanceof ConfigError && err.field === "http.token" && !err.message.includes("tooshort"),
    );
    assert.equal(load([], { PAYSTREAM_API_TOKEN: "0123456789abcdef" }).http.token, "0123456789abcdef");
  });
});

/**
 * Every command's table at once: shared options are the same declaration everywhere, every
 * default is a value its own parser accepts (so `--help` shows a value that works), and
 * every duration option refuses a bare number.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { topicsOptions } from "../../../src/cli/options/topics.ts";
import { upOptions } from "../../../src/cli/options/up.ts";
import { verifyOptions } from "../../../src/cli/options/verify.ts";
import { collectorOptions } from "../../../src/collector/config.ts";
import { ConfigError } from "../../../src/core/errors.ts";
import { dashboardOptions } from "../../../src/dashboard/config.ts";
import { loadConfig, type OptionSpec, type OptionTable, renderHelp } from "../../../src/lib/config.ts";
import * as shared from "../../../src/lib/options.ts";
import { processorOptions } from "../../../src/processor/config.ts";

const tables: Record<string, OptionTable> = {
  processor: processorOptions,
  collector: collectorOptions,
  dashboard: dashboardOptions,
  verify: verifyOptions,
  up: upOptions,
  topics: topicsOptions,
};

const sharedSpecs = Object.values<unknown>(shared).filter(
  (v): v is OptionSpec => typeof v === "object" && v !== null && "parse" in v,
);

describe("shared options", () => {
  it("--kafka, --redis, --warehouse, --log-level, --host, --duration are one declaration in every table", () => {
    const expectations: [OptionSpec, string[]][] = [
      [shared.kafkaBrokers, ["processor", "collector", "verify", "up", "topics"]],
      [shared.redisUrl, ["processor", "dashboard", "verify", "up"]],
      [shared.warehouseUrl, ["processor", "verify", "up"]],
      [shared.logLevel, ["processor", "collector", "dashboard", "up"]],
      [shared.httpHost, ["processor", "collector", "dashboard", "up"]],
      [shared.httpPort, ["processor", "collector", "dashboard", "up"]],
      [shared.runDuration, ["processor", "collector", "up"]],
      [shared.maxMessageBytes, ["processor", "verify", "up"]],
      [shared.piiKey, ["processor", "up"]],
    ];
    for (const [spec, commands] of expectations) {
      for (const command of commands) {
        const o = tables[command]!.find((x) => x.parse === spec.parse);
        assert.ok(o, `${command} takes --${spec.flag} from src/lib/options.ts`);
        if (spec !== shared.httpPort) {
          assert.equal(o.flag, spec.flag, `${command}: flag`);
          assert.equal(o.env, spec.env, `${command}: env`);
        }
        assert.equal(o.secret, spec.secret, `${command}: secret`);
      }
    }
  });

  it("no command declares its own --kafka, --redis or --warehouse", () => {
    for (const [command, table] of Object.entries(tables)) {
      for (const flag of ["kafka", "redis", "warehouse", "log-level", "duration"]) {
        const o = table.find((x) => x.flag === flag);
        if (!o) continue;
        const spec = sharedSpecs.find((s) => s.flag === flag)!;
        assert.equal(o.parse, spec.parse, `${command} --${flag} is the shared option`);
      }
    }
  });
});

describe("every command's table", () => {
  for (const [command, table] of Object.entries(tables)) {
    it(`${command}: loads with no input, and every default survives its own parser`, () => {
      const { values } = loadConfig(table, { argv: [], env: {} });
      for (const o of table) {
        if (o.default === undefined) continue;
        const shown = o.parse.format
          ? o.parse.format(o.default)
          : Array.isArray(o.default)
            ? o.default.join(",")
            : String(o.default);
        assert.deepEqual(o.parse(shown), o.default, `${command} ${o.key}: default shown as ${shown}`);
        assert.deepEqual(values[o.key], o.default);
      }
    });

    it(`${command}: every duration option refuses a bare number and says it wants a unit`, () => {
      for (const o of table.filter((x) => x.parse.duration)) {
        assert.throws(
          () => loadConfig(table, { argv: [`--${o.flag}`, "40"], env: {} }),
          (err: unknown) =>
            err instanceof ConfigError &&
            err.field === o.key &&
            /"40" has no unit: write 40s/.test(err.message),
          `${command} --${o.flag} 40`,
        );
      }
    });

    it(`${command}: --help names every flag, env var and key, and explains duration units`, () => {
      const help = renderHelp(command, "summary", table);
      for (const o of table) {
        assert.ok(help.includes(`--${o.flag}`), o.flag);
        assert.ok(help.includes(`env ${o.env}; key ${o.key};`), o.key);
      }
      assert.equal(
        /Durations take a unit/.test(help),
        table.some((o) => o.parse.duration),
      );
    });
  }
});

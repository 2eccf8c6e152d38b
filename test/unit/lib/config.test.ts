import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, PaystreamError } from "../../../src/core/errors.ts";
import {
  type ConfigValues,
  defineOptions,
  formatDuration,
  loadConfig,
  type OptionTable,
  p,
  parseDuration,
  pickOptions,
  renderHelp,
  withDefaults,
  withOverrides,
} from "../../../src/lib/config.ts";

const table = defineOptions([
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
    key: "dedup.ttlMs",
    flag: "dedup-ttl",
    env: "T_DEDUP_TTL",
    description: "dedup horizon",
    parse: p.duration(60_000, 30 * 86_400_000),
    default: 86_400_000,
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
  {
    key: "mode",
    flag: "mode",
    env: "T_MODE",
    description: "mode",
    parse: p.oneOf("fast", "slow"),
    default: "fast",
  },
]);

const SECRET = "0123456789abcdef-secret-value";

function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "cfg-")), name);
  writeFileSync(file, text);
  return file;
}

/** Asserts a ConfigError for `field` whose message matches `re`. */
function throwsConfig(fn: () => unknown, field: string, re: RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.field, field, caught.message);
  assert.match(caught.message, re);
  return caught;
}

describe("config: typed values", () => {
  it("uses defaults when nothing is given", () => {
    const { values } = loadConfig(table, { argv: [], env: {} });
    assert.deepEqual(values, {
      "kafka.brokers": ["127.0.0.1:9092"],
      rate: 1000,
      window: 60_000,
      "dedup.ttlMs": 86_400_000,
      secret: undefined,
      demo: false,
      mode: "fast",
    });
  });

  it("types each value by its parser, with no cast at the call site", () => {
    const { values } = loadConfig(table, { argv: ["--mode", "slow", "--pii-key", SECRET], env: {} });
    // Compile-time checks (tsc runs over test/): each line fails to compile if the type is wrong.
    const brokers: string[] = values["kafka.brokers"];
    const rate: number = values.rate;
    const demo: boolean = values.demo;
    const mode: "fast" | "slow" = values.mode;
    const secret: string | undefined = values.secret;
    // @ts-expect-error an optional option without a default may be undefined
    const notUndefined: string = values.secret;
    // @ts-expect-error keys not in the table do not exist
    void values.nope;
    assert.deepEqual(
      [brokers, rate, demo, mode, secret, notUndefined],
      [["127.0.0.1:9092"], 1000, false, "slow", SECRET, SECRET],
    );
  });

  it("an untyped OptionTable still loads, as Record<string, unknown>", () => {
    const untyped: OptionTable = table;
    const values: Record<string, unknown> = loadConfig(untyped, { argv: [], env: {} }).values;
    assert.equal(values.rate, 1000);
  });

  it("checks each default against its parser's type at compile time", () => {
    const t = defineOptions([
      // @ts-expect-error the default is not a value of the option's parser
      { key: "n", flag: "n", env: "T_N", description: "n", parse: p.int(0, 9), default: "3" },
    ]);
    assert.equal(t.length, 1);
  });

  it("hands out copies of list defaults: changing one does not change the table", () => {
    const first = loadConfig(table, { argv: [], env: {} }).values;
    first["kafka.brokers"].push("mutated:1");
    assert.deepEqual(loadConfig(table, { argv: [], env: {} }).values["kafka.brokers"], ["127.0.0.1:9092"]);
  });
});

describe("config: sources", () => {
  it("applies precedence flag > env > file > default", () => {
    const file = tempFile("c.yaml", "rate: 10\nwindow: 30s\nkafka:\n  brokers: [a:1, b:2]\nmode: slow\n");
    const { values } = loadConfig(table, { argv: ["--rate=30"], env: { T_WINDOW: "45s" }, file });
    assert.equal(values.rate, 30);
    assert.equal(values.window, 45_000);
    assert.deepEqual(values["kafka.brokers"], ["a:1", "b:2"]);
    assert.equal(values.mode, "slow");
  });

  it("reads --config and PAYSTREAM_CONFIG, JSON or YAML", () => {
    const json = tempFile("c.json", JSON.stringify({ rate: 7, dedup: { ttlMs: "15m" } }));
    assert.equal(loadConfig(table, { argv: ["--config", json], env: {} }).values.rate, 7);
    const v = loadConfig(table, { argv: [], env: { PAYSTREAM_CONFIG: json } }).values;
    assert.equal(v["dedup.ttlMs"], 900_000);
  });

  it("names the field and the source of a bad value", () => {
    throwsConfig(() => loadConfig(table, { argv: [], env: { T_RATE: "fast" } }), "rate", /env T_RATE/);
    throwsConfig(() => loadConfig(table, { argv: ["--rate", "-1"], env: {} }), "rate", /must be between 0/);
    throwsConfig(
      () => loadConfig(table, { argv: ["--kafka", "nohostport"], env: {} }),
      "kafka.brokers",
      /--kafka/,
    );
    const file = tempFile("bad.yaml", "mode: medium\n");
    throwsConfig(() => loadConfig(table, { argv: [], env: {}, file }), "mode", /config file .*bad\.yaml/);
  });

  it("reports an unreadable or invalid config file", () => {
    assert.throws(
      () => loadConfig(table, { argv: ["--config", "/nonexistent.yaml"], env: {} }),
      PaystreamError,
    );
    const bad = tempFile("bad.json", "{nope");
    assert.throws(() => loadConfig(table, { argv: [], env: { PAYSTREAM_CONFIG: bad } }), /not valid/);
    const list = tempFile("list.yaml", "- a\n- b\n");
    assert.throws(() => loadConfig(table, { argv: [], env: {}, file: list }), /must hold an object/);
  });
});

describe("config: unknown flags, keys and arguments are refused", () => {
  it("refuses unknown flags, naming them, with the nearest real flag", () => {
    throwsConfig(
      () => loadConfig(table, { argv: ["--nope"], env: {} }),
      "--nope",
      /unknown flag \(see --help\)/,
    );
    throwsConfig(
      () => loadConfig(table, { argv: ["--widow", "10s"], env: {} }),
      "--widow",
      /did you mean --window\?/,
    );
    throwsConfig(() => loadConfig(table, { argv: ["--no-rate"], env: {} }), "--no-rate", /unknown flag/);
    throwsConfig(() => loadConfig(table, { argv: ["-h"], env: {} }), "-h", /unknown flag/);
  });

  it("refuses a flag without its value", () => {
    throwsConfig(() => loadConfig(table, { argv: ["--rate"], env: {} }), "--rate", /needs a value/);
    throwsConfig(
      () => loadConfig(table, { argv: ["--rate", "--window", "5s"], env: {} }),
      "--rate",
      /needs a value/,
    );
    throwsConfig(() => loadConfig(table, { argv: ["--config"], env: {} }), "--config", /needs a value/);
  });

  it("refuses stray arguments, explaining a value given to a boolean flag", () => {
    throwsConfig(
      () => loadConfig(table, { argv: ["--demo", "true"], env: {} }),
      '"true"',
      /--demo takes no value: write --demo, --no-demo or --demo=true/,
    );
    throwsConfig(() => loadConfig(table, { argv: ["40"], env: {} }), '"40"', /unexpected argument/);
    const { rest } = loadConfig(table, { argv: ["a", "--", "--rate"], env: {}, positionals: true });
    assert.deepEqual(rest, ["a", "--rate"], "after -- everything is positional");
  });

  it("refuses a config-file key no option reads, naming it, with the nearest real key", () => {
    const cases: [string, string, RegExp][] = [
      ["rat: 5\n", "rat", /unknown key in config file .*\(did you mean rate\?\)/],
      ["kafka:\n  brokerz: [a:1]\n", "kafka.brokerz", /did you mean kafka\.brokers\?/],
      ["kafak:\n  brokers: [a:1]\n", "kafak", /did you mean kafka\?/],
      ["dedup-ttl: 1h\n", "dedup-ttl", /did you mean dedup\.ttlMs\?/],
      ["dedup:\n  ttl_ms: 1h\n", "dedup.ttl_ms", /did you mean dedup\.ttlMs\?/],
      ["colour: blue\n", "colour", /unknown key in config file [^(]*$/],
      ["kafka: a:1\n", "kafka", /holds keys \(kafka\.brokers\), not a value/],
    ];
    for (const [text, field, re] of cases) {
      const file = tempFile("c.yaml", text);
      throwsConfig(() => loadConfig(table, { argv: [], env: {}, file }), field, re);
    }
  });

  it("refuses flat dotted keys in a file (they would otherwise go unread), saying how to nest them", () => {
    const file = tempFile("c.json", JSON.stringify({ "kafka.brokers": ["a:1"] }));
    throwsConfig(
      () => loadConfig(table, { argv: [], env: {}, file }),
      "kafka.brokers",
      /write the key nested \(kafka: \{ brokers: \.\.\. \}\)/,
    );
  });

  it("refuses unknown file keys even when a flag sets every option (the file is still wrong)", () => {
    const file = tempFile("c.yaml", "rate: 5\ntypo: 1\n");
    throwsConfig(() => loadConfig(table, { argv: ["--rate", "6"], env: {}, file }), "typo", /unknown key/);
  });
});

describe("config: secrets", () => {
  it("never echoes a secret's value in an error, whatever its source", () => {
    const short = "short-secret";
    const file = tempFile("c.yaml", `secret: ${short}\n`);
    for (const opts of [
      { argv: [], env: { T_SECRET: short } },
      { argv: ["--pii-key", short], env: {} },
      { argv: [`--pii-key=${short}`], env: {} },
      { argv: [], env: {}, file },
    ]) {
      const err = throwsConfig(() => loadConfig(table, opts), "secret", /is not valid/);
      assert.ok(!err.message.includes(short), err.message);
      assert.ok(!JSON.stringify(err.details).includes(short), "not in details either");
    }
  });

  it("never echoes the value of a mistyped secret flag", () => {
    const err = throwsConfig(
      () => loadConfig(table, { argv: [`--pii-kye=${SECRET}`], env: {} }),
      "--pii-kye",
      /did you mean --pii-key/,
    );
    assert.ok(!err.message.includes(SECRET));
  });

  it("help shows no default for a secret", () => {
    assert.match(
      renderHelp("t", "s", table),
      /--pii-key <value>\s+key\n\s+env T_SECRET; key secret; secret, no default/,
    );
  });
});

describe("config: durations", () => {
  it("takes a unit: ms, s, m, h, d; 0 needs none", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("40s"), 40_000);
    assert.equal(parseDuration("2m"), 120_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("1d"), 86_400_000);
    assert.equal(parseDuration(" 10 s "), 10_000);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration(0), 0);
    assert.equal(parseDuration("x"), undefined);
    assert.equal(parseDuration("-5s"), undefined);
    assert.equal(parseDuration("5 seconds"), undefined);
  });

  it("refuses a bare number, from a flag, env var or file, suggesting seconds", () => {
    assert.equal(parseDuration("40"), undefined);
    assert.equal(parseDuration(40), undefined);
    throwsConfig(
      () => loadConfig(table, { argv: ["--window", "40"], env: {} }),
      "window",
      /"40" has no unit: write 40s for seconds \(or 40ms, 40m, 40h\) \(from --window\)/,
    );
    // The value an old deployment would have set in milliseconds fails loudly, not as 16 hours.
    throwsConfig(
      () => loadConfig(table, { argv: [], env: { T_DEDUP_TTL: "60000" } }),
      "dedup.ttlMs",
      /"60000" has no unit.*env T_DEDUP_TTL/,
    );
    const file = tempFile("c.yaml", "window: 60\n");
    throwsConfig(() => loadConfig(table, { argv: [], env: {}, file }), "window", /"60" has no unit/);
  });

  it("accepts 0 bare and states bounds in units", () => {
    const zero = defineOptions([
      { key: "d", flag: "duration", env: "T_D", description: "d", parse: p.duration(0), default: 0 },
    ]);
    assert.equal(loadConfig(zero, { argv: ["--duration", "0"], env: {} }).values.d, 0);
    assert.equal(loadConfig(zero, { argv: ["--duration", "40s"], env: {} }).values.d, 40_000);
    throwsConfig(
      () => loadConfig(table, { argv: ["--window", "500ms"], env: {} }),
      "window",
      /must be at least 1s, got 500ms/,
    );
    throwsConfig(
      () => loadConfig(table, { argv: ["--dedup-ttl", "31d"], env: {} }),
      "dedup.ttlMs",
      /must be between 1m and 30d, got 31d/,
    );
  });

  it("formats durations in the largest exact unit, and the result parses back", () => {
    for (const [ms, text] of [
      [0, "0"],
      [5, "5ms"],
      [1500, "1500ms"],
      [10_000, "10s"],
      [75_000, "75s"],
      [60_000, "1m"],
      [3_600_000, "1h"],
      [86_400_000, "1d"],
    ] as const) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    }
  });
});

describe("config: booleans", () => {
  it("reads --flag, --no-flag and --flag=value", () => {
    assert.equal(loadConfig(table, { argv: ["--demo"], env: {} }).values.demo, true);
    assert.equal(loadConfig(table, { argv: ["--no-demo"], env: { T_DEMO: "true" } }).values.demo, false);
    assert.equal(loadConfig(table, { argv: ["--demo=false"], env: {} }).values.demo, false);
    throwsConfig(() => loadConfig(table, { argv: ["--demo=maybe"], env: {} }), "demo", /true or false/);
  });
});

describe("config: help", () => {
  it("lists every flag with its env var, file key and default; durations with their unit", () => {
    const help = renderHelp("test", "summary", table);
    for (const o of table) {
      assert.match(help, new RegExp(`--${o.flag}`));
      assert.match(help, new RegExp(`env ${o.env}; key ${o.key.replace(".", "\\.")}; `));
    }
    assert.match(help, /env T_WINDOW; key window; default 1m/);
    assert.match(help, /env T_DEDUP_TTL; key dedup\.ttlMs; default 1d/);
    assert.match(help, /env T_KAFKA; key kafka\.brokers; default 127\.0\.0\.1:9092/);
    assert.match(help, /Durations take a unit: 500ms, 10s, 5m, 1h, 1d .*A bare number such as 40 is refused/);
    assert.match(help, /a key no option reads is refused/);
  });
});

describe("config: building tables", () => {
  it("refuses a table declaring a key, flag or env var twice, or a reserved flag", () => {
    const base = { description: "x", parse: p.int(0, 1), default: 0 } as const;
    assert.throws(
      () =>
        defineOptions([
          { ...base, key: "a", flag: "a", env: "A" },
          { ...base, key: "a", flag: "b", env: "B" },
        ]),
      /key a twice/,
    );
    assert.throws(
      () =>
        defineOptions([
          { ...base, key: "a", flag: "a", env: "A" },
          { ...base, key: "b", flag: "a", env: "B" },
        ]),
      /flag a twice/,
    );
    assert.throws(
      () =>
        defineOptions([
          { ...base, key: "a", flag: "a", env: "A" },
          { ...base, key: "b", flag: "b", env: "A" },
        ]),
      /env A twice/,
    );
    assert.throws(() => defineOptions([{ ...base, key: "a", flag: "config", env: "A" }]), /reserved/);
    assert.throws(
      () => defineOptions([withOverrides(table[4], { default: "0123456789abcdef0123" })]),
      /secret option secret must not have a default/,
    );
  });

  it("withOverrides adapts a shared option; default: undefined + optional makes it optional", () => {
    const rate = table[1];
    const t = defineOptions([
      withOverrides(rate, { key: "other.rate", default: 5 }),
      withOverrides(table[0], { default: undefined, optional: true }),
    ]);
    const v = loadConfig(t, { argv: [], env: {} }).values;
    const r: number = v["other.rate"];
    const b: string[] | undefined = v["kafka.brokers"];
    assert.equal(r, 5);
    assert.equal(b, undefined);
    assert.equal(t[0].flag, "rate", "the flag, env and parser stay the shared option's");
    assert.equal(t[0].parse, rate.parse);
  });

  it("pickOptions takes options of another table by key, typed", () => {
    const t = defineOptions(pickOptions(table, ["mode", "rate"]));
    assert.deepEqual(
      t.map((o) => o.key),
      ["mode", "rate"],
    );
    const v: ConfigValues<typeof t> = loadConfig(t, { argv: ["--mode", "slow"], env: {} }).values;
    const mode: "fast" | "slow" = v.mode;
    assert.equal(mode, "slow");
    // @ts-expect-error only keys of the table can be picked
    assert.throws(() => pickOptions(table, ["nope"]), /option nope missing/);
  });

  it("withDefaults completes values already parsed and refuses a missing required one", () => {
    const v = withDefaults(table, { rate: 5 });
    assert.equal(v.rate, 5);
    assert.equal(v.window, 60_000);
    assert.equal(v.secret, undefined);
    const required = defineOptions([
      { key: "must", flag: "must", env: "T_MUST", description: "m", parse: p.int(0, 1) },
    ]);
    throwsConfig(() => withDefaults(required, {}), "must", /is required \(set --must or T_MUST\)/);
    throwsConfig(() => loadConfig(required, { argv: [], env: {} }), "must", /is required/);
  });
});

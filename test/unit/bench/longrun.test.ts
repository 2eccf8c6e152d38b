/** The long-run scripts' flags (every error names the flag) and their shared arithmetic. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cleanPopulation, type FlagSpec, parseFlags, UsageError } from "../../../bench/lib/longrun.ts";
import { meanRate, type SampleRow } from "../../../bench/lib/sampler.ts";

const SPECS = {
  minutes: { kind: "number", default: 30, positive: true, help: "" },
  rate: { kind: "int", default: 3000, positive: true, help: "" },
  processors: { kind: "int", default: 1, min: 1, max: 4, help: "" },
  warmup: { kind: "duration", default: 0, min: 0, help: "" },
  save: { kind: "boolean", default: true, help: "" },
  replot: { kind: "string", default: "", help: "" },
} satisfies Record<string, FlagSpec>;

function fails(argv: string[], message: RegExp): void {
  assert.throws(
    () => parseFlags(argv, SPECS),
    (err: unknown) => err instanceof UsageError && message.test(err.message),
  );
}

describe("parseFlags", () => {
  it("gives the defaults, then what was passed", () => {
    assert.deepEqual(parseFlags([], SPECS), {
      minutes: 30,
      rate: 3000,
      processors: 1,
      warmup: 0,
      save: true,
      replot: "",
    });
    const f = parseFlags(
      ["--minutes", "0.5", "--rate=4000", "--warmup", "90s", "--no-save", "--replot", "x.json"],
      SPECS,
    );
    assert.equal(f.minutes, 0.5);
    assert.equal(f.rate, 4000);
    assert.equal(f.warmup, 90);
    assert.equal(f.save, false);
    assert.equal(f.replot, "x.json");
  });

  it("refuses bad values, naming the flag", () => {
    fails(["--minutes", "0"], /^--minutes: must be greater than 0/);
    fails(["--minutes", "-2"], /^--minutes: must be greater than 0/);
    fails(["--minutes", "abc"], /^--minutes: expected a positive number, got "abc"/);
    fails(["--minutes", ""], /^--minutes: expected a positive number/);
    fails(["--minutes"], /^--minutes needs a value/);
    fails(["--minutes", "--rate", "5"], /^--minutes needs a value/);
    fails(["--rate", "2.5"], /^--rate: expected a positive whole number/);
    fails(["--processors", "5"], /^--processors: must be at most 4/);
    fails(["--warmup", "90"], /^--warmup: .* \(write 90s for seconds\)/);
    fails(["--warmup", "soon"], /^--warmup: expected a duration with a unit/);
  });

  it("refuses unknown flags, stray arguments and misused switches", () => {
    fails(["--minute", "3"], /^--minute: unknown flag/);
    fails(["30"], /unexpected argument "30"/);
    fails(["--save=yes"], /^--save takes no value/);
    fails(["--no-rate"], /^--no-rate: only on\/off flags can be negated/);
  });
});

describe("cleanPopulation", () => {
  it("keeps the collector under accounts / 50 tx/s", () => {
    assert.equal(cleanPopulation(1000), 100_000);
    assert.equal(cleanPopulation(14_000), 700_000);
  });
});

describe("meanRate", () => {
  const row = (t: number, produced: number | null, processed: number | null) =>
    ({ t, produced, processed }) as SampleRow;
  const rows = [row(0, null, null), row(2, 2000, 0), row(4, 2000, 5000), row(6, 4000, 5000)];

  it("is the interval counts over their span", () => {
    assert.equal(meanRate(rows, "produced"), Math.round(8000 / 6));
    assert.equal(meanRate(rows, "processed"), Math.round(10000 / 6));
  });

  it("takes the rows in (from, to] only, and none gives null", () => {
    assert.equal(meanRate(rows, "produced", 2, 6), 1500);
    assert.equal(meanRate(rows, "produced", 6, 10), null);
  });
});
